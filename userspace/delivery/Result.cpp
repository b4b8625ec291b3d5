#include "delivery/Result.h"

namespace xtap::delivery {

std::string_view describe(DeliveryError error) {
    switch (error) {
        case DeliveryError::BufferTooSmall:
            return "output buffer too small";
        case DeliveryError::PacketTooLarge:
            return "datagram would exceed 65535 bytes";
        case DeliveryError::NotIp:
            return "not an IPv4 or IPv6 packet";
        case DeliveryError::TruncatedPacket:
            return "IP packet truncated";
        case DeliveryError::BadIpHeader:
            return "malformed IPv4 header";
        case DeliveryError::LengthMismatch:
            return "IP length field does not match the bytes carried";
        case DeliveryError::TruncatedFrame:
            return "Ethernet frame truncated";
        case DeliveryError::UnsupportedEthertype:
            return "EtherType is neither IPv4 nor IPv6";
        case DeliveryError::TooManyVlanTags:
            return "more than two VLAN tags";
        case DeliveryError::FamilyMismatch:
            return "EtherType and IP version disagree";
        case DeliveryError::UnknownFormat:
            return "neither a plain IP copy nor a JMirror copy";
        case DeliveryError::FormatMismatch:
            return "copy is not in the expected format";
        case DeliveryError::InvalidFamily:
            return "outer address family is neither IPv4 nor IPv6";
        case DeliveryError::InvalidAddress:
            return "IPv4 address has bytes set past the fourth";
        case DeliveryError::InvalidPort:
            return "destination port is 0";
        case DeliveryError::InvalidTtl:
            return "TTL / hop limit is 0";
        case DeliveryError::InterceptIdTooWide:
            return "JMirror intercept ID does not fit in 30 bits";
    }
    return "unknown delivery error";
}

}  // namespace xtap::delivery
