/* Where the stub's range lies: rvisor puts it at a random 64 KiB-aligned
 * address between 0x7e0000000000 and 0x7ff000000000 in every sandbox
 * (sentry/src/platform/stub_image.rs), and refuses every memory call that
 * touches it. That refusal finds it: madvise(MADV_NORMAL) of [x, top)
 * fails with EINVAL exactly when the range overlaps the stub, so a binary
 * search over x gives the range's end (~30 calls). What the robustness
 * programs then try must end harmlessly whatever the address. */
#ifndef RVISOR_STUB_BASE_H
#define RVISOR_STUB_BASE_H

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#define STUB_WINDOW_LO 0x7e0000000000UL
#define STUB_WINDOW_HI 0x7ff000000000UL
/* The stub's range: code page, scratch page, then systrap's region of
 * 4096 slots of 32 KiB (systrap/layout.rs). */
#define STUB_RANGE_SIZE (0x10000UL + 0x8000UL * 4096)

static int overlaps_stub(uintptr_t x, uintptr_t top)
{
    return madvise((void *)x, top - x, MADV_NORMAL) == -1 && errno == EINVAL;
}

/* The stub's base, or 0 if nothing refuses (not under rvisor). */
static uintptr_t find_stub_base(void)
{
    uintptr_t top = STUB_WINDOW_HI + STUB_RANGE_SIZE;
    uintptr_t lo = STUB_WINDOW_LO, hi = top; /* overlaps(lo), !overlaps(hi) */
    if (!overlaps_stub(lo, top))
        return 0;
    while (hi - lo > 0x10000UL) {
        uintptr_t mid = lo + ((hi - lo) / 2 & ~0xffffUL);
        if (overlaps_stub(mid, top))
            lo = mid;
        else
            hi = mid;
    }
    return hi - STUB_RANGE_SIZE;
}

#endif
