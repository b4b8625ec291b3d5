#include "audit/AuditLog.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace xtap::audit {

using json = nlohmann::json;

namespace {

EVP_PKEY* pk(void* p) {
    return static_cast<EVP_PKEY*>(p);
}

std::string base64(const unsigned char* data, size_t len) {
    std::string out(4 * ((len + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string unbase64(const std::string& text) {
    std::string out(3 * (text.size() / 4) + 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    if (n < 0) return {};
    size_t len = static_cast<size_t>(n);
    for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --len;  // padding
    out.resize(len);
    return out;
}

std::string nowUtc() {
    const auto now = std::chrono::system_clock::now();
    const auto t = std::chrono::system_clock::to_time_t(now);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[96];  // roomy: the compiler cannot bound the %d fields
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms));
    return buf;
}

[[noreturn]] void fail(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

std::string headPayload(const Head& h) {
    return std::to_string(h.seq) + " " + h.hash;
}

}  // namespace

std::unique_ptr<Ed25519Key> Ed25519Key::fromPem(const std::string& pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    bool priv = key != nullptr;
    if (!key) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
        key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    }
    BIO_free(bio);
    if (!key) throw std::runtime_error("not a PEM Ed25519 key");
    if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(key);
        throw std::runtime_error("the audit key must be Ed25519");
    }
    return std::unique_ptr<Ed25519Key>(new Ed25519Key(key, priv));
}

std::unique_ptr<Ed25519Key> Ed25519Key::generate() {
    EVP_PKEY* key = nullptr;
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
    if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &key) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        throw std::runtime_error("Ed25519 key generation failed");
    }
    EVP_PKEY_CTX_free(ctx);
    return std::unique_ptr<Ed25519Key>(new Ed25519Key(key, true));
}

Ed25519Key::~Ed25519Key() {
    EVP_PKEY_free(pk(pkey_));
}

std::string Ed25519Key::sign(const std::string& bytes) const {
    if (!private_) throw std::runtime_error("a public key cannot sign");
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned char sig[64];
    size_t len = sizeof sig;
    const bool ok =
        EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, pk(pkey_)) == 1 &&
        EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(bytes.data()),
                       bytes.size()) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) throw std::runtime_error("Ed25519 signing failed");
    return base64(sig, len);
}

bool Ed25519Key::verify(const std::string& bytes, const std::string& signature_b64) const {
    const std::string sig = unbase64(signature_b64);
    if (sig.size() != 64) return false;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const bool ok =
        EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pk(pkey_)) == 1 &&
        EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                         reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

std::string Ed25519Key::privatePem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, pk(pkey_), nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
}

std::string Ed25519Key::publicPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pk(pkey_));
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
}

std::string sha256Hex(const std::string& bytes) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned char c : md) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

std::string sealRecord(json fields, uint64_t seq, const std::string& prev_hash,
                       const Ed25519Key& key) {
    fields.erase("sig");
    fields["seq"] = seq;
    fields["prev"] = prev_hash;
    // Keys sorted: one canonical form. Bytes that are not UTF-8 (a Cdest-ID may
    // carry any byte through its \ddd escapes) become U+FFFD instead of making
    // dump() throw and the action go unaudited.
    const std::string body = fields.dump(-1, ' ', false, json::error_handler_t::replace);
    fields["sig"] = key.sign(body);
    return fields.dump(-1, ' ', false, json::error_handler_t::replace);
}

VerifyResult verifyLog(std::istream& in, const Ed25519Key& key, const std::optional<Head>& head) {
    VerifyResult r;
    std::string line, prev(64, '0');
    uint64_t expected_seq = 1;
    while (std::getline(in, line)) {
        const uint64_t n = r.records + 1;
        auto bad = [&](const std::string& why) {
            r.bad_line = n;
            r.reason = "record " + std::to_string(n) + ": " + why;
            return r;
        };
        json rec;
        try {
            rec = json::parse(line);
        } catch (const json::exception&) {
            return bad("not a JSON record (edited or truncated)");
        }
        if (!rec.is_object() || !rec.contains("sig") || !rec.contains("seq") ||
            !rec.contains("prev") || !rec["sig"].is_string() || !rec["seq"].is_number_unsigned() ||
            !rec["prev"].is_string())
            return bad("missing seq, prev or sig");
        // xtapd writes each record in canonical form; any other spelling of the
        // same fields (spaces, key order, escapes) is an edit of this record.
        if (rec.dump() != line) return bad("not in the form xtapd writes it (record edited)");
        const std::string sig = rec["sig"].get<std::string>();
        json body = rec;
        body.erase("sig");
        if (!key.verify(body.dump(), sig)) return bad("signature does not verify (record edited)");
        if (rec["seq"].get<uint64_t>() != expected_seq)
            return bad("sequence " + std::to_string(rec["seq"].get<uint64_t>()) + " where " +
                       std::to_string(expected_seq) +
                       " was due (record deleted, inserted or reordered)");
        if (rec["prev"].get<std::string>() != prev)
            return bad("does not chain to the record before it (deleted, inserted or reordered)");
        prev = sha256Hex(line);
        ++expected_seq;
        ++r.records;
    }
    if (head) {
        if (head->seq != r.records || (r.records && head->hash != prev)) {
            r.bad_line = r.records + 1;
            r.reason = "the log ends at record " + std::to_string(r.records) +
                       " but the head says " + std::to_string(head->seq) +
                       " (truncated or replaced)";
            return r;
        }
    }
    r.ok = true;
    return r;
}

