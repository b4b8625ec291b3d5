// CriteriaStore: the live DTCP criteria of every client, keyed by (user,
// Criteria-ID) (dtcp.md §10). It allocates Criteria-IDs per user from a
// counter that only grows, enforces the quotas (550, 551), publishes each
// criterion through the DataPlane as one FilterSet, keeps what LIST, REFRESH,
// the timeouts and the delivery path need, and saves itself as JSON values.
//
// Pure: no clock reads (times are passed in), no I/O, no threads. It holds the
// DTCP request types as plain data and calls no xtap_dtcp function, because
// xtap_dtcp links xtap_criteria and not the other way round.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dataplane/DataPlane.h"
#include "dataplane/Filter.h"
#include "delivery/DeliveryParams.h"
#include "dtcp/Requests.h"
#include "dtcp/SeqWindow.h"
#include "dtcp/Timestamp.h"

namespace xtap::criteria {

// One moment on the two clocks the store needs: CLOCK_BOOTTIME for deadlines
// (the classifier's clock) and local wall time for DTCP Timestamps.
struct Instant {
    uint64_t boottime_ns = 0;
    dtcp::Timestamp local;
};

struct CriterionKey {
    std::string user;
    uint32_t id = 0;
    auto operator<=>(const CriterionKey&) const = default;
};

// Where the copies of a criterion go.
struct ContentDestination {
    // The client's label (with the X-JTap-Cdest-* set) or the configured
    // destination it names.
    std::string cdest_id;
    delivery::DeliveryParams params;
    // Allowed through the operator's cleartext list rather than an IPsec tunnel.
    bool cleartext = false;
    bool operator==(const ContentDestination&) const = default;
};

// The content destinations of one criterion (1 or 2), immutable and shared:
// a client's criteria mostly copy to the same one or two, and the store hands
// equal lists one block (a list of its own was a 96 B block a criterion).
class Destinations {
  public:
    using List = std::vector<ContentDestination>;
    Destinations() = default;
    Destinations(List list)  // implicit: where a list of destinations goes, this goes
        : list_(list.empty() ? nullptr : std::make_shared<const List>(std::move(list))) {}
    Destinations(std::initializer_list<ContentDestination> list) : Destinations(List(list)) {}

    const List& list() const { return list_ ? *list_ : none(); }
    List::const_iterator begin() const { return list().begin(); }
    List::const_iterator end() const { return list().end(); }
    size_t size() const { return list().size(); }
    bool empty() const { return list().empty(); }
    const ContentDestination& operator[](size_t i) const { return list()[i]; }
    const ContentDestination& front() const { return list().front(); }
    bool operator==(const Destinations& o) const { return list_ == o.list_ || list() == o.list(); }
    // True when both hold the same block.
    bool shares(const Destinations& o) const { return list_ == o.list_; }

  private:
    static const List& none() {
        static const List empty;
        return empty;
    }
    std::shared_ptr<const List> list_;
};

// What the data plane and the delivery path get for one criterion. The
// controller builds it from the request (resolving interfaces and
// destinations), at ADD and again on restore.
struct Publication {
    std::vector<dataplane::Filter> filters;
    Destinations destinations;        // 1 or 2
    uint16_t effective_priority = 1;  // Priority + the user's minimum_priority
};

struct MatchCounters {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    bool operator==(const MatchCounters&) const = default;
};

// An ADD as a criterion keeps it (LIST echoes it, persistence saves it): the
// fields every ADD has inline, the rarely given ones behind one pointer, which
// saves ~220 B a criterion. toAddRequest() gives the request as received.
class StoredRequest {
  public:
    StoredRequest() = default;
    explicit StoredRequest(dtcp::AddRequest request);
    dtcp::AddRequest toAddRequest() const;

    std::vector<std::string> cdest_ids;
    dtcp::Timeouts timeouts;
    bool is_static = false;
    bool send_async = false;
    uint8_t priority = 1;

