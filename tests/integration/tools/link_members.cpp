// link_members MASTER KIND: the ifindexes of the links enslaved to the master
// device MASTER of kind KIND (vrf, bridge), one per line, as xtapd's VRF
// resolver reads them over rtnetlink; exit 1 when there is no such device.
#include <iostream>

#include "dataplane/kernel/Vrf.h"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: link_members MASTER KIND\n";
        return 2;
    }
    try {
        const auto members = xtap::dataplane::kernel::enslavedLinks(argv[1], argv[2]);
        if (!members) return 1;
        for (uint32_t ifindex : *members) std::cout << ifindex << "\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "link_members: " << e.what() << "\n";
        return 2;
    }
}
