/* mm/brk: the program break — query, grow, touch, shrink, regrow (zeroed),
 * refuse to go below the start or absurdly high; sbrk via libc. */
#include "../common.h"

#include <stdint.h>
#include <sys/syscall.h>

/* stdout gets a static buffer so printf never calls malloc (which would move
 * the break behind our back). */
static char outbuf[8192];

static uintptr_t brk_raw(uintptr_t addr)
{
    return (uintptr_t)syscall(SYS_brk, addr);
}

int main(void)
{
    setvbuf(stdout, outbuf, _IOLBF, sizeof outbuf);
    printf("brk test\n");

    const uintptr_t MB = 1 << 20;
    uintptr_t start = brk_raw(0);
    show_bool("brk(0) nonzero", start != 0);
    show_bool("brk(0) idempotent", brk_raw(0) == start);

    /* grow by 1 MiB */
    uintptr_t want = start + MB;
    uintptr_t got = brk_raw(want);
    show_bool("grow 1 MiB returns new break", got == want);
    show_bool("brk(0) after grow", brk_raw(0) == want);
    volatile unsigned char *p = (volatile unsigned char *)start;
    int zero = 1;
    for (uintptr_t i = 0; i < MB; i += 512)
        if (p[i] != 0)
            zero = 0;
    show_bool("new heap memory is zero", zero);
    for (uintptr_t i = 0; i < MB; i++)
        p[i] = (unsigned char)(i * 7);
    int ok = 1;
    for (uintptr_t i = 0; i < MB; i++)
        if (p[i] != (unsigned char)(i * 7))
            ok = 0;
    show_bool("heap memory holds writes", ok);

    /* unaligned break values are fine */
    got = brk_raw(start + MB + 123);
    show_bool("unaligned grow", got == start + MB + 123);
    p[MB + 100] = 0x5a;
    show_bool("unaligned tail writable", p[MB + 100] == 0x5a);

    /* shrink to one page, then grow again: the released memory comes back zeroed */
    got = brk_raw(start + 4096);
    show_bool("shrink returns new break", got == start + 4096);
    show_bool("memory below new break intact", p[4095] == (unsigned char)(4095 * 7));
    got = brk_raw(start + 2 * MB);
    show_bool("regrow 2 MiB", got == start + 2 * MB);
    zero = 1;
    for (uintptr_t i = 8192; i < 2 * MB; i += 256)
        if (p[i] != 0)
            zero = 0;
    show_bool("regrown memory is zero", zero);
    show_bool("first page survived", p[0] == 0 && p[1] == 7 && p[4095] == (unsigned char)(4095 * 7));

    /* cannot go below the initial break (of the data segment) or absurdly high */
    uintptr_t cur = brk_raw(0);
    got = brk_raw(4096);
    show_bool("brk below data segment refused (break unchanged)", got == cur);
    got = brk_raw(cur + ((uintptr_t)1 << 46));
    show_bool("huge brk refused (break unchanged)", got == cur);
    show_bool("brk(0) unchanged after refusals", brk_raw(0) == cur);

    /* back to the start */
    got = brk_raw(start);
    show_bool("shrink back to start", got == start);

    /* several small steps */
    ok = 1;
    for (int i = 1; i <= 64; i++) {
        if (brk_raw(start + i * 4096) != start + i * 4096)
            ok = 0;
        p[i * 4096 - 1] = (unsigned char)i;
    }
    for (int i = 1; i <= 64; i++)
        if (p[i * 4096 - 1] != (unsigned char)i)
            ok = 0;
    show_bool("64 one-page steps", ok);
    brk_raw(start);

    /* libc sbrk: its view starts at the kernel's break */
    void *s0 = sbrk(0);
    show_bool("sbrk(0) == brk(0)", (uintptr_t)s0 == brk_raw(0));
    void *s1 = sbrk(65536);
    show_bool("sbrk(65536) returns old break", s1 == s0);
    show_bool("break advanced by 65536", (uintptr_t)sbrk(0) == (uintptr_t)s0 + 65536);
    memset(s1, 0xab, 65536);
    show_bool("sbrk memory writable", ((unsigned char *)s1)[65535] == 0xab);
    void *s2 = sbrk(-65536);
    show_bool("sbrk(-65536) returns previous break", (uintptr_t)s2 == (uintptr_t)s0 + 65536);
    show_bool("break back", sbrk(0) == s0);

    /* malloc still works afterwards */
    char *m = malloc(100000);
    show_bool("malloc after brk games", m != NULL);
    if (m) {
        memset(m, 1, 100000);
        free(m);
    }
    printf("done\n");
    return 0;
}
