#include "dtcp/RequestDecoder.h"

#include <span>

#include "dtcp/FieldNames.h"
#include "dtcp/Hmac.h"
#include "dtcp/Message.h"
#include "dtcp/Text.h"
#include "dtcp/Values.h"

namespace xtap::dtcp {

using criteria::AddressEntry;
using criteria::MatchSpec;
using criteria::NumberEntry;
using dataplane::Family;

namespace {

constexpr size_t kMaxCdestIds = 2;
constexpr size_t kMaxInterfaces = 8;
constexpr size_t kMaxInterceptIdDigits = 32;

// An error from step (4): the reply echoes item_name and item_value.
struct ParamError {
    StatusCode code = StatusCode::BadRequest;
    std::string item_name;
    std::string item_value;
    std::string detail;
};

template <typename T>
using Checked = Result<T, ParamError>;

// Marks success of a check that produces nothing.
struct Passed {};

// An error about the field `name`, echoing its value in `m` (empty when missing).
ParamError errorAbout(StatusCode code, const Message& m, std::string_view name,
                      std::string detail) {
    const Field* f = m.find(name);
    return ParamError{code, std::string(name), f ? f->value : std::string(), std::move(detail)};
}

StatusCode codeFor(ValueProblem problem, StatusCode improper_code) {
    return problem == ValueProblem::Syntax ? StatusCode::BadRequest : improper_code;
}

// --- methods and the fields they take -------------------------------------------

enum class Method { Add, Delete, Refresh, List, Noop };

std::optional<Method> methodFrom(std::string_view text) {
    if (iequals(text, "ADD")) return Method::Add;
    if (iequals(text, "DELETE")) return Method::Delete;
    if (iequals(text, "REFRESH")) return Method::Refresh;
    if (iequals(text, "LIST")) return Method::List;
    if (iequals(text, "NOOP")) return Method::Noop;
    return std::nullopt;
}

constexpr std::string_view kAddFields[] = {
    field::kCdestId,     field::kSourceAddress, field::kDestAddress,    field::kProtocol,
    field::kSourcePort,  field::kDestPort,      field::kIcmpType,       field::kIcmpCode,
    field::kTimeoutIdle, field::kTimeoutTotal,  field::kTimeoutPackets, field::kTimeoutBytes,
    field::kFlags,       field::kPriority,      field::kAction};
constexpr std::string_view kSelectFields[] = {field::kCriteriaId, field::kCdestId, field::kFlags};
constexpr std::string_view kRefreshFields[] = {
    field::kCriteriaId,   field::kCdestId,        field::kFlags,       field::kTimeoutIdle,
    field::kTimeoutTotal, field::kTimeoutPackets, field::kTimeoutBytes};
constexpr std::string_view kNoopFields[] = {field::kFlags};
constexpr std::string_view kRadiusTriggers[] = {
    field::kInterfaceId, field::kUserName, field::kActSessId, field::kIpAddr, field::kDropPolicy};

std::span<const std::string_view> fieldsOf(Method method) {
    switch (method) {
        case Method::Add:
            return kAddFields;
        case Method::Delete:
        case Method::List:
            return kSelectFields;
        case Method::Refresh:
            return kRefreshFields;
        case Method::Noop:
            return kNoopFields;
    }
    return {};
}

bool nameIn(std::string_view name, std::span<const std::string_view> names) {
    for (std::string_view n : names) {
        if (iequals(name, n)) return true;
    }
    return false;
}

// Unknown X- fields are ignored (draft); any other field the method does not
// define is refused, since a misspelt match field would silently widen a criterion.
Checked<Passed> checkFieldsAllowed(const Message& m, Method method, std::string_view method_text) {
    for (const Field& f : m.fields) {
        if (iequals(f.name, field::kCsourceId) || iequals(f.name, field::kSeq) ||
            istartsWith(f.name, field::kExtensionPrefix) || nameIn(f.name, fieldsOf(method))) {
            continue;
        }
        return fail(ParamError{StatusCode::BadRequest, f.name, f.value,
                               quoted(f.name) + " is not a parameter of " + toUpper(method_text)});
    }
    return Passed{};
}

Checked<Passed> checkNoRadiusTriggers(const Message& m) {
    for (const Field& f : m.fields) {
        if (nameIn(f.name, kRadiusTriggers)) {
            return fail(ParamError{StatusCode::NotImplemented, f.name, f.value,
                                   "radius-flow-tap triggers are refused (dtcp.md §6: ignored, one "
                                   "would widen the criterion)"});
        }
    }
    return Passed{};
}

// --- shared field syntax ---------------------------------------------------------

enum FlagBit : unsigned {
    kFlagStatic = 1u << 0,
    kFlagSendAsync = 1u << 1,
    kFlagStats = 1u << 2,
    kFlagCriteria = 1u << 3,
    kFlagBoth = 1u << 4,
};

unsigned flagBitOf(std::string_view word) {
    if (iequals(word, "Static")) return kFlagStatic;
    if (iequals(word, "SendAsync")) return kFlagSendAsync;
    if (iequals(word, "Stats")) return kFlagStats;
    if (iequals(word, "Criteria")) return kFlagCriteria;
    if (iequals(word, "Both")) return kFlagBoth;
    return 0;
}

Checked<unsigned> parseFlags(const Message& m, unsigned allowed) {
    const Field* f = m.find(field::kFlags);
    if (!f) return 0u;
    unsigned flags = 0;
    for (std::string_view word : splitCommaList(f->value)) {
        const unsigned bit = flagBitOf(word);
        if (bit == 0 || (allowed & bit) == 0) {
            return fail(errorAbout(StatusCode::BadRequest, m, field::kFlags,
                                   "flag " + quoted(word) + " is not allowed here"));
        }
        flags |= bit;
    }
    return flags;
}

// A comma list of identifiers with their escapes decoded.
Checked<std::vector<std::string>> parseIdentifiers(const Message& m, std::string_view name) {
    const Field* f = m.find(name);
    std::vector<std::string> ids;
    for (std::string_view item : splitCommaList(f->value)) {
        if (item.empty()) {
            return fail(errorAbout(StatusCode::BadRequest, m, name, "empty name in the list"));
        }
        auto id = unescapeIdentifier(item);
        if (!id) return fail(errorAbout(StatusCode::BadRequest, m, name, id.error().detail));
        ids.push_back(std::move(id.value()));
    }
    return ids;
}

struct TimeoutFields {
    Timeouts timeouts;
    std::string_view first_given;  // name of the first Timeout-* present, even if 0
};

Checked<TimeoutFields> parseTimeouts(const Message& m) {
    struct Spec {
        std::string_view name;
        IntegerKind kind;
    };
    static constexpr Spec kSpecs[] = {{field::kTimeoutIdle, IntegerKind::DaySec},
                                      {field::kTimeoutTotal, IntegerKind::DaySec},
                                      {field::kTimeoutPackets, IntegerKind::N32},
                                      {field::kTimeoutBytes, IntegerKind::N64}};
    TimeoutFields out;
    for (const Spec& spec : kSpecs) {
        const Field* f = m.find(spec.name);
        if (!f) continue;
        const auto value = parseInteger(f->value, spec.kind);
        if (!value) {
            return fail(errorAbout(StatusCode::BadRequest, m, spec.name,
                                   quoted(f->value) + " is not a number in range"));
        }
        if (out.first_given.empty()) out.first_given = spec.name;
        if (*value == 0) continue;  // 0 sets no limit
        if (spec.name == field::kTimeoutIdle)
            out.timeouts.idle_seconds = static_cast<uint32_t>(*value);
        if (spec.name == field::kTimeoutTotal)
            out.timeouts.total_seconds = static_cast<uint32_t>(*value);
        if (spec.name == field::kTimeoutPackets)
            out.timeouts.packets = static_cast<uint32_t>(*value);
        if (spec.name == field::kTimeoutBytes) out.timeouts.bytes = *value;
    }
    return out;
}

ParamError timeoutMissing(const Message& m, const TimeoutFields& t, std::string detail) {
    if (t.first_given.empty()) return ParamError{StatusCode::ImproperTimeout, {}, {}, detail};
    return errorAbout(StatusCode::ImproperTimeout, m, t.first_given, std::move(detail));
}

// Criteria-ID (list or range) or one Cdest-ID, never both.
Checked<std::optional<Selection>> parseSelection(const Message& m) {
    const Field* ids = m.find(field::kCriteriaId);
    const Field* cdest = m.find(field::kCdestId);
    if (ids && cdest) {
        return fail(errorAbout(StatusCode::BadRequest, m, field::kCdestId,
                               "Criteria-ID and Cdest-ID together"));
    }
    if (cdest) {
        auto names = parseIdentifiers(m, field::kCdestId);
        if (!names) return fail(std::move(names.error()));
        if (names.value().size() != 1) {
            return fail(errorAbout(StatusCode::BadRequest, m, field::kCdestId,
                                   "a selection takes exactly one Cdest-ID"));
        }
        return std::optional<Selection>(CdestSelection{std::move(names.value().front())});
    }
    if (ids) {
        auto list = parseNumberList(ids->value, IntegerKind::N32);
        if (!list) {
            return fail(
                errorAbout(StatusCode::BadRequest, m, field::kCriteriaId, list.error().detail));
        }
        return std::optional<Selection>(CriteriaIdSelection{std::move(list.value())});
    }
    return std::optional<Selection>();
}

Checked<Selection> parseRequiredSelection(const Message& m) {
    auto selection = parseSelection(m);
    if (!selection) return fail(std::move(selection.error()));
    if (!selection.value()) {
        return fail(ParamError{StatusCode::BadRequest,
                               std::string(field::kCriteriaId),
                               {},
                               "needs Criteria-ID or Cdest-ID"});
    }
    return std::move(*selection.value());
}

// --- ADD -------------------------------------------------------------------------

// The 501 cases of ADD, checked before any other parameter.
Checked<Passed> checkAddImplemented(const Message& m) {
    if (const Field* f = m.find(field::kFilterFamily)) {
        if (iequals(f->value, "ccc")) {
            return fail(errorAbout(
                StatusCode::NotImplemented, m, field::kFilterFamily,
                "ccc criteria are refused (dtcp.md §6: xtap copies IPv4 and IPv6 only)"));
        }
        return fail(
            errorAbout(StatusCode::BadRequest, m, field::kFilterFamily, "unknown filter family"));
    }
    if (const Field* f = m.find(field::kAction)) {
        if (iequals(f->value, "Redirect") || iequals(f->value, "Block")) {
            return fail(errorAbout(StatusCode::NotImplemented, m, field::kAction,
                                   "xtap never alters or drops the original packets"));
        }
        if (!iequals(f->value, "Copy")) {
            return fail(errorAbout(StatusCode::BadRequest, m, field::kAction, "unknown action"));
        }
    }
    return Passed{};
}

Checked<Family> parseFamily(const Message& m) {
    const Field* f = m.find(field::kIpVersion);
    if (!f || iequals(f->value, "ipv4")) return Family::V4;
    if (iequals(f->value, "ipv6")) return Family::V6;
    return fail(errorAbout(StatusCode::BadRequest, m, field::kIpVersion, "expected ipv4 or ipv6"));
}

Checked<MatchSpec> parseMatch(const Message& m, Family family, std::vector<Field>& text) {
    struct AddressField {
        std::string_view name;
        std::vector<AddressEntry> MatchSpec::*target;
    };
    struct NumberField {
        std::string_view name;
        IntegerKind kind;
        std::vector<NumberEntry> MatchSpec::*target;
    };
    static constexpr AddressField kAddressFields[] = {{field::kSourceAddress, &MatchSpec::src},
                                                      {field::kDestAddress, &MatchSpec::dst}};
    static constexpr NumberField kNumberFields[] = {
        {field::kProtocol, IntegerKind::N8, &MatchSpec::proto},
        {field::kSourcePort, IntegerKind::N16, &MatchSpec::sport},
        {field::kDestPort, IntegerKind::N16, &MatchSpec::dport},
        {field::kIcmpType, IntegerKind::N8, &MatchSpec::icmp_type},
        {field::kIcmpCode, IntegerKind::N8, &MatchSpec::icmp_code}};

    MatchSpec spec;
    spec.family = family;
    for (const AddressField& af : kAddressFields) {
        const Field* f = m.find(af.name);
        if (!f) continue;  // missing is `*`: an empty list
        text.push_back(Field{std::string(af.name), f->value});
        auto list = parseAddressList(f->value, family);
        if (!list) {
            return fail(errorAbout(codeFor(list.error().problem, StatusCode::ImproperFilter), m,
                                   af.name, list.error().detail));
        }
        spec.*af.target = std::move(list.value());
    }
    for (const NumberField& nf : kNumberFields) {
        const Field* f = m.find(nf.name);
        if (!f) continue;
        text.push_back(Field{std::string(nf.name), f->value});
        auto list = parseNumberList(f->value, nf.kind);
        if (!list) {
            return fail(errorAbout(codeFor(list.error().problem, StatusCode::ImproperFilter), m,
                                   nf.name, list.error().detail));
        }
        spec.*nf.target = std::move(list.value());
    }
    return spec;
}

// Ports limit a criterion to TCP/UDP, ICMP type/code to ICMP of its family;
// without an address anchor the criterion is wide (dtcp.md §4).
Checked<Passed> checkMatchSemantics(const Message& m, const MatchSpec& s,
                                    const DecodePolicy& policy) {
    const bool source_port = constrainsNumbers(s.sport, IntegerKind::N16);
    const bool dest_port = constrainsNumbers(s.dport, IntegerKind::N16);
    const bool icmp_type = constrainsNumbers(s.icmp_type, IntegerKind::N8);
    const bool icmp_code = constrainsNumbers(s.icmp_code, IntegerKind::N8);
    const std::string_view port_name = source_port ? field::kSourcePort : field::kDestPort;
    const std::string_view icmp_name = icmp_type ? field::kIcmpType : field::kIcmpCode;
    const bool ports = source_port || dest_port;
    const bool icmp = icmp_type || icmp_code;
    if (ports && icmp) {
        return fail(errorAbout(StatusCode::ImproperFilter, m, icmp_name,
                               "ports and ICMP type or code together match nothing"));
    }
    if (ports && !numberListMatches(s.proto, dataplane::kProtoTcp) &&
        !numberListMatches(s.proto, dataplane::kProtoUdp)) {
        return fail(errorAbout(StatusCode::ImproperFilter, m, port_name,
                               "ports need protocol 6 or 17 in Protocol"));
    }
    const uint8_t icmp_protocol =
        s.family == Family::V4 ? dataplane::kProtoIcmp : dataplane::kProtoIcmpV6;
    if (icmp && !numberListMatches(s.proto, icmp_protocol)) {
        return fail(errorAbout(
            StatusCode::ImproperFilter, m, icmp_name,
            "ICMP type or code needs protocol " + std::to_string(icmp_protocol) + " in Protocol"));
    }
    if (!policy.allow_wide_criteria && !anchorsAddresses(s.src, s.family) &&
        !anchorsAddresses(s.dst, s.family)) {
        return fail(errorAbout(StatusCode::ImproperFilter, m, field::kSourceAddress,
                               "no constraint on either address"));
    }
    return Passed{};
}

bool hasWspOrComma(std::string_view text) {
    for (char c : text) {
        if (isWsp(c) || c == ',') return true;
    }
    return false;
}

Checked<std::vector<std::string>> parseInterfaces(const Message& m, std::string_view name) {
    const Field* f = m.find(name);
    std::vector<std::string> names;
    if (!f) return names;
    for (std::string_view item : splitCommaList(f->value)) {
        if (item.empty() || hasWspOrComma(item)) {
            return fail(errorAbout(StatusCode::BadRequest, m, name, "bad interface name"));
        }
        names.emplace_back(item);
    }
    if (names.size() > kMaxInterfaces) {
        return fail(errorAbout(StatusCode::BadRequest, m, name, "more than 8 interfaces"));
    }
    return names;
}

Checked<std::optional<DeliverySet>> parseDelivery(const Message& m, size_t cdest_count) {
    static constexpr std::string_view kMembers[] = {field::kCdestDestAddress, field::kCdestDestPort,
                                                    field::kCdestSourceAddress,
                                                    field::kCdestSourcePort};
    bool any = m.find(field::kCdestTtl) != nullptr;
    for (std::string_view member : kMembers) any = any || m.find(member) != nullptr;
    if (!any) return std::optional<DeliverySet>();
    for (std::string_view member : kMembers) {
        if (!m.find(member)) {
            return fail(ParamError{StatusCode::JTapFailure,
                                   std::string(member),
                                   {},
                                   "the X-JTap-Cdest-* set lacks " + std::string(member)});
        }
    }

    DeliverySet set;
    for (std::string_view item : splitCommaList(m.find(field::kCdestDestAddress)->value)) {
        const auto address = parseIpAddress(item);
        if (!address) {
            return fail(errorAbout(StatusCode::BadRequest, m, field::kCdestDestAddress,
                                   quoted(item) + " is not an IP address"));
        }
        set.dest_addresses.push_back(*address);
    }
    for (std::string_view item : splitCommaList(m.find(field::kCdestDestPort)->value)) {
        const auto port = parseInteger(item, IntegerKind::N16);
        if (!port || *port == 0) {
            return fail(errorAbout(StatusCode::BadRequest, m, field::kCdestDestPort,
                                   quoted(item) + " is not a UDP port"));
        }
        set.dest_ports.push_back(static_cast<uint16_t>(*port));
    }
    if (set.dest_addresses.size() > kMaxCdestIds) {
        return fail(errorAbout(StatusCode::BadRequest, m, field::kCdestDestAddress,
                               "more than 2 content destinations"));
    }
    if (set.dest_ports.size() > kMaxCdestIds) {
        return fail(errorAbout(StatusCode::BadRequest, m, field::kCdestDestPort,
                               "more than 2 content destinations"));
    }
    const auto source = parseIpAddress(m.find(field::kCdestSourceAddress)->value);
    if (!source) {
        return fail(errorAbout(StatusCode::BadRequest, m, field::kCdestSourceAddress,
                               "not one IP address"));
    }
    set.source_address = *source;
    const auto source_port = parseInteger(m.find(field::kCdestSourcePort)->value, IntegerKind::N16);
    if (!source_port || *source_port == 0) {
        return fail(
            errorAbout(StatusCode::BadRequest, m, field::kCdestSourcePort, "not one UDP port"));
    }
    set.source_port = static_cast<uint16_t>(*source_port);
    if (const Field* ttl = m.find(field::kCdestTtl)) {
        const auto value = parseInteger(ttl->value, IntegerKind::N8);
        if (!value || *value == 0) {
            return fail(
                errorAbout(StatusCode::BadRequest, m, field::kCdestTtl, "TTL must be 1 to 255"));
        }
        set.ttl = static_cast<uint8_t>(*value);
    }
    if (set.dest_addresses.size() != cdest_count) {
        return fail(errorAbout(StatusCode::ImproperFilter, m, field::kCdestDestAddress,
                               "one destination address per Cdest-ID"));
    }
    if (set.dest_ports.size() != cdest_count) {
        return fail(errorAbout(StatusCode::ImproperFilter, m, field::kCdestDestPort,
                               "one destination port per Cdest-ID"));
    }
    for (const IpAddress& dest : set.dest_addresses) {
        if (dest.family != set.source_address.family) {
            return fail(errorAbout(StatusCode::ImproperFilter, m, field::kCdestSourceAddress,
                                   "source and destination addresses of different families"));
        }
    }
    return std::optional<DeliverySet>(std::move(set));
}

std::optional<unsigned> hexValue(char c) {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<unsigned>(c - 'A' + 10);
    return std::nullopt;
}

Checked<std::optional<MdInterceptId>> parseInterceptId(const Message& m) {
    const Field* f = m.find(field::kMdInterceptId);
    if (!f) return std::optional<MdInterceptId>();
    if (f->value.empty() || f->value.size() > kMaxInterceptIdDigits) {
        return fail(errorAbout(StatusCode::BadRequest, m, field::kMdInterceptId,
                               "expected 1 to 32 hex digits"));
    }
    uint64_t low = 0;
    for (char c : f->value) {
        const auto digit = hexValue(c);
        if (!digit) {
            return fail(errorAbout(StatusCode::BadRequest, m, field::kMdInterceptId,
                                   "expected 1 to 32 hex digits"));
        }
        low = ((low << 4) | *digit) & 0xffffffffULL;  // only the low bits are carried
    }
    return std::optional<MdInterceptId>(
        MdInterceptId{f->value, static_cast<uint32_t>(low & 0x3fffffffU)});
}

std::vector<Field> extensionText(const Message& m) {
    std::vector<Field> out;
    for (const Field& f : m.fields) {
        if (!istartsWith(f.name, field::kJTapPrefix) && !iequals(f.name, field::kMdInterceptId)) {
            continue;
        }
        if (m.find(f.name) != &f) continue;  // a repeated name: the first counts
        out.push_back(f);
    }
    return out;
}

Checked<AddRequest> decodeAdd(const Message& m, const DecodePolicy& policy) {
    AddRequest add;
    if (!m.find(field::kCdestId)) {
        return fail(ParamError{
            StatusCode::BadRequest, std::string(field::kCdestId), {}, "ADD needs a Cdest-ID"});
    }
    auto cdest_ids = parseIdentifiers(m, field::kCdestId);
    if (!cdest_ids) return fail(std::move(cdest_ids.error()));
    if (cdest_ids.value().size() > kMaxCdestIds) {
        return fail(errorAbout(StatusCode::BadRequest, m, field::kCdestId,
                               "more than 2 content destinations"));
    }
    add.cdest_ids = std::move(cdest_ids.value());

    auto family = parseFamily(m);
    if (!family) return fail(std::move(family.error()));
    auto match = parseMatch(m, family.value(), add.match_text);
    if (!match) return fail(std::move(match.error()));
    add.match = std::move(match.value());
    if (auto checked = checkMatchSemantics(m, add.match, policy); !checked) {
        return fail(std::move(checked.error()));
    }

    auto input = parseInterfaces(m, field::kInputInterface);
    if (!input) return fail(std::move(input.error()));
    add.input_interfaces = std::move(input.value());
    auto output = parseInterfaces(m, field::kOutputInterface);
    if (!output) return fail(std::move(output.error()));
    add.output_interfaces = std::move(output.value());
    if (const Field* vrf = m.find(field::kVrfName)) {
        if (vrf->value.empty() || hasWspOrComma(vrf->value)) {
            return fail(errorAbout(StatusCode::BadRequest, m, field::kVrfName, "bad VRF name"));
        }
        if (!add.input_interfaces.empty() || !add.output_interfaces.empty()) {
            return fail(errorAbout(StatusCode::ImproperFilter, m, field::kVrfName,
                                   "a VRF together with interface selectors"));
        }
        add.vrf_name = vrf->value;
    }

    if (const Field* priority = m.find(field::kPriority)) {
        const auto value = parseInteger(priority->value, IntegerKind::N8);
        if (!value || *value == 0) {
            return fail(errorAbout(StatusCode::BadRequest, m, field::kPriority,
                                   "priority must be 1 to 255"));
        }
        add.priority = static_cast<uint8_t>(*value);
    }

    auto flags = parseFlags(m, kFlagStatic | kFlagSendAsync);
    if (!flags) return fail(std::move(flags.error()));
    add.is_static = (flags.value() & kFlagStatic) != 0;
    add.send_async = (flags.value() & kFlagSendAsync) != 0;

    auto timeouts = parseTimeouts(m);
    if (!timeouts) return fail(std::move(timeouts.error()));
    if (!add.is_static && !timeouts.value().timeouts.any()) {
        return fail(timeoutMissing(m, timeouts.value(),
                                   timeouts.value().first_given.empty()
                                       ? "needs a Timeout-* or Flags: Static"
                                       : "every timeout is 0 and the criterion is not Static"));
    }
    add.timeouts = timeouts.value().timeouts;

    auto delivery = parseDelivery(m, add.cdest_ids.size());
    if (!delivery) return fail(std::move(delivery.error()));
    add.delivery = std::move(delivery.value());

    auto intercept = parseInterceptId(m);
    if (!intercept) return fail(std::move(intercept.error()));
    add.md_intercept_id = std::move(intercept.value());

    add.extension_text = extensionText(m);
    return add;
}

// --- DELETE, REFRESH, LIST, NOOP -------------------------------------------------

Checked<DeleteRequest> decodeDelete(const Message& m) {
    auto flags = parseFlags(m, kFlagStatic);
    if (!flags) return fail(std::move(flags.error()));
    auto selection = parseRequiredSelection(m);
    if (!selection) return fail(std::move(selection.error()));
    return DeleteRequest{std::move(selection.value()), (flags.value() & kFlagStatic) != 0};
}

Checked<RefreshRequest> decodeRefresh(const Message& m) {
    // Static is accepted and has no effect: REFRESH cannot make a criterion Static.
    auto flags = parseFlags(m, kFlagStatic);
    if (!flags) return fail(std::move(flags.error()));
    auto selection = parseRequiredSelection(m);
    if (!selection) return fail(std::move(selection.error()));
    auto timeouts = parseTimeouts(m);
    if (!timeouts) return fail(std::move(timeouts.error()));
    if (!timeouts.value().timeouts.any()) {
        return fail(timeoutMissing(m, timeouts.value(), "REFRESH needs a non-zero Timeout-*"));
    }
    return RefreshRequest{std::move(selection.value()), timeouts.value().timeouts};
}

Checked<ListRequest> decodeList(const Message& m) {
    auto flags = parseFlags(m, kFlagStats | kFlagCriteria | kFlagBoth);
    if (!flags) return fail(std::move(flags.error()));
    auto selection = parseSelection(m);
    if (!selection) return fail(std::move(selection.error()));
    ListRequest list;
    list.selection = std::move(selection.value());
    const unsigned f = flags.value();
    const bool stats = (f & (kFlagStats | kFlagBoth)) != 0;
    const bool criteria = (f & (kFlagCriteria | kFlagBoth)) != 0;
    if (stats && !criteria) list.detail = ListDetail::Stats;
    if (criteria && !stats) list.detail = ListDetail::Criteria;
    return list;
}

Checked<NoopRequest> decodeNoop(const Message& m) {
    auto flags = parseFlags(m, kFlagSendAsync);
    if (!flags) return fail(std::move(flags.error()));
    return NoopRequest{(flags.value() & kFlagSendAsync) != 0};
}

template <typename T>
Checked<Request> asRequest(Checked<T> decoded) {
    if (!decoded) return fail(std::move(decoded.error()));
    return Request{std::move(decoded.value())};
}

Checked<Request> decodeMethod(const Message& m, Method method, std::string_view method_text,
                              const DecodePolicy& policy) {
    if (auto checked = checkNoRadiusTriggers(m); !checked) return fail(std::move(checked.error()));
    if (method == Method::Add) {
        if (auto checked = checkAddImplemented(m); !checked) {
            return fail(std::move(checked.error()));
        }
    }
    if (auto checked = checkFieldsAllowed(m, method, method_text); !checked) {
        return fail(std::move(checked.error()));
    }
    switch (method) {
        case Method::Add:
            return asRequest(decodeAdd(m, policy));
        case Method::Delete:
            return asRequest(decodeDelete(m));
        case Method::Refresh:
            return asRequest(decodeRefresh(m));
        case Method::List:
            return asRequest(decodeList(m));
        case Method::Noop:
            return asRequest(decodeNoop(m));
    }
    return fail(ParamError{StatusCode::NotImplemented, {}, {}, "unknown method"});
}

}  // namespace

StatusCode auditCode(DiscardReason reason) {
    switch (reason) {
        case DiscardReason::BadAuthentication:
            return StatusCode::BadAuthentication;
        case DiscardReason::CsourceMismatch:
            return StatusCode::UnknownControlSource;
        case DiscardReason::SeqRejected:
            return StatusCode::BadSequence;
    }
    return StatusCode::BadRequest;
}

DecodeOutcome decodeRequest(std::string_view message_bytes, std::string_view ssh_user,
                            std::string_view hmac_key, SeqWindow& seq_window,
                            const DecodePolicy& policy) {
    // (1) structure
    auto parsed = parseMessage(message_bytes);
    if (!parsed) {
        RequestError error;
        const auto& version = parsed.error().version;
        error.reply_version = version ? replyVersionFor(*version) : kDefaultNotificationVersion;
        error.detail = parsed.error().detail;
        return error;
    }
    const Message& m = parsed.value();
    const RequestLine* line = m.requestLine();
    if (!line) {
        RequestError error;
        error.reply_version = replyVersionFor(m.statusLine()->version);
        error.detail = "a status line where a request was expected";
        return error;
    }
    const Version reply_version = replyVersionFor(line->version);
    auto structureError = [&](std::string_view name, std::optional<uint64_t> seq,
                              std::string detail) {
        RequestError error;
        error.reply_version = reply_version;
        error.seq = seq;
        error.item_name = std::string(name);
        if (const Field* f = m.find(name)) error.item_value = f->value;
        error.detail = std::move(detail);
        return error;
    };
    const Field* csource = m.find(field::kCsourceId);
    if (!csource || csource->value.empty()) {
        return structureError(field::kCsourceId, std::nullopt, "no Csource-ID");
    }
    const Field* seq_field = m.find(field::kSeq);
    if (!seq_field) return structureError(field::kSeq, std::nullopt, "no Seq");
    const auto seq = parseInteger(seq_field->value, IntegerKind::N64);
    if (!seq) return structureError(field::kSeq, std::nullopt, "Seq is not an N64");
    if (!m.authentication_info) {
        // Not echoed: an Authentication-Info line inside the reply would end its signed part.
        return structureError({}, seq, "no Authentication-Info");
    }

    // (2) authenticity, identity and freshness: failures get no reply
    if (!hmacSha1Matches(hmac_key, message_bytes.substr(0, m.signed_length),
                         *m.authentication_info)) {
        return Discard{DiscardReason::BadAuthentication, csource->value, seq, std::nullopt,
                       "Authentication-Info does not match"};
    }
    const auto claimed = unescapeIdentifier(csource->value);
    if (!claimed || claimed.value() != ssh_user) {
        return Discard{
            DiscardReason::CsourceMismatch, csource->value, seq, std::nullopt,
            "Csource-ID " + quoted(csource->value) + " is not the SSH user " + quoted(ssh_user)};
    }
    const SeqVerdict verdict = seq_window.accept(*seq);
    if (!isAccepted(verdict)) {
        return Discard{DiscardReason::SeqRejected, csource->value, seq, verdict,
                       "Seq " + std::to_string(*seq) + " " + std::string(describe(verdict))};
    }

    RequestError error;
    error.reply_version = reply_version;
    error.seq = seq;
    error.seq_verdict = verdict;

    // (3) version
    if (!isSupported(line->version)) {
        error.code = StatusCode::VersionNotSupported;
        error.detail = formatVersion(line->version) + " is not supported";
        return error;
    }

    // (4) method and parameters
    const auto method = methodFrom(line->method);
    if (!method) {
        error.code = StatusCode::NotImplemented;
        error.detail =
            "method " + quoted(line->method) + " is not a DTCP method xtap serves (dtcp.md §5)";
        return error;
    }
    auto request = decodeMethod(m, *method, line->method, policy);
    if (!request) {
        ParamError& p = request.error();
        error.code = p.code;
        error.item_name = std::move(p.item_name);
        error.item_value = std::move(p.item_value);
        error.detail = std::move(p.detail);
        return error;
    }
    return DecodedRequest{line->version, *seq, verdict, claimed.value(),
                          std::move(request.value())};
}

}  // namespace xtap::dtcp
