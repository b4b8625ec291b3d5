// FakeCharon: a scripted vici server on a unix socket for the ViciConnection
// and TunnelManager tests. It answers commands (load-*, initiate, terminate,
// list-sas with its list-sa stream, version), confirms event registrations,
// keeps a set of installed CHILD_SAs of connection "md" and tells
// subscribers about them (child-updown), and can vanish like a charon that
// exits. Runs its own thread; every public call is thread-safe.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/UniqueFd.h"
#include "ipsec/ViciCommands.h"
#include "ipsec/ViciPacket.h"

namespace xtap::ipsec::test {

class FakeCharon {
  public:
    FakeCharon() {
        char pattern[] = "/tmp/xtap-fake-charon.XXXXXX";
        directory_ = ::mkdtemp(pattern);
        path_ = directory_ + "/charon.vici";
    }
    ~FakeCharon() {
        stop();
        ::rmdir(directory_.c_str());
    }

    const std::string& path() const { return path_; }

    void start() {
        UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
        ::unlink(path_.c_str());
        if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 ||
            ::listen(listener.get(), 8) < 0) {
            std::abort();
        }
        int wake[2];
        if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0) {
            std::abort();
        }
        wake_read_.reset(wake[0]);
        wake_write_.reset(wake[1]);
        {
            // A restarted charon numbers its SAs from 1 again.
            std::lock_guard lock(mutex_);
            next_id_ = 1;
        }
        running_ = true;
        thread_ = std::thread([this, fd = listener.release()] { run(UniqueFd(fd)); });
    }

    // Like a charon that exits: every connection closes, the socket goes.
    void stop() {
        if (!thread_.joinable()) {
            return;
        }
        running_ = false;
        wake();
        thread_.join();
        ::unlink(path_.c_str());
        std::lock_guard lock(mutex_);
        installed_.clear();
    }

    void setAutoUp(bool up) { auto_up_ = up; }
    // Narrows what later CHILD_SAs report as remote-ts.
    void setRemoteTs(List remote_ts) {
        std::lock_guard lock(mutex_);
        remote_ts_ = std::move(remote_ts);
    }

    // Deletes an installed CHILD_SA and sends child-updown without `up`.
    void dropChild(const std::string& id) {
        std::lock_guard lock(mutex_);
        installed_.erase(id);
        outbox_.push_back({std::string(event::kChildUpdown), childEvent(false, id)});
        wake();
    }

    std::set<std::string> installed() {
        std::lock_guard lock(mutex_);
        return installed_;
    }

    size_t count(const std::string& command) {
        std::lock_guard lock(mutex_);
        return commands_[command];
    }

  private:
    struct Client {
        UniqueFd fd;
        PacketReassembler in;
        std::set<std::string> events;
    };
    struct Outgoing {
        std::string event;
        Section message;
    };

    void wake() {
        const char byte = 1;
        [[maybe_unused]] auto n = ::write(wake_write_.get(), &byte, 1);
    }

    // Called with mutex_ held.
    Section childEvent(bool up, const std::string& id) {
        Section root;
        if (up) {
            root.addValue("up", "yes");
        }
        Section& ike = root.addSection("md");
        ike.addValue("uniqueid", "1");
        ike.addValue("state", "ESTABLISHED");
        Section& child = ike.addSection("child-sas").addSection("md-" + id);
        child.addValue("name", "md");
        child.addValue("uniqueid", id);
        child.addValue("state", up ? "INSTALLED" : "DELETING");
        child.addList("remote-ts", remote_ts_);
        return root;
    }

    static void send(Client& client, PacketType type, const std::string& name,
                     const Section* message) {
        Packet packet{type, name, {}};
        if (message) {
            packet.message = *encodeMessage(*message);
        }
        const Bytes bytes = *encodePacket(packet);
        [[maybe_unused]] auto n = ::send(client.fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }

    void broadcast(std::vector<Client>& clients, const Outgoing& out) {
        for (Client& client : clients) {
            if (client.events.contains(out.event)) {
                send(client, PacketType::Event, out.event, &out.message);
            }
        }
    }

    void handle(std::vector<Client>& clients, Client& client, const Packet& packet) {
        std::vector<Outgoing> after;
        Section reply;
        switch (packet.type) {
            case PacketType::EventRegister:
                client.events.insert(packet.name);
                send(client, PacketType::EventConfirm, "", nullptr);
                return;
            case PacketType::EventUnregister:
                client.events.erase(packet.name);
                send(client, PacketType::EventConfirm, "", nullptr);
                return;
            case PacketType::CmdRequest:
                break;
            default:
                return;
        }
        {
            std::lock_guard lock(mutex_);
            ++commands_[packet.name];
            if (packet.name == "version") {
                reply.addValue("daemon", "charon-fake");
                reply.addValue("version", "5.9.8");
            } else if (packet.name == "list-sas") {
                Section listing;
                Section& ike = listing.addSection("md");
                ike.addValue("uniqueid", "1");
                ike.addValue("state", "ESTABLISHED");
                Section& children = ike.addSection("child-sas");
                for (const std::string& id : installed_) {
                    Section& child = children.addSection("md-" + id);
                    child.addValue("name", "md");
                    child.addValue("uniqueid", id);
                    child.addValue("state", "INSTALLED");
                    child.addList("remote-ts", remote_ts_);
                }
                if (client.events.contains("list-sa") && !installed_.empty()) {
                    send(client, PacketType::Event, "list-sa", &listing);
                }
            } else if (packet.name == "initiate" && auto_up_) {
                const std::string id = std::to_string(next_id_++);
                installed_.insert(id);
                after.push_back({std::string(event::kChildUpdown), childEvent(true, id)});
            } else if (packet.name == "nonexistent") {
                send(client, PacketType::CmdUnknown, "", nullptr);
                return;
            }
            if (packet.name != "version" && packet.name != "list-sas") {
                reply.addValue("success", "yes");
            }
        }
        send(client, PacketType::CmdResponse, "", &reply);
        for (const Outgoing& out : after) {
            broadcast(clients, out);
        }
    }

    void run(UniqueFd listener) {
        std::vector<Client> clients;
        while (running_) {
            std::vector<pollfd> fds{{listener.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
            for (const Client& client : clients) {
                fds.push_back({client.fd.get(), POLLIN, 0});
            }
            ::poll(fds.data(), fds.size(), 100);
            char drain[64];
            while (::read(wake_read_.get(), drain, sizeof drain) > 0) {
            }
            std::vector<Outgoing> outbox;
            {
                std::lock_guard lock(mutex_);
                outbox.swap(outbox_);
            }
            for (const Outgoing& out : outbox) {
                broadcast(clients, out);
            }
            if (fds[0].revents & POLLIN) {
                clients.push_back(Client{
                    UniqueFd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)), {}, {}});
            }
            for (size_t i = 0; i < clients.size(); ++i) {
                if (!(fds.size() > i + 2 && fds[i + 2].revents)) {
                    continue;
                }
                uint8_t buffer[65536];
                const ssize_t n = ::recv(clients[i].fd.get(), buffer, sizeof buffer, 0);
                if (n <= 0) {
                    clients[i].fd.reset();
                    continue;
                }
                clients[i].in.append(std::span<const uint8_t>(buffer, static_cast<size_t>(n)));
                for (;;) {
                    auto next = clients[i].in.next();
                    if (!next.ok() || !next->has_value()) {
                        break;
                    }
                    handle(clients, clients[i], **next);
                }
            }
            std::erase_if(clients, [](const Client& client) { return !client.fd; });
        }
    }

    std::string directory_;
    std::string path_;
    UniqueFd wake_read_;
    UniqueFd wake_write_;
    std::atomic<bool> running_{false};
    std::atomic<bool> auto_up_{true};
    std::thread thread_;
    std::mutex mutex_;
    std::set<std::string> installed_;
    std::map<std::string, size_t> commands_;
    std::vector<Outgoing> outbox_;
    List remote_ts_{"198.18.20.0/24", "2001:db8:20::/64"};
    unsigned next_id_ = 1;
};

}  // namespace xtap::ipsec::test