    MatchSpec match() const;                     // unpacked
    std::vector<dtcp::Field> matchText() const;  // the match fields as received

    const std::optional<dtcp::DeliverySet>& delivery() const { return rare().delivery; }
    const std::vector<std::string>& inputInterfaces() const { return rare().input_interfaces; }
    const std::vector<std::string>& outputInterfaces() const { return rare().output_interfaces; }
    const std::optional<std::string>& vrfName() const { return rare().vrf_name; }
    const std::optional<dtcp::MdInterceptId>& mdInterceptId() const {
        return rare().md_intercept_id;
    }
    const std::vector<dtcp::Field>& extensionText() const { return rare().extension_text; }

  private:
    struct Rare {
        std::optional<dtcp::DeliverySet> delivery;
        std::vector<std::string> input_interfaces;
        std::vector<std::string> output_interfaces;
        std::optional<std::string> vrf_name;
        std::optional<dtcp::MdInterceptId> md_intercept_id;
        std::vector<dtcp::Field> extension_text;
    };
    const Rare& rare() const {
        static const Rare none;
        return rare_ ? *rare_ : none;
    }
    std::shared_ptr<const Rare> rare_;  // null when the ADD gave none of them

    // The match's lists end to end (a MatchSpec is nine vectors, 224 B, most
    // of them empty): list i ends at ends_[i] of its vector and starts where
    // the one before it in that vector ends.
    enum List : uint8_t { Src, Dst, Proto, Sport, Dport, IcmpType, IcmpCode, InputIf, OutputIf };
    static constexpr size_t kLists = 9;
    dataplane::Family family_ = dataplane::Family::V4;
    std::array<uint32_t, kLists> ends_{};
    std::vector<AddressEntry> addresses_;  // Src, Dst
    std::vector<NumberEntry> numbers_;     // Proto to IcmpCode, then the ifindexes as lo = hi
    // The match fields in one string, each name and value after its 4-byte
    // length: one block, not one of 64 B a field plus the strings'.
    std::string match_text_;
};

struct Criterion {
    CriterionKey key;
    StoredRequest request;       // as received
    std::string client_address;  // Csource-Address: the client that added it
    Publication publication;
    dataplane::SlotRef slot;

    // The limits in force: the ADD's, each replaced by a REFRESH that gives it.
    dtcp::Timeouts limits;
    dtcp::Timestamp added;  // wall time of the ADD
    uint64_t refresh_count = 0;
    dtcp::Timestamp last_refresh;  // the ADD time until a REFRESH

    // Lifetime bookkeeping, in CLOCK_BOOTTIME ns.
    uint64_t total_deadline_ns = 0;  // 0: no Timeout-Total (also the data-plane expiry)
    // With Timeout-Idle: moved on at the ADD, an idle REFRESH, and whenever the
    // packet count was seen moving.
    uint64_t idle_deadline_ns = 0;
    uint64_t last_seen_packets = 0;  // matched packets at the last observation
    // Timeout-Packets / Timeout-Bytes count the traffic after these.
    MatchCounters counted_at_refresh;

    // Matched = baseline + the counters of the current slot, which start at 0
    // on each publication (restore, VRF change).
    MatchCounters baseline;
    // Copies the delivery path could not send, plus what the copy gate refused
    // in earlier slots (the current slot's share is in its counters: counts()).
    MatchCounters dropped;

    // Average-Bandwidth samples, oldest first: the ADD (0 bytes) until a tick
    // sample is a window old, then the matched bytes at each tick since tick
    // number `first_sample` (the store keeps the tick times, once). They are
    // kept as the bytes at first_sample and the later ticks where the count
    // moved: most criteria match nothing for long spells and keep no block
    // (one sample a tick was 112 B a criterion).
    struct ByteChange {
        uint64_t tick = 0;
        uint64_t bytes = 0;
    };
    std::optional<uint64_t> add_sample_ns;
    bool sampled = false;  // first_sample and first_sample_bytes are set
    uint64_t first_sample = 0;
    uint64_t first_sample_bytes = 0;
    std::vector<ByteChange> byte_changes;  // ticks after first_sample, ascending

