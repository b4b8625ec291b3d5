// AuditLog: the lawful-intercept audit trail. Append-only JSON lines; each
// record carries its sequence number, the SHA-256 of the previous line and an
// Ed25519 signature over itself, so any edit, deletion, insertion or
// reordering breaks the chain at a record that verifyLog names. A head file
// (last sequence number and hash, signed) catches truncation of the tail.
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace xtap::audit {

class Ed25519Key {
  public:
    // PEM private key (PKCS#8), or a public key for a verify-only key.
    static std::unique_ptr<Ed25519Key> fromPem(const std::string& pem);
    static std::unique_ptr<Ed25519Key> generate();  // tests and first start
    ~Ed25519Key();
    Ed25519Key(const Ed25519Key&) = delete;
    Ed25519Key& operator=(const Ed25519Key&) = delete;

    bool canSign() const { return private_; }
    std::string sign(const std::string& bytes) const;  // base64
    bool verify(const std::string& bytes, const std::string& signature_b64) const;
    std::string privatePem() const;
    std::string publicPem() const;

  private:
    explicit Ed25519Key(void* pkey, bool has_private) : pkey_(pkey), private_(has_private) {}
    void* pkey_;  // EVP_PKEY*
    bool private_;
};

std::string sha256Hex(const std::string& bytes);

struct Head {
    uint64_t seq = 0;
    std::string hash;  // SHA-256 of the last line
};

// Pure: the line for a record (no newline), given the chain state.
std::string sealRecord(nlohmann::json fields, uint64_t seq, const std::string& prev_hash,
                       const Ed25519Key& key);

struct VerifyResult {
    bool ok = false;
    uint64_t records = 0;
    uint64_t bad_line = 0;  // 1-based line of the first bad record, 0 if none
    std::string reason;
};

// Checks every line's signature, sequence and hash link; with `head`, also
// that the log ends where the head says (no truncated tail).
VerifyResult verifyLog(std::istream& in, const Ed25519Key& key, const std::optional<Head>& head);

// Writer: appends sealed records, fsyncs them, keeps the head file current
// (written to a temporary file, fsynced, renamed). Files are mode 0600.
class AuditLog {
  public:
    AuditLog(std::string path, std::unique_ptr<Ed25519Key> key);
    ~AuditLog();
    AuditLog(const AuditLog&) = delete;
    AuditLog& operator=(const AuditLog&) = delete;

    // Adds time and sequence; throws std::system_error if the record cannot
    // be made durable (the caller must not act on an unaudited request).
    // Thread-safe: SSH session threads append concurrently.
    void append(nlohmann::json fields);
    // Writes the record but leaves it, and the head, to the next sync(): for a
    // batch of requests whose replies wait for that sync (group commit).
    void appendDeferred(nlohmann::json fields);
    // Makes every record written so far durable and the head current; throws
    // std::system_error like append. Cheap when nothing is pending.
    void sync();
    Head head() const {
        std::lock_guard guard(mutex_);
        return head_;
    }
    std::string headPath() const { return path_ + ".head"; }

  private:
    std::string path_;
    std::unique_ptr<Ed25519Key> key_;
    int fd_ = -1;
    mutable std::mutex mutex_;  // one record at a time: seq and prev must chain
    // One flush and head write at a time, in order. Not mutex_: records go on
    // being appended while the disk flushes.
    std::mutex sync_mutex_;
    Head head_;
    bool unsynced_ = false;  // records written since the last fdatasync and head
    void writeRecord(nlohmann::json fields);
    void flushUpTo(const Head& head);
};

std::optional<Head> readHead(const std::string& head_path, const Ed25519Key& key);

// What `xtapctl audit verify` checks: the log file, and its head file (by
// default LOG.head) unless the auditor waives it. Without a head, a log cut
// after any record still verifies, so a missing or unverifiable head fails
// unless `require_head` is false.
struct FileCheck {
    std::string head_path;  // "" = log_path + ".head"
    bool require_head = true;
};
VerifyResult verifyFile(const std::string& log_path, const Ed25519Key& key,
                        const FileCheck& check = {});

}  // namespace xtap::audit
