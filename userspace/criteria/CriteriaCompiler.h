// CriteriaCompiler: turns the match part of a DTCP criterion (MatchSpec) into
// data-plane filters, or says why it cannot (a DTCP status for the ADD reply).
//
// The filters of one criterion are disjoint: a packet matches at most one of
// them, so per-criterion counters count each packet once. A packet matches some
// filter exactly when it matches the criterion by dtcp.md §4.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "criteria/MatchSpec.h"
#include "dataplane/Filter.h"

namespace xtap::criteria {

struct CompileLimits {
    // Per-criterion budget of compiled filters (dtcp.md §4); above it → 432.
    uint64_t max_filters = 4096;
    // The user may add criteria that constrain neither address (dtcp.md §4).
    bool allow_wide = false;
};

// DTCP status codes the compiler answers with (dtcp.md §7).
enum class CompileStatus : uint16_t {
    BadRequest = 400,      // a number above its field's width (N8, N16), interface index 0
    ImproperFilter = 432,  // well-formed values that make no usable filter
};

// The match parameter at fault; Criterion when it is the combination.
enum class CriterionField : uint8_t {
    SourceAddress,
    DestAddress,
    Protocol,
    SourcePort,
    DestPort,
    IcmpType,
    IcmpCode,
    InputInterface,
    OutputInterface,
    Criterion,
};

// The DTCP parameter name ("Source-Address", ...); empty for Criterion.
std::string_view dtcpName(CriterionField field);

struct CompileError {
    CompileStatus status = CompileStatus::ImproperFilter;
    CriterionField field = CriterionField::Criterion;
    std::string reason;
    bool operator==(const CompileError&) const = default;
};

// The filters of a criterion, or why there are none.
class CompileResult {
  public:
    CompileResult(std::vector<dataplane::Filter> filters) : value_(std::move(filters)) {}
    CompileResult(CompileError error) : value_(std::move(error)) {}

    bool ok() const { return std::holds_alternative<std::vector<dataplane::Filter>>(value_); }
    // Only when ok().
    const std::vector<dataplane::Filter>& filters() const {
        return std::get<std::vector<dataplane::Filter>>(value_);
    }
    // Only when !ok().
    const CompileError& error() const { return std::get<CompileError>(value_); }

  private:
    std::variant<std::vector<dataplane::Filter>, CompileError> value_;
};

// Pure: the same spec and limits always give the same filters in the same order.
// Time and memory are bounded by the size of `spec` plus limits.max_filters: the
// filter count is computed before any filter or prefix list is built.
CompileResult compile(const MatchSpec& spec, const CompileLimits& limits = {});

}  // namespace xtap::criteria
