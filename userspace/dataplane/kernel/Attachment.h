// XdpAttachment and TcAttachment: a BPF program attached to an interface,
// detached on destruction (only if it is still ours).
#pragma once

#include <cstdint>
#include <string>

namespace xtap::dataplane::kernel {

enum class XdpMode { Native, Generic, Auto };  // Auto: native, generic as a fallback

const char* toString(XdpMode mode);

class XdpAttachment {
public:
    // Refuses an interface that already runs another XDP program (one program
    // per interface: this kernel's lockdown forbids libxdp's dispatcher). A
    // program of the same name left by a killed controller is replaced in
    // place (atomically, in the mode it runs in).
    XdpAttachment(uint32_t ifindex, int prog_fd, XdpMode mode);
    ~XdpAttachment();
    XdpAttachment(const XdpAttachment&) = delete;
    XdpAttachment& operator=(const XdpAttachment&) = delete;
    XdpMode mode() const { return mode_; }  // Native or Generic, as attached
    uint32_t ifindex() const { return ifindex_; }

private:
    uint32_t ifindex_;
    int prog_fd_;
    XdpMode mode_;
};

// Removes the XDP program named `prog_name` from the interface, if that is
// what runs there: a killed controller's transit program when its successor
// runs the tc hook, which would otherwise leave it marking and counting.
void detachLeftoverXdp(uint32_t ifindex, const std::string& prog_name);

class TcAttachment {
public:
    TcAttachment(uint32_t ifindex, int prog_fd);  // ingress, fixed handle and priority
    ~TcAttachment();
    TcAttachment(const TcAttachment&) = delete;
    TcAttachment& operator=(const TcAttachment&) = delete;

private:
    uint32_t ifindex_;
};

}  // namespace xtap::dataplane::kernel
