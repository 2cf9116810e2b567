/* robustness/stub_where: prints where this sandbox's stub lies (found as
 * stub_base.h says), so a test can check that it moves from one sandbox
 * to the next. Run only under rvisor. */
#include <stdio.h>

#include "stub_base.h"

int main(void)
{
    uintptr_t base = find_stub_base();
    printf("%#lx\n", (unsigned long)base);
    return base ? 0 : 1;
}
