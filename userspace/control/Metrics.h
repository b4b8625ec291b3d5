// Metrics: the Prometheus text exposition (format 0.0.4) of a Status (pure).
//
// Aggregate only: totals of the copy path and the state of each tunnel. No
// per-client, per-Cdest or per-criterion series: a scrape is often readable
// by more people than the LI staff, and which agency has intercepts active is
// itself confidential. Tunnel names come from the operator's config.
#pragma once

#include <string>
#include <string_view>

#include "control/Status.h"

namespace xtap::control {

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string formatMetrics(const Status& status);

// A label value escaped for the exposition format (\\, \" and \n).
std::string escapeLabelValue(std::string_view value);

}  // namespace xtap::control
