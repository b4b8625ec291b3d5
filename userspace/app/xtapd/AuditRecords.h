// What the audit log records about a criterion when it is added: the target
// criteria as the MD wrote them and where the copies go. The audit log is the
// one place outside the DTCP answers and the state file where targets appear.
#pragma once

#include <nlohmann/json.hpp>

#include "criteria/CriteriaStore.h"

namespace xtap::app {

// {"match": [[name, value], ...], "cdest": [{"id", "address", "port", "cleartext"}],
//  "static": bool}: merged into the criterion's entry of the `dtcp` record.
nlohmann::json addedCriterionAudit(const criteria::Criterion& criterion);

}  // namespace xtap::app
