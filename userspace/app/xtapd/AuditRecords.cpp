#include "AuditRecords.h"

#include <arpa/inet.h>

#include <string>

namespace xtap::app {

using json = nlohmann::json;

namespace {

std::string addressText(const dataplane::Address& address, dataplane::Family family) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == dataplane::Family::V4 ? AF_INET : AF_INET6, address.data(), text,
              sizeof text);
    return text;
}

}  // namespace

json addedCriterionAudit(const criteria::Criterion& criterion) {
    const criteria::StoredRequest& request = criterion.request;
    json match = json::array();
    for (const dtcp::Field& f : request.matchText())
        match.push_back(json::array({f.name, f.value}));
    // The selectors that narrow the match too.
    auto joined = [](const std::vector<std::string>& names) {
        std::string out;
        for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
        return out;
    };
    if (!request.inputInterfaces().empty())
        match.push_back(json::array({"X-JTap-Input-Interface", joined(request.inputInterfaces())}));
    if (!request.outputInterfaces().empty())
        match.push_back(
            json::array({"X-JTap-Output-Interface", joined(request.outputInterfaces())}));
    if (request.vrfName()) match.push_back(json::array({"X-JTap-VRF-Name", *request.vrfName()}));
    if (request.mdInterceptId())
        match.push_back(json::array({"X-MD-Intercept-Id", request.mdInterceptId()->hex}));

    json cdest = json::array();
    for (const criteria::ContentDestination& d : criterion.publication.destinations) {
        const auto& outer = d.params.outer;
        cdest.push_back({{"id", d.cdest_id},
                         {"address", addressText(outer.destination, outer.family)},
                         {"port", outer.destination_port},
                         {"cleartext", d.cleartext}});
    }
    return {{"match", match}, {"cdest", cdest}, {"static", request.is_static}};
}

}  // namespace xtap::app
