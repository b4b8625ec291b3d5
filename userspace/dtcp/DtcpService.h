// DtcpService: executes the DTCP requests of a user against the CriteriaStore
// (dtcp.md §5, §6, §10, §11) and writes the signed replies and notifications.
// ADD resolves interfaces and content destinations, compiles the match and
// publishes; DELETE, REFRESH and LIST act on the user's own criteria only;
// tick() enforces the timeouts. Pure: no sockets, threads or clock reads; the
// caller passes the time in and writes the bytes it gets back. Not
// thread-safe: the caller serializes every call on the service and its store.
//
// Nothing here logs. Audit events name users, Criteria-IDs and Cdest-IDs,
// never targets (addresses, ports, criteria contents).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "criteria/CriteriaCompiler.h"
#include "criteria/CriteriaStore.h"
#include "delivery/DeliveryParams.h"
#include "dtcp/Hmac.h"
#include "dtcp/RequestDecoder.h"
#include "dtcp/Requests.h"
#include "dtcp/Responses.h"
#include "dtcp/SeqWindow.h"
#include "dtcp/Status.h"
#include "dtcp/Version.h"

namespace xtap::dtcp {

using criteria::Instant;

// What the service needs to know of a configured user (config::User, resolved).
struct UserContext {
    std::string name;  // the SSH user, which Csource-ID must equal
    std::string hmac_key = std::string(kDefaultHmacKey);
    uint32_t max_criteria = 3000;            // 550 above it
    uint32_t max_content_destinations = 16;  // distinct endpoints; 551 above it
    uint8_t minimum_priority = 0;            // added to each ADD's Priority
    bool allow_wide = false;                 // criteria without an address constraint
    uint64_t max_filters_per_criterion = criteria::CompileLimits{}.max_filters;
    // What a plain Cdest-ID names (ADD without the X-JTap-Cdest-* set).
    std::map<std::string, delivery::OuterHeader, std::less<>> destinations;
    delivery::Format delivery_format = delivery::Format::Flowtap;
};

// The configured users by name; nullptr for an unknown one.
using UserLookup = std::function<const UserContext*(std::string_view user)>;

// Interface names as a mediation device writes them, to Linux ifindexes.
class InterfaceResolver {
  public:
    virtual ~InterfaceResolver() = default;
    // `name` as written (`ge-1/3/5.0`, `ge-1/3/5` for unit 0, or a Linux name):
    // the alias table first, then Linux names. nullopt when unknown or not a
    // transit interface.
    virtual std::optional<uint32_t> transitInterface(std::string_view name) const = 0;
    // The ifindexes of the VRF device's member transit interfaces; nullopt
    // when there is no such VRF.
    virtual std::optional<std::vector<uint32_t>> vrfMembers(std::string_view vrf_name) const = 0;
};

enum class DestinationRoute : uint8_t {
    Refused,    // 430: no copy may leave in clear
    Tunnel,     // inside a configured IPsec tunnel's selectors
    Cleartext,  // in the operator's cleartext list: allowed, audited
};

// Where copies may go (dtcp.md §6).
class DestinationPolicy {
  public:
    virtual ~DestinationPolicy() = default;
    // Whether `address` is one of the appliance's own, usable as an outer source.
    virtual bool isOwnAddress(dataplane::Family family,
                              const dataplane::Address& address) const = 0;
    // How copies with this outer header may leave for `user`: through a tunnel
    // whose remote selectors hold the destination and local selectors the
    // source (and the user may use that destination), through the cleartext
    // list, or not at all.
    virtual DestinationRoute route(std::string_view user,
                                   const delivery::OuterHeader& outer) const = 0;
};

struct AuditEvent {
    enum class Kind : uint8_t {
        Added,
        Deleted,
        Refreshed,
        TimedOut,
        CleartextDestination,  // an ADD uses a destination of the cleartext list
    };
    Kind kind = Kind::Added;
    criteria::CriterionKey criterion;
    std::string cdest_id;  // CleartextDestination only
};

struct ServiceResult {
    StatusCode status = StatusCode::Ok;      // of the reply
    std::string reply;                       // signed; empty for a silent discard
    std::vector<std::string> notifications;  // signed 130 / 131, sent after the reply
    std::optional<Discard> discard;          // for the audit log
    std::vector<AuditEvent> audit;

