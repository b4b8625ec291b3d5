#include "ipsec/ViciResult.h"

namespace xtap::ipsec {

std::string_view describe(ViciErrc code) {
    switch (code) {
        case ViciErrc::Truncated:
            return "truncated";
        case ViciErrc::UnknownElementType:
            return "unknown element type";
        case ViciErrc::UnbalancedSection:
            return "unbalanced section";
        case ViciErrc::NotAllowedInList:
            return "element not allowed inside a list";
        case ViciErrc::OutsideList:
            return "list element outside a list";
        case ViciErrc::UnterminatedList:
            return "unterminated list";
        case ViciErrc::DuplicateKey:
            return "duplicate key";
        case ViciErrc::InvalidName:
            return "invalid name";
        case ViciErrc::ValueTooLong:
            return "value too long";
        case ViciErrc::TooDeep:
            return "sections nested too deep";
        case ViciErrc::Oversize:
            return "packet above 512 KiB";
        case ViciErrc::EmptyPacket:
            return "empty packet";
        case ViciErrc::UnknownPacketType:
            return "unknown packet type";
        case ViciErrc::TrailingBytes:
            return "trailing bytes";
        case ViciErrc::InvalidPacket:
            return "invalid packet";
        case ViciErrc::UnexpectedPacket:
            return "unexpected packet";
        case ViciErrc::UnknownCommand:
            return "unknown command";
        case ViciErrc::UnknownEvent:
            return "unknown event";
        case ViciErrc::MissingKey:
            return "missing key";
        case ViciErrc::InvalidValue:
            return "invalid value";
        case ViciErrc::InvalidRequest:
            return "invalid request";
    }
    return "unknown vici error";
}

std::string ViciError::message() const {
    std::string out(describe(code));
    if (!detail.empty()) {
        out += ": ";
        out += detail;
    }
    return out;
}

}  // namespace xtap::ipsec
