// The golden vector every vici codec test agrees on.
#pragma once

#include <initializer_list>

#include "ipsec/ViciMessage.h"

namespace xtap::ipsec::test {

inline Bytes bytesOf(std::initializer_list<int> values) {
    Bytes out;
    for (int v : values) {
        out.push_back(static_cast<uint8_t>(v));
    }
    return out;
}

// The "Encoding example" of strongSwan's vici README
// (github.com/strongswan/strongswan, src/libcharon/plugins/vici/README.md,
// read at commit 02d431022c45cf9638b13aa84c0d485a655d370b), copied byte for
// byte with its comments:
//     key1 = value1
//     section1 = {
//         sub-section = {
//             key2 = value2
//         }
//         list1 = [ item1, item2 ]
//     }
// clang-format off
inline const Bytes kReadmeExample = bytesOf({
    /* key1 = value1 */
    3, 4,'k','e','y','1', 0,6,'v','a','l','u','e','1',
    /* section1 */
    1, 8,'s','e','c','t','i','o','n','1',
    /* sub-section */
    1, 11,'s','u','b','-','s','e','c','t','i','o','n',
    /* key2 = value2 */
    3, 4,'k','e','y','2', 0,6,'v','a','l','u','e','2',
    /* sub-section end */
    2,
    /* list1 */
    4, 5, 'l','i','s','t','1',
    /* item1 */
    5, 0,5,'i','t','e','m','1',
    /* item2 */
    5, 0,5,'i','t','e','m','2',
    /* list1 end */
    6,
    /* section1 end */
    2,
});
// clang-format on

inline Section readmeTree() {
    Section root;
    root.addValue("key1", "value1");
    Section& section1 = root.addSection("section1");
    section1.addSection("sub-section").addValue("key2", "value2");
    section1.addList("list1", {"item1", "item2"});
    return root;
}

}  // namespace xtap::ipsec::test