    // The reply, then the notifications: what the channel writes. The rvalue
    // form moves them (a LIST reply of 100,000 criteria is ~40 MB).
    std::vector<std::string> messages() const&;
    std::vector<std::string> messages() &&;
};

// A signed notification for every open DTCP channel of `user`.
struct UserNotification {
    std::string user;
    uint32_t criteria_id = 0;
    std::string message;
};

struct TickResult {
    std::vector<UserNotification> notifications;  // 390 for SendAsync criteria
    std::vector<AuditEvent> audit;                // TimedOut
};

struct VrfUpdate {
    size_t republished = 0;
    std::vector<criteria::CriterionKey> failed;  // kept their previous filters
};

class DtcpService {
  public:
    // LIST's Average-Bandwidth averages over this window.
    static constexpr uint64_t kBandwidthWindowNs = criteria::CriteriaStore::kBandwidthWindowNs;

    DtcpService(criteria::CriteriaStore& store, const InterfaceResolver& interfaces,
                const DestinationPolicy& destinations);

    // One message of `user`'s channel, as the Framer yielded it: decoded
    // against `seq_window` (dtcp.md §7 check order), then executed.
    // `client_address` is the SSH peer, which LIST shows as Csource-Address.
    ServiceResult handleMessage(std::string_view message_bytes, const UserContext& user,
                                SeqWindow& seq_window, std::string_view client_address,
                                const Instant& now);
    ServiceResult execute(const DecodedRequest& request, const UserContext& user,
                          std::string_view client_address, const Instant& now);

    // Reads the counters, deletes every criterion whose timeout ran out, and
    // samples the bandwidth window. Call about once a second.
    TickResult tick(const Instant& now, const UserLookup& users);

    // The version of the user's last request (0.7 before the first).
    Version notificationVersion(std::string_view user) const;

    // Republishes saved criteria, each rebuilt against the current
    // configuration as an ADD would be (interfaces, destinations, policy).
    criteria::RestoreReport restore(const criteria::StoreSnapshot& snapshot,
                                    const UserLookup& users, const Instant& now);

    // The VRF's members changed: recompile its criteria with the new members.
    // A VRF that vanished or has no members leaves them as they were.
    VrfUpdate updateVrf(std::string_view vrf_name, const UserLookup& users);

  private:
    struct AddFailure {
        StatusCode code = StatusCode::BadRequest;
        std::string item_name;
        std::string item_value;
    };
    // The unknown single Criteria-ID, or the IDs selected.
    using SelectResult = std::variant<uint32_t, std::vector<uint32_t>>;

    std::variant<criteria::Publication, AddFailure> buildPublication(const AddRequest& add,
                                                                     const UserContext& user,
                                                                     uint32_t criteria_id) const;
    std::variant<std::vector<dataplane::Filter>, AddFailure> buildFilters(
        const AddRequest& add, const UserContext& user) const;
    std::variant<std::vector<criteria::ContentDestination>, AddFailure> buildDestinations(
        const AddRequest& add, const UserContext& user, uint32_t criteria_id) const;

    Response addCriterion(const DecodedRequest& request, const AddRequest& add,
                          const UserContext& user, std::string_view client_address,
                          const Instant& now, ServiceResult& result);
    Response deleteCriteria(const DecodedRequest& request, const DeleteRequest& del,
                            const UserContext& user, const Instant& now, ServiceResult& result);
    Response refreshCriteria(const DecodedRequest& request, const RefreshRequest& refresh,
                             const UserContext& user, const Instant& now, ServiceResult& result);
    // The signed reply (always 200), written entry by entry (ListWriter).
    std::string listCriteria(const DecodedRequest& request, const ListRequest& list,
                             const UserContext& user, const Instant& now);

    SelectResult select(std::string_view user, const Selection& selection) const;
    void forget(const criteria::CriterionKey& key);

    criteria::CriteriaStore& store_;
    const InterfaceResolver& interfaces_;
    const DestinationPolicy& destinations_;
    std::map<std::string, Version, std::less<>> versions_;  // last used, per user
};

}  // namespace xtap::dtcp
