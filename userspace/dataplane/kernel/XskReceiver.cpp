#include "dataplane/kernel/XskReceiver.h"

#include <bpf/bpf.h>
#include <linux/if_xdp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

namespace xtap::dataplane::kernel {

struct XskReceiver::Rings {
    xsk_ring_prod fill{};
    xsk_ring_cons comp{};
    xsk_ring_cons rx{};
    std::vector<uint64_t> free_frames;
};

XskReceiver::XskReceiver(const std::string& ifname, uint32_t queue, int xskmap_fd,
                         uint32_t xsk_index, XskOptions options)
    : rings_(std::make_unique<Rings>()), options_(options) {
    area_len_ = size_t(options.frames) * options.frame_size;
    area_ = ::mmap(nullptr, area_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area_ == MAP_FAILED) {
        area_ = nullptr;
        throw std::system_error(errno, std::generic_category(), "allocate UMEM");
    }
    auto cleanup = [this] {
        if (xsk_) xsk_socket__delete(xsk_);
        if (umem_) xsk_umem__delete(umem_);
        ::munmap(area_, area_len_);
        xsk_ = nullptr;
        umem_ = nullptr;
        area_ = nullptr;
    };

    xsk_umem_config ucfg{};
    ucfg.fill_size = options.fill_ring;
    ucfg.comp_size = options.fill_ring;
    ucfg.frame_size = options.frame_size;
    if (int err = xsk_umem__create(&umem_, area_, area_len_, &rings_->fill, &rings_->comp, &ucfg)) {
        cleanup();
        throw std::system_error(-err, std::generic_category(), "create UMEM for " + ifname);
    }

    xsk_socket_config scfg{};
    scfg.rx_size = options.rx_ring;
    scfg.tx_size = 0;
    scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    scfg.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP;
    if (int err =
            xsk_socket__create(&xsk_, ifname.c_str(), queue, umem_, &rings_->rx, nullptr, &scfg)) {
        cleanup();
        throw std::system_error(-err, std::generic_category(), "create AF_XDP socket on " + ifname);
    }
    // Our own slot, not libxdp's queue-id slot: several capture interfaces
    // all use queue 0.
    const int fd = xsk_socket__fd(xsk_);
    if (bpf_map_update_elem(xskmap_fd, &xsk_index, &fd, BPF_ANY) != 0) {
        const int err = errno;
        cleanup();
        throw std::system_error(err, std::generic_category(), "install AF_XDP socket of " + ifname);
    }

    rings_->free_frames.reserve(options.frames);
    for (uint32_t i = 0; i < options.frames; ++i)
        rings_->free_frames.push_back(uint64_t(i) * options.frame_size);
    refill();
}

XskReceiver::~XskReceiver() {
    if (xsk_) xsk_socket__delete(xsk_);
    if (umem_) xsk_umem__delete(umem_);
    if (area_) ::munmap(area_, area_len_);
}

int XskReceiver::fd() const {
    return xsk_socket__fd(xsk_);
}

void XskReceiver::refill() {
    auto& r = *rings_;
    // reserve() is all or nothing: ask only for what the ring has room for.
    const uint32_t spare = static_cast<uint32_t>(r.free_frames.size());
    const uint32_t want = std::min(spare, xsk_prod_nb_free(&r.fill, spare));
    if (want == 0) return;
    uint32_t idx = 0;
    const uint32_t got = xsk_ring_prod__reserve(&r.fill, want, &idx);
    for (uint32_t i = 0; i < got; ++i) {
        *xsk_ring_prod__fill_addr(&r.fill, idx + i) = r.free_frames.back();
        r.free_frames.pop_back();
    }
    if (got) xsk_ring_prod__submit(&r.fill, got);
    // need-wakeup: the kernel waits for a syscall before it uses new fill entries.
    if (xsk_ring_prod__needs_wakeup(&r.fill))
        ::recvfrom(fd(), nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
}

size_t XskReceiver::receive(const std::function<void(const CopiedFrame&)>& fn, uint32_t max_batch) {
    auto& r = *rings_;
    uint32_t idx = 0;
    const uint32_t n = xsk_ring_cons__peek(&r.rx, max_batch ? max_batch : options_.batch, &idx);
    for (uint32_t i = 0; i < n; ++i) {
        const xdp_desc* d = xsk_ring_cons__rx_desc(&r.rx, idx + i);
        const uint64_t addr = xsk_umem__add_offset_to_addr(d->addr);
        auto* data = static_cast<const uint8_t*>(xsk_umem__get_data(area_, addr));
        uint32_t len = d->len;
        const xtap_copy_meta* meta = nullptr;
        if (options_.meta_in_frame) {
            if (len >= sizeof(xtap_copy_meta)) {
                meta = reinterpret_cast<const xtap_copy_meta*>(data);
                data += sizeof(xtap_copy_meta);
                len -= sizeof(xtap_copy_meta);
            }
        } else if (addr % options_.frame_size >= sizeof(xtap_copy_meta)) {
            // Copy mode copies data_meta..data_end; the metadata ends where data starts.
            meta = reinterpret_cast<const xtap_copy_meta*>(data - sizeof(xtap_copy_meta));
        }
        if (meta && meta->magic != XTAP_META_MAGIC) meta = nullptr;
        fn(CopiedFrame{std::span<const uint8_t>(data, len), meta});
        r.free_frames.push_back(xsk_umem__extract_addr(d->addr));
    }
    if (n) xsk_ring_cons__release(&r.rx, n);
    refill();
    return n;
}

XskStats XskReceiver::stats() const {
    xdp_statistics s{};
    socklen_t len = sizeof s;
    XskStats out;
    if (::getsockopt(fd(), SOL_XDP, XDP_STATISTICS, &s, &len) == 0) {
        out.rx_dropped = s.rx_dropped;
        out.rx_invalid_descs = s.rx_invalid_descs;
        out.rx_ring_full = s.rx_ring_full;
        out.rx_fill_ring_empty_descs = s.rx_fill_ring_empty_descs;
    }
    return out;
}

}  // namespace xtap::dataplane::kernel