    bool isStatic() const { return request.is_static; }
    bool sendAsync() const { return request.send_async; }
};

enum class TimeoutKind : uint8_t { Idle, Total, Packets, Bytes };

struct Lifetime {
    dtcp::Timeouts remaining;  // one value per limit in force; none for Static
    std::optional<TimeoutKind> expired_by;
};

struct StoreLimits {
    // The global total: the data plane's slot capacity.
    size_t max_total_criteria = XTAP_DEFAULT_SLOTS;
};

struct UserQuota {
    uint32_t max_criteria = 3000;
    // Distinct destination endpoints (address, port) over the user's criteria.
    uint32_t max_content_destinations = 16;
};

struct NewCriterion {
    std::string user;
    dtcp::AddRequest request;
    std::string client_address;
    Publication publication;
};

enum class AddRefusal : uint8_t {
    UserCriteriaQuota,   // 550: the user's max_criteria
    TotalCriteriaQuota,  // 550: the data plane's capacity
    IdsExhausted,        // 550: every Criteria-ID of the user was used once
    DestinationQuota,    // 551
    ClassifierFull,      // 550: the data plane has no room for the filters
    ClassifierRefused,   // 500: the data plane refused the filters as invalid
};

using AddResult = std::variant<uint32_t, AddRefusal>;

// The per-user Seq windows the controller keeps across connections; the store
// only carries them through persistence.
using SeqStates = std::map<std::string, dtcp::SeqWindowState, std::less<>>;

// A criterion as saved: times relative to the save, counters as totals.
struct SavedCriterion {
    CriterionKey key;
    dtcp::AddRequest request;
    std::string client_address;
    std::vector<ContentDestination> destinations;
    uint16_t effective_priority = 1;
    dtcp::Timeouts limits;
    dtcp::Timestamp added;
    uint64_t refresh_count = 0;
    dtcp::Timestamp last_refresh;
    std::optional<uint64_t> total_remaining_ns;  // with Timeout-Total
    std::optional<uint64_t> idle_remaining_ns;   // with Timeout-Idle
    MatchCounters matched;
    MatchCounters counted_at_refresh;
    MatchCounters dropped;
    // Where it was published and what that slot had counted at the save: on a
    // restart onto the same pinned maps it is taken over in place, and the
    // slot's counters carry on (including what it counted while xtapd was down).
    std::optional<dataplane::SlotRef> slot;
    MatchCounters slot_counted;
    MatchCounters slot_gated;  // of `dropped`: the copy gate's refusals the slot counted
};

struct StoreSnapshot {
    std::map<std::string, uint32_t, std::less<>> last_ids;  // per user: the highest ID allocated
    std::vector<SavedCriterion> criteria;
    SeqStates seq_states;
};

// Builds the publication of a saved criterion against the current
// configuration, or says why it cannot be restored (no targets in the text).
using RestoreRebuild = std::function<std::variant<Publication, std::string>(const SavedCriterion&)>;

struct RestoreReport {
    struct Dropped {
        CriterionKey key;
        std::string reason;
    };
    struct Resumed {
        CriterionKey key;
        // Counted by the classifier after the save (the time xtapd was down):
        // copies of these packets were not delivered.
        MatchCounters during_gap;
    };
    size_t restored = 0;
    std::vector<Dropped> dropped;
    std::vector<Resumed> resumed;  // taken over in their slots
};

// Seconds left and expiry of `c` given its matched counters, at `now_ns`.
// Remaining times round up, so 0 means expired. Static criteria never expire.
Lifetime lifetimeOf(const Criterion& c, const MatchCounters& matched, uint64_t now_ns);

class CriteriaStore {
  public:
    CriteriaStore(dataplane::DataPlane& data_plane, StoreLimits limits = {});
    CriteriaStore(const CriteriaStore&) = delete;
    CriteriaStore& operator=(const CriteriaStore&) = delete;