std::optional<Head> readHead(const std::string& head_path, const Ed25519Key& key) {
    std::ifstream in(head_path);
    if (!in) return std::nullopt;
    json j;
    try {
        in >> j;
        Head h{j.at("seq").get<uint64_t>(), j.at("hash").get<std::string>()};
        if (!key.verify(headPayload(h), j.at("sig").get<std::string>())) return std::nullopt;
        return h;
    } catch (const json::exception&) {
        return std::nullopt;
    }
}

VerifyResult verifyFile(const std::string& log_path, const Ed25519Key& key,
                        const FileCheck& check) {
    VerifyResult failed;
    std::ifstream log(log_path);
    if (!log) {
        failed.reason = "cannot read " + log_path;
        return failed;
    }
    const std::string head_path = check.head_path.empty() ? log_path + ".head" : check.head_path;
    std::optional<Head> head;
    if (check.require_head) {
        if (!std::ifstream(head_path)) {
            failed.reason =
                "no head file " + head_path + ": a truncated log cannot be told from a whole one";
            return failed;
        }
        head = readHead(head_path, key);
        if (!head) {
            failed.reason =
                "head file " + head_path + " does not verify (edited, or signed by another key)";
            return failed;
        }
    }
    return verifyLog(log, key, head);
}

AuditLog::AuditLog(std::string path, std::unique_ptr<Ed25519Key> key)
    : path_(std::move(path)), key_(std::move(key)) {
    if (!key_ || !key_->canSign())
        throw std::runtime_error("the audit log needs an Ed25519 private key");
    // Continue the chain where the file ends.
    {
        std::ifstream in(path_);
        std::string line, last;
        uint64_t lines = 0;
        while (std::getline(in, line)) {
            last = line;
            ++lines;
        }
        head_ = lines ? Head{lines, sha256Hex(last)} : Head{0, std::string(64, '0')};
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) fail(errno, "open audit log " + path_);
    ::fchmod(fd_, 0600);
}

AuditLog::~AuditLog() {
    try {
        sync();  // deferred records of a clean stop
    } catch (const std::system_error&) {
        // The records are written; only their fsync and the head are missing.
    }
    if (fd_ >= 0) ::close(fd_);
}

void AuditLog::append(json fields) {
    {
        std::lock_guard guard(mutex_);
        writeRecord(std::move(fields));
    }
    sync();
}

void AuditLog::appendDeferred(json fields) {
    std::lock_guard guard(mutex_);
    writeRecord(std::move(fields));
}

// One fdatasync and one head for every record written before the call: a
// burst of pipelined requests costs one round trip to the disk, not one each.
// Records appended meanwhile (other sessions) are not waited for; they leave
// unsynced_ set for the next sync.
void AuditLog::sync() {
    std::lock_guard flushing(sync_mutex_);
    Head head;
    {
        std::lock_guard guard(mutex_);
        if (!unsynced_) return;
        head = head_;
        unsynced_ = false;
    }
    try {
        flushUpTo(head);
    } catch (...) {
        std::lock_guard guard(mutex_);
        unsynced_ = true;
        throw;
    }
}

void AuditLog::writeRecord(json fields) {
    fields["time"] = nowUtc();
    const std::string line = sealRecord(std::move(fields), head_.seq + 1, head_.hash, *key_) + "\n";
    size_t off = 0;
    while (off < line.size()) {
        const ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail(errno, "write audit log");
        }
        off += static_cast<size_t>(n);
    }
    head_ = {head_.seq + 1, sha256Hex(line.substr(0, line.size() - 1))};
    unsynced_ = true;
}

// The records up to `head` were written; make them durable, then sign the head.
void AuditLog::flushUpTo(const Head& head) {
    if (::fdatasync(fd_) != 0) fail(errno, "sync audit log");
    const std::string tmp = headPath() + ".tmp";
    const json h = {{"seq", head.seq}, {"hash", head.hash}, {"sig", key_->sign(headPayload(head))}};
    const std::string text = h.dump() + "\n";
    const int hfd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (hfd < 0) fail(errno, "write audit head");
    const bool ok =
        ::write(hfd, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(hfd) == 0;
    ::close(hfd);
    if (!ok || ::rename(tmp.c_str(), headPath().c_str()) != 0) fail(errno, "write audit head");
}

}  // namespace xtap::audit
