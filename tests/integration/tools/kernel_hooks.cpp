// kernel_hooks: the transit hooks this kernel can run, "xdp tc" or "tc" (see
// XtapObject's TransitHook). The BPF tests' second pass on the tc hook only
// adds something where the first pass (auto) ran on xdp.
#include <iostream>

#include "dataplane/kernel/XtapObject.h"

int main() {
    std::cout << (xtap::dataplane::kernel::kernelHasXdpMetadata() ? "xdp tc" : "tc") << "\n";
    return 0;
}
