#include "dtcp/DtcpService.h"

#include <algorithm>

#include "dtcp/FieldNames.h"
#include "dtcp/Responses.h"
#include "dtcp/Text.h"
#include "dtcp/Values.h"

namespace xtap::dtcp {

using criteria::ContentDestination;
using criteria::CriterionKey;
using criteria::Publication;

namespace {

constexpr uint32_t kJmirrorIdMask = delivery::kMaxInterceptId;

// The value of the first field called `name` (any case), or empty.
std::string fieldValue(const std::vector<Field>& fields, std::string_view name) {
    for (const Field& f : fields) {
        if (iequals(f.name, name)) return f.value;
    }
    return {};
}

std::string joinedCdestIds(const std::vector<std::string>& ids) {
    std::string out;
    for (const std::string& id : ids) {
        if (!out.empty()) out += ", ";
        out += escapeIdentifier(id);
    }
    return out;
}

StatusCode statusOf(criteria::AddRefusal refusal) {
    switch (refusal) {
        case criteria::AddRefusal::UserCriteriaQuota:
        case criteria::AddRefusal::TotalCriteriaQuota:
        case criteria::AddRefusal::IdsExhausted:
        case criteria::AddRefusal::ClassifierFull:
            return StatusCode::MaxCriteriaExceeded;
        case criteria::AddRefusal::DestinationQuota:
            return StatusCode::MaxContentDestinationsExceeded;
        case criteria::AddRefusal::ClassifierRefused:
            return StatusCode::InternalError;
    }
    return StatusCode::InternalError;
}

}  // namespace

std::vector<std::string> ServiceResult::messages() const& {
    return ServiceResult(*this).messages();
}

std::vector<std::string> ServiceResult::messages() && {
    std::vector<std::string> out;
    out.reserve(notifications.size() + 1);
    if (!reply.empty()) out.push_back(std::move(reply));
    for (std::string& n : notifications) out.push_back(std::move(n));
    return out;
}

DtcpService::DtcpService(criteria::CriteriaStore& store, const InterfaceResolver& interfaces,
                         const DestinationPolicy& destinations)
    : store_(store), interfaces_(interfaces), destinations_(destinations) {}

Version DtcpService::notificationVersion(std::string_view user) const {
    const auto it = versions_.find(user);
    return it == versions_.end() ? kDefaultNotificationVersion : it->second;
}

// --- requests ------------------------------------------------------------------------

ServiceResult DtcpService::handleMessage(std::string_view message_bytes, const UserContext& user,
                                         SeqWindow& seq_window, std::string_view client_address,
                                         const Instant& now) {
    DecodeOutcome outcome = decodeRequest(message_bytes, user.name, user.hmac_key, seq_window,
                                          DecodePolicy{user.allow_wide});
    if (auto* discard = std::get_if<Discard>(&outcome)) {
        ServiceResult result;
        result.discard = std::move(*discard);
        return result;
    }
    if (const auto* error = std::get_if<RequestError>(&outcome)) {
        ServiceResult result;
        result.status = error->code;
        result.reply = formatResponse(errorResponse(*error, now.local), user.hmac_key);
        // Only an authentic request in a supported version sets the notification version.
        if (error->seq_verdict && error->code != StatusCode::VersionNotSupported) {
            versions_[user.name] = error->reply_version;
        }
        if (error->seq_verdict == SeqVerdict::Wrapped) {
            result.notifications.push_back(formatNotification(
                seqRolloverNotification(notificationVersion(user.name), now.local), user.hmac_key));
        }
        return result;
    }
    return execute(std::get<DecodedRequest>(outcome), user, client_address, now);
}

ServiceResult DtcpService::execute(const DecodedRequest& request, const UserContext& user,
                                   std::string_view client_address, const Instant& now) {
    versions_[user.name] = request.version;
    ServiceResult result;
    std::optional<std::string> listed;  // LIST writes its reply's text itself
    Response response = std::visit(
        [&](const auto& body) -> Response {
            using Body = std::decay_t<decltype(body)>;
            if constexpr (std::is_same_v<Body, AddRequest>) {
                return addCriterion(request, body, user, client_address, now, result);
            } else if constexpr (std::is_same_v<Body, DeleteRequest>) {
                return deleteCriteria(request, body, user, now, result);
            } else if constexpr (std::is_same_v<Body, RefreshRequest>) {
                return refreshCriteria(request, body, user, now, result);
            } else if constexpr (std::is_same_v<Body, ListRequest>) {
                listed = listCriteria(request, body, user, now);
                return okResponse(request.version, request.seq, now.local);
            } else {
                if (body.send_async) {
                    result.notifications.push_back(formatNotification(
                        noopNotification(request.version, now.local), user.hmac_key));
                }
                return okResponse(request.version, request.seq, now.local);
            }
        },
        request.body);
    result.status = response.code;
    result.reply = listed ? std::move(*listed) : formatResponse(response, user.hmac_key);
    if (request.seq_verdict == SeqVerdict::Wrapped) {
        result.notifications.insert(
            result.notifications.begin(),
            formatNotification(seqRolloverNotification(request.version, now.local), user.hmac_key));
    }
    return result;
}

// --- ADD -----------------------------------------------------------------------------

std::variant<std::vector<ContentDestination>, DtcpService::AddFailure>
DtcpService::buildDestinations(const AddRequest& add, const UserContext& user,
                               uint32_t criteria_id) const {
    std::vector<ContentDestination> out;
    for (size_t i = 0; i < add.cdest_ids.size(); ++i) {
        const std::string& cdest_id = add.cdest_ids[i];
        delivery::OuterHeader outer;
        // The field a 430 echoes: the X-JTap-Cdest-* member at fault, or the Cdest-ID.
        AddFailure source_refused{StatusCode::UnknownContentDestination,
                                  std::string(field::kCdestId), escapeIdentifier(cdest_id)};
        AddFailure destination_refused = source_refused;
        if (add.delivery) {
            const DeliverySet& set = *add.delivery;
            outer.family = set.source_address.family;
            outer.source = set.source_address.bytes;
            outer.source_port = set.source_port;
            outer.destination = set.dest_addresses[i].bytes;
            outer.destination_port = set.dest_ports[i];
            outer.ttl = set.ttl;
            source_refused = {StatusCode::UnknownContentDestination,
                              std::string(field::kCdestSourceAddress),
                              fieldValue(add.extension_text, field::kCdestSourceAddress)};
            destination_refused = {StatusCode::UnknownContentDestination,
                                   std::string(field::kCdestDestAddress),
                                   fieldValue(add.extension_text, field::kCdestDestAddress)};
        } else {
            const auto configured = user.destinations.find(cdest_id);
            if (configured == user.destinations.end()) return source_refused;
            outer = configured->second;
        }
        if (!destinations_.isOwnAddress(outer.family, outer.source)) return source_refused;
        const DestinationRoute route = destinations_.route(user.name, outer);
        if (route == DestinationRoute::Refused) return destination_refused;

        delivery::Encapsulation encapsulation;
        encapsulation.format = user.delivery_format;
        if (encapsulation.format == delivery::Format::Jmirror) {
            // dtcp.md §12: X-MD-Intercept-Id if given, else the Criteria-ID.
            encapsulation.intercept_id =
                add.md_intercept_id ? add.md_intercept_id->low30 : criteria_id & kJmirrorIdMask;
            encapsulation.session_id = criteria_id;
        }
        out.push_back(ContentDestination{cdest_id, delivery::DeliveryParams{outer, encapsulation},
                                         route == DestinationRoute::Cleartext});
    }
    return out;
}

std::variant<std::vector<dataplane::Filter>, DtcpService::AddFailure> DtcpService::buildFilters(
    const AddRequest& add, const UserContext& user) const {
    criteria::MatchSpec match = add.match;
    for (const std::string& name : add.input_interfaces) {
        const auto ifindex = interfaces_.transitInterface(name);
        if (!ifindex) {
            return AddFailure{StatusCode::JTapFailure, std::string(field::kInputInterface), name};
        }
        match.input_ifindexes.push_back(*ifindex);
    }
    // Egress: the classifier's FIB lookup names the interface a packet leaves by.
    for (const std::string& name : add.output_interfaces) {
        const auto ifindex = interfaces_.transitInterface(name);
        if (!ifindex) {
            return AddFailure{StatusCode::JTapFailure, std::string(field::kOutputInterface), name};
        }
        match.output_ifindexes.push_back(*ifindex);
    }
    if (add.vrf_name) {
        const auto members = interfaces_.vrfMembers(*add.vrf_name);
        // No members would leave the criterion on every interface.
        if (!members || members->empty()) {
            return AddFailure{StatusCode::JTapFailure, std::string(field::kVrfName), *add.vrf_name};
        }
        match.input_ifindexes = *members;
    }
    const criteria::CompileResult compiled =
        criteria::compile(match, {user.max_filters_per_criterion, user.allow_wide});
    if (!compiled.ok()) {
        const criteria::CompileError& error = compiled.error();
        std::string name(criteria::dtcpName(error.field));
        if (error.field == criteria::CriterionField::InputInterface && add.vrf_name) {
            name = std::string(field::kVrfName);
        }
        std::string value = fieldValue(add.match_text, name);
        if (value.empty()) value = fieldValue(add.extension_text, name);
        const StatusCode code = error.status == criteria::CompileStatus::BadRequest
                                    ? StatusCode::BadRequest
                                    : StatusCode::ImproperFilter;
        return AddFailure{code, std::move(name), std::move(value)};
    }
    return compiled.filters();
}

std::variant<Publication, DtcpService::AddFailure> DtcpService::buildPublication(
    const AddRequest& add, const UserContext& user, uint32_t criteria_id) const {
    auto destinations = buildDestinations(add, user, criteria_id);
    if (auto* failure = std::get_if<AddFailure>(&destinations)) return std::move(*failure);
    auto filters = buildFilters(add, user);
    if (auto* failure = std::get_if<AddFailure>(&filters)) return std::move(*failure);

    Publication publication;
    publication.filters = std::move(std::get<std::vector<dataplane::Filter>>(filters));
    publication.destinations = std::move(std::get<std::vector<ContentDestination>>(destinations));
    publication.effective_priority =
        static_cast<uint16_t>(uint16_t{add.priority} + uint16_t{user.minimum_priority});
    return publication;
}

Response DtcpService::addCriterion(const DecodedRequest& request, const AddRequest& add,
                                   const UserContext& user, std::string_view client_address,
                                   const Instant& now, ServiceResult& result) {
    const uint32_t id = store_.nextCriteriaId(user.name);
    if (id == 0) {
        return errorResponse(request.version, request.seq, StatusCode::MaxCriteriaExceeded, {}, {},
                             now.local);
    }
    auto built = buildPublication(add, user, id);
    if (const auto* failure = std::get_if<AddFailure>(&built)) {
        return errorResponse(request.version, request.seq, failure->code, failure->item_name,
                             failure->item_value, now.local);
    }
    const criteria::AddResult added =
        store_.add(criteria::NewCriterion{user.name, add, std::string(client_address),
                                          std::move(std::get<Publication>(built))},
                   criteria::UserQuota{user.max_criteria, user.max_content_destinations}, now);
    if (const auto* refusal = std::get_if<criteria::AddRefusal>(&added)) {
        const StatusCode code = statusOf(*refusal);
        if (code == StatusCode::MaxContentDestinationsExceeded) {
            return errorResponse(request.version, request.seq, code, field::kCdestId,
                                 joinedCdestIds(add.cdest_ids), now.local);
        }
        return errorResponse(request.version, request.seq, code, {}, {}, now.local);
    }
    const CriterionKey key{user.name, std::get<uint32_t>(added)};
    result.audit.push_back({AuditEvent::Kind::Added, key, {}});
    for (const ContentDestination& d : store_.find(key)->publication.destinations) {
        if (d.cleartext)
            result.audit.push_back({AuditEvent::Kind::CleartextDestination, key, d.cdest_id});
    }
    return addedResponse(request.version, request.seq, key.id, now.local);
}

// --- DELETE, REFRESH, LIST -----------------------------------------------------------

DtcpService::SelectResult DtcpService::select(std::string_view user,
                                              const Selection& selection) const {
    std::vector<uint32_t> ids;
    if (const auto* by_id = std::get_if<CriteriaIdSelection>(&selection)) {
        if (const auto single = by_id->single()) {
            // Another user's ID is as unknown as one never allocated.
            if (!store_.find(CriterionKey{std::string(user), *single})) return *single;
            ids.push_back(*single);
            return ids;
        }
        for (uint32_t id : store_.idsOf(user)) {
            if (by_id->contains(id)) ids.push_back(id);
        }
        return ids;
    }
    const std::string& cdest_id = std::get<CdestSelection>(selection).cdest_id;
    for (uint32_t id : store_.idsOf(user)) {
        const criteria::Criterion* c = store_.find(CriterionKey{std::string(user), id});
        const auto& labels = c->request.cdest_ids;
        if (std::find(labels.begin(), labels.end(), cdest_id) != labels.end()) ids.push_back(id);
    }
    return ids;
}

void DtcpService::forget(const CriterionKey& key) {
    store_.remove(key);
}

Response DtcpService::deleteCriteria(const DecodedRequest& request, const DeleteRequest& del,
                                     const UserContext& user, const Instant& now,
                                     ServiceResult& result) {
    const SelectResult selected = select(user.name, del.selection);
    if (const auto* unknown = std::get_if<uint32_t>(&selected)) {
        return errorResponse(request.version, request.seq, StatusCode::UnknownCriteriaId,
                             field::kCriteriaId, std::to_string(*unknown), now.local);
    }
    uint64_t count = 0;
    for (uint32_t id : std::get<std::vector<uint32_t>>(selected)) {
        const CriterionKey key{user.name, id};
        // Static criteria go only with Flags: Static; otherwise they stay, uncounted.
        if (store_.find(key)->isStatic() && !del.include_static) continue;
        forget(key);
        result.audit.push_back({AuditEvent::Kind::Deleted, key, {}});
        ++count;
    }
    return countResponse(request.version, request.seq, count, now.local);
}

Response DtcpService::refreshCriteria(const DecodedRequest& request, const RefreshRequest& refresh,
                                      const UserContext& user, const Instant& now,
                                      ServiceResult& result) {
    const SelectResult selected = select(user.name, refresh.selection);
    if (const auto* unknown = std::get_if<uint32_t>(&selected)) {
        return errorResponse(request.version, request.seq, StatusCode::UnknownCriteriaId,
                             field::kCriteriaId, std::to_string(*unknown), now.local);
    }
    uint64_t count = 0;
    for (uint32_t id : std::get<std::vector<uint32_t>>(selected)) {
        const CriterionKey key{user.name, id};
        if (!store_.refresh(key, refresh.timeouts, now)) continue;  // Static: unchanged
        result.audit.push_back({AuditEvent::Kind::Refreshed, key, {}});
        ++count;
    }
    return countResponse(request.version, request.seq, count, now.local);
}

std::string DtcpService::listCriteria(const DecodedRequest& request, const ListRequest& list,
                                      const UserContext& user, const Instant& now) {
    store_.observe(now.boottime_ns);
    std::vector<uint32_t> ids;
    if (list.selection) {
        const SelectResult selected = select(user.name, *list.selection);
        // An unknown ID lists nothing: LIST answers 431 to no one.
        if (const auto* some = std::get_if<std::vector<uint32_t>>(&selected)) ids = *some;
    } else {
        ids = store_.idsOf(user.name);
    }
    ListWriter writer(request.version, request.seq, ids.size(), list.detail);
    for (uint32_t id : ids) {
        const criteria::Criterion& c = *store_.find(CriterionKey{user.name, id});
        const auto [matched, dropped] = store_.counts(c);
        ListEntry e;
        e.criteria_id = id;
        e.csource_id = user.name;
        e.csource_address = c.client_address;
        e.cdest_ids = c.request.cdest_ids;
        e.added = c.added;
        e.match_text = c.request.matchText();
        e.timeouts = c.limits;
        e.is_static = c.isStatic();
        e.send_async = c.sendAsync();
        e.extension_text = c.request.extensionText();
        e.remaining = criteria::lifetimeOf(c, matched, now.boottime_ns).remaining;
        e.average_bandwidth_bps = store_.averageBandwidth(c, matched.bytes, now.boottime_ns);
        e.matching_packets = matched.packets;
        e.matching_bytes = matched.bytes;
        e.num_refresh = c.refresh_count;
        e.last_refresh = c.last_refresh;
        e.dropped_packets = dropped.packets;
        e.dropped_bytes = dropped.bytes;
        writer.add(e);
    }
    return std::move(writer).finish(now.local, user.hmac_key);
}

// --- timeouts, restore, VRF ------------------------------------------------------------

TickResult DtcpService::tick(const Instant& now, const UserLookup& users) {
    TickResult result;
    // One pass over the store; the expired go after it.
    const std::vector<CriterionKey> expired = store_.tick(now.boottime_ns);
    for (const CriterionKey& key : expired) {
        const criteria::Criterion& c = *store_.find(key);
        if (c.sendAsync()) {
            // Signed with the owner's key; an owner no longer configured cannot get it.
            if (const UserContext* owner = users(key.user)) {
                const criteria::Lifetime lifetime =
                    criteria::lifetimeOf(c, store_.matched(c), now.boottime_ns);
                const Notification n = criterionTimeoutNotification(
                    notificationVersion(key.user), key.id, c.limits, lifetime.remaining, now.local);
                result.notifications.push_back(
                    {key.user, key.id, formatNotification(n, owner->hmac_key)});
            }
        }
        forget(key);
        result.audit.push_back({AuditEvent::Kind::TimedOut, key, {}});
    }
    return result;
}

criteria::RestoreReport DtcpService::restore(const criteria::StoreSnapshot& snapshot,
                                             const UserLookup& users, const Instant& now) {
    auto rebuild =
        [&](const criteria::SavedCriterion& saved) -> std::variant<Publication, std::string> {
        const UserContext* user = users(saved.key.user);
        if (!user) return std::string("the user is no longer configured");
        auto built = buildPublication(saved.request, *user, saved.key.id);
        if (const auto* failure = std::get_if<AddFailure>(&built)) {
            // The field name only: its value may name a target.
            return "an ADD now answers " + std::to_string(codeNumber(failure->code)) +
                   (failure->item_name.empty() ? std::string() : " on " + failure->item_name);
        }
        return std::move(std::get<Publication>(built));
    };
    return store_.restore(snapshot, now, rebuild);
}

VrfUpdate DtcpService::updateVrf(std::string_view vrf_name, const UserLookup& users) {
    VrfUpdate update;
    for (const CriterionKey& key : store_.keys()) {
        const criteria::Criterion& c = *store_.find(key);
        if (!c.request.vrfName() || *c.request.vrfName() != vrf_name) continue;
        const UserContext* user = users(key.user);
        if (!user) {
            update.failed.push_back(key);
            continue;
        }
        auto filters = buildFilters(c.request.toAddRequest(), *user);
        auto* rebuilt = std::get_if<std::vector<dataplane::Filter>>(&filters);
        if (!rebuilt) {
            update.failed.push_back(key);
            continue;
        }
        if (*rebuilt == c.publication.filters) continue;
        if (store_.republish(key, std::move(*rebuilt))) {
            ++update.republished;
        } else {
            update.failed.push_back(key);
        }
    }
    return update;
}

}  // namespace xtap::dtcp
