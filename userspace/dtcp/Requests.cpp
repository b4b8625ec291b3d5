#include "dtcp/Requests.h"

namespace xtap::dtcp {

std::optional<uint32_t> CriteriaIdSelection::single() const {
    if (ids.size() != 1 || ids.front().negated || ids.front().lo != ids.front().hi) {
        return std::nullopt;
    }
    return static_cast<uint32_t>(ids.front().lo);
}

bool CriteriaIdSelection::contains(uint32_t id) const {
    return numberListMatches(ids, id);
}

}  // namespace xtap::dtcp
