/* mm/mlock: mlock/munlock/mlock2/mlockall/munlockall argument checks and
 * ENOMEM for unmapped ranges, and mincore on resident, unmapped and
 * unaligned ranges. */
#include "../common.h"

#include <sys/mman.h>

int main(void)
{
    test_init();
    long pg = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MUST(p == MAP_FAILED ? -1 : 0);
    memset(p, 1, 2 * pg);
    show("mlock mapped", mlock(p, 2 * pg));
    show("mlock unaligned start", mlock(p + 100, 10));
    show("munlock", munlock(p, 2 * pg));
    show("mlock2 ONFAULT", mlock2(p, pg, MLOCK_ONFAULT));
    expect_err("mlock2 bad flags", mlock2(p, pg, 0x100));
    show("mlock len 0", mlock(p, 0));
    MUST(munmap(p + 2 * pg, 2 * pg));
    expect_err("mlock over a hole", mlock(p, 4 * pg));
    expect_err("munlock over a hole", munlock(p, 4 * pg));
    show("mlockall CURRENT", mlockall(MCL_CURRENT));
    show("mlockall CURRENT|FUTURE", mlockall(MCL_CURRENT | MCL_FUTURE));
    expect_err("mlockall 0", mlockall(0));
    expect_err("mlockall ONFAULT alone", mlockall(MCL_ONFAULT));
    expect_err("mlockall unknown", mlockall(0x40));
    show("munlockall", munlockall());

    unsigned char vec[4] = {9, 9, 9, 9};
    show("mincore touched pages", mincore(p, 2 * pg, vec));
    printf("resident: %d %d\n", vec[0] & 1, vec[1] & 1);
    expect_err("mincore unaligned", mincore(p + 1, pg, vec));
    expect_err("mincore over a hole", mincore(p, 4 * pg, vec));
    expect_err("mincore bad vector", mincore(p, pg, (unsigned char *)8));
    show("mincore len 0", mincore(p, 0, vec));
    return 0;
}
