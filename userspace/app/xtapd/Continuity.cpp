#include "Continuity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/UniqueFd.h"

namespace xtap::app {

namespace {

[[noreturn]] void fail(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

std::string parentOf(const std::string& path) {
    const std::string dir = std::filesystem::path(path).parent_path().string();
    return dir.empty() ? "." : dir;
}

}  // namespace

criteria::StateClock stateClockNow() {
    criteria::StateClock c;
    timespec ts{};
    clock_gettime(CLOCK_BOOTTIME, &ts);
    c.boottime_ns = uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
    c.unix_ms = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::getline(in, c.boot_id);
    return c;
}

std::optional<std::string> readStateFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return std::nullopt;
        fail("state file " + path + ": open");
    }
    UniqueFd file(fd);
    std::string text;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(file.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("state file " + path + ": read");
        }
        if (n == 0) break;
        text.append(buf, size_t(n));
    }
    return text;
}

void writeStateFile(const std::string& path, std::string_view text) {
    const std::string dir = parentOf(path);
    const std::string temp = path + ".tmp." + std::to_string(::getpid());
    const int fd =
        ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) fail("state file " + temp + ": create");
    UniqueFd file(fd);
    auto abandon = [&](const std::string& step) {
        const int err = errno;
        ::unlink(temp.c_str());
        errno = err;
        fail("state file " + path + ": " + step);
    };
    ::fchmod(file.get(), 0600);  // O_CREAT's mode is masked by the umask
    for (size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(file.get(), text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            abandon("write");
        }
        done += size_t(n);
    }
    if (::fsync(file.get()) != 0) abandon("fsync");
    file = UniqueFd();
    if (::rename(temp.c_str(), path.c_str()) != 0) abandon("rename");
    // The rename itself must survive a power cut.
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) fail("state directory " + dir + ": open");
    UniqueFd directory(dfd);
    if (::fsync(directory.get()) != 0) fail("state directory " + dir + ": fsync");
}

std::string setStateFileAside(const std::string& path, uint64_t unix_ms) {
    const std::string aside = path + ".unusable." + std::to_string(unix_ms / 1000);
    if (::rename(path.c_str(), aside.c_str()) != 0) fail("state file " + path + ": set aside");
    return aside;
}

nlohmann::json restartRecord(const criteria::LoadedState& state,
                             const criteria::RestoreReport& report) {
    uint64_t missed_packets = 0, missed_bytes = 0;
    nlohmann::json gap = nlohmann::json::array();
    for (const auto& r : report.resumed) {
        missed_packets += r.during_gap.packets;
        missed_bytes += r.during_gap.bytes;
        gap.push_back({{"user", r.key.user},
                       {"criteria_id", r.key.id},
                       {"packets", r.during_gap.packets},
                       {"bytes", r.during_gap.bytes}});
    }
    nlohmann::json dropped = nlohmann::json::array();
    for (const auto& d : report.dropped)
        dropped.push_back({{"user", d.key.user}, {"criteria_id", d.key.id}, {"reason", d.reason}});
    return {{"event", "restart"},
            {"state_saved_unix_ms", state.saved.unix_ms},
            {"gap_ms", state.elapsed_ns / 1'000'000},
            {"same_boot", state.same_boot},
            {"restored", report.restored},
            {"resumed_in_place", report.resumed.size()},
            {"not_restored", dropped},
            // Counted by the classifier while xtapd was down, never delivered.
            {"copies_missed_packets", missed_packets},
            {"copies_missed_bytes", missed_bytes},
            {"gap", gap}};
}

std::string restartLogLine(const criteria::LoadedState& state,
                           const criteria::RestoreReport& report) {
    uint64_t missed = 0;
    for (const auto& r : report.resumed) missed += r.during_gap.packets;
    std::ostringstream out;
    out << "restart: " << report.restored << " criteria restored (" << report.resumed.size()
        << " in their data-plane slots), " << report.dropped.size() << " not restored; gap "
        << state.elapsed_ns / 1'000'000 << " ms; copies missed during the gap: " << missed
        << " packets (counted by the classifier, not delivered)";
    if (!state.same_boot) out << "; after a reboot nothing was counted during the gap";
    return out.str();
}

}  // namespace xtap::app
