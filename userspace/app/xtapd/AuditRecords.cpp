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
    const dtcp::AddRequest& request = criterion.request;
    json match = json::array();
    for (const dtcp::Field& f : request.match_text) match.push_back(json::array({f.name, f.value}));
    // The selectors that narrow the match too.
    auto joined = [](const std::vector<std::string>& names) {
        std::string out;
        for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
        return out;
    };
    if (!request.input_interfaces.empty())
        match.push_back(json::array({"X-JTap-Input-Interface", joined(request.input_interfaces)}));
    if (!request.output_interfaces.empty())
        match.push_back(
            json::array({"X-JTap-Output-Interface", joined(request.output_interfaces)}));
    if (request.vrf_name) match.push_back(json::array({"X-JTap-VRF-Name", *request.vrf_name}));
    if (request.md_intercept_id)
        match.push_back(json::array({"X-MD-Intercept-Id", request.md_intercept_id->hex}));

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