    // The ID the next add() for `user` allocates; 0 when the user has used
    // every N32 value.
    uint32_t nextCriteriaId(std::string_view user) const;

    // Checks the quotas, publishes and keeps the criterion under the ID
    // nextCriteriaId() named. A refused ADD allocates nothing.
    AddResult add(NewCriterion criterion, const UserQuota& quota, const Instant& now);
    // Withdraws and forgets it; false when there is no such criterion.
    bool remove(const CriterionKey& key);

    const Criterion* find(const CriterionKey& key) const;
    // For the delivery path: the copy metadata names slots.
    const Criterion* findBySlot(uint32_t slot) const;
    std::vector<uint32_t> idsOf(std::string_view user) const;  // ascending
    std::vector<CriterionKey> keys() const;                    // by user, then ID
    size_t size() const { return total_; }
    // Every criterion, by user, then ID. `visit` must not add or remove any.
    template <typename Visit>
    void forEach(Visit&& visit) const {
        for (const auto& [user, u] : users_)
            for (const auto& [id, c] : u.criteria) visit(c);
    }
    size_t countOf(std::string_view user) const;
    size_t destinationCountOf(std::string_view user) const;

    // Everything counted since the ADD.
    MatchCounters matched(const Criterion& c) const;
    // Matched, and of it what was not delivered: the delivery path's drops
    // and what the copy gate refused (the slot counts those). One read.
    struct Counts {
        MatchCounters matched;
        MatchCounters dropped;
    };
    Counts counts(const Criterion& c) const;
    Lifetime lifetime(const Criterion& c, uint64_t now_ns) const;

    // Reads every criterion's counters: one whose packet count moved was
    // active now (Timeout-Idle). Call before lifetime() checks and LIST.
    void observe(uint64_t now_ns);

    // LIST's Average-Bandwidth averages over this window.
    static constexpr uint64_t kBandwidthWindowNs = 10'000'000'000;
    // One tick of the bandwidth window (about once a second): every
    // criterion's matched bytes, keeping one sample at least a window old and
    // everything newer. xtapd's tick does this inside tick(); alone, it is
    // the reference the tests hold tick() to.
    void sampleBandwidth(uint64_t now_ns);
    // The tick's pass: observe(), the lifetime check and sampleBandwidth() in
    // one walk over the criteria, each counter read once (three walks of
    // 100,000 criteria held the controller's lock for about 60 ms a second).
    // Returns the criteria whose lifetime ran out, for the caller to remove.
    std::vector<CriterionKey> tick(uint64_t now_ns);
    // The rate in bits/s from the newest sample at least a window old (else
    // the oldest there is) to `bytes_now`; 0 before the first sample.
    uint64_t averageBandwidth(const Criterion& c, uint64_t bytes_now, uint64_t now_ns) const;

    // The given limits replace the remaining time (dtcp.md §5 REFRESH); the
    // others stay. False for an unknown or Static criterion (left unchanged).
    bool refresh(const CriterionKey& key, const dtcp::Timeouts& limits, const Instant& now);

    // New filters for a criterion (its VRF's members changed): published
    // first, then the old slot goes; counters carry over. False when the data
    // plane refuses them (the old filters stay).
    bool republish(const CriterionKey& key, std::vector<dataplane::Filter> filters);

    // Copies the delivery path could not send; unknown slots are ignored.
    void addDropped(uint32_t slot, uint64_t packets, uint64_t bytes);

    // --- persistence -------------------------------------------------------------
    nlohmann::json toJson(const Instant& now, const SeqStates& seq_states) const;
    // One criterion as toJson writes it (the state journal's put record).
    nlohmann::json criterionJson(const Criterion& c, const Instant& now) const;
    // Appends toJson(now, seq_states).dump() to `out`, one criterion at a
    // time: the whole store as JSON values costs ~13 KB a criterion.
    void dumpJson(std::string& out, const Instant& now, const SeqStates& seq_states) const;
    // Reads what toJson wrote; an error names the JSON pointer at fault.
    static std::variant<StoreSnapshot, std::string> parseJson(const nlohmann::json& document);
    // One entry of toJson's "criteria", read back as parseJson does (throws
    // what nlohmann throws): for readers that stream the criteria.
    static SavedCriterion parseCriterionJson(const nlohmann::json& criterion);
    // Republishes the saved criteria under their IDs (the rebuild decides what
    // each publishes) and raises the ID counters to at least the saved ones.
    // A DataPlane that is restoring takes over the saved slots still live in
    // its maps first; restore() then finishes it and publishes the others.
    // Times continue from the saved remaining times: the time xtapd was down
    // is not counted, since CLOCK_BOOTTIME does not survive a reboot.
    RestoreReport restore(const StoreSnapshot& snapshot, const Instant& now,
                          const RestoreRebuild& rebuild);

  private:
    // A content destination's outer endpoint, for the 551 quota.
    using Endpoint = std::tuple<dataplane::Family, dataplane::Address, uint16_t>;
    struct UserCriteria {
        uint32_t last_id = 0;  // only grows: IDs are never reused
        std::map<uint32_t, Criterion> criteria;
        // How many of the user's criteria copy to each endpoint: the quota
        // check on ADD is a lookup, not a walk over every criterion.
        std::map<Endpoint, uint32_t> endpoints;
    };
    static void countEndpoints(UserCriteria& user, const Criterion& c, int delta);

    Criterion* findMutable(const CriterionKey& key);
    // Publishes `filters` with c's priority and deadline; changes nothing in c.
    std::variant<dataplane::SlotRef, AddRefusal> publish(
        const std::vector<dataplane::Filter>& filters, const Criterion& c);
    void index(Criterion& c) {
        if (c.slot.slot >= by_slot_.size()) by_slot_.resize(size_t{c.slot.slot} + 1);
        by_slot_[c.slot.slot] = &c;
    }
    void unindex(uint32_t slot) { by_slot_.at(slot) = nullptr; }
    // One criterion's part of observe() and of sampleBandwidth().
    static void observeOne(Criterion& c, uint64_t packets, uint64_t now_ns);
    static void sampleOne(Criterion& c, uint64_t bytes, uint64_t tick,
                          const std::optional<uint64_t>& window_old);
    // sampleBandwidth() around the walk: the tick's number and time, the
    // newest tick a window old; then the ticks no criterion needs go.
    std::pair<uint64_t, std::optional<uint64_t>> beginSampling(uint64_t now_ns);
    void endSampling(const std::optional<uint64_t>& window_old);
    // An equal list handed out lately if there is one, else d, remembered.
    Destinations share(Destinations d);
    void restoreOne(const SavedCriterion& saved, const Instant& now, const RestoreRebuild& rebuild,
                    bool in_place, RestoreReport& report,
                    std::vector<const SavedCriterion*>& later);

    dataplane::DataPlane& data_plane_;
    StoreLimits limits_;
    std::map<std::string, UserCriteria, std::less<>> users_;
    // By slot number (dense, below the data plane's capacity); null for a
    // free slot. A vector, not a hash map: 8 B a slot instead of ~40.
    std::vector<Criterion*> by_slot_;
    // The destination lists share() handed out last, newest first: criteria
    // ADDed in a row mostly name the same ones. No table to prune: a list
    // lives while a criterion or this holds it.
    std::array<Destinations, 8> recent_destinations_;
    size_t total_ = 0;
    // The times of the bandwidth ticks still sampled, oldest first: tick
    // number first_tick_ + i at tick_times_[i]. Once per tick, not per sample.
    std::deque<uint64_t> tick_times_;
    uint64_t first_tick_ = 0;
};

// A Seq window as the state file holds it (the state journal's seq record).
nlohmann::json seqStateToJson(const dtcp::SeqWindowState& state);

}  // namespace xtap::criteria
