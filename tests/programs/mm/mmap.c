/* mm/mmap: anonymous private/shared mappings, munmap, mprotect, mremap,
 * madvise, MAP_FIXED / MAP_FIXED_NOREPLACE, and the EINVAL/ENOMEM paths.
 * No test here ever faults: signal handlers are out of scope. */
#include "../common.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define PG 4096UL

static int all(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void *map(size_t len, int prot, int flags)
{
    return mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0);
}

static void show_map(const char *label, void *p)
{
    if (p == MAP_FAILED)
        printf("%s: MAP_FAILED %s\n", label, errname(errno));
    else
        printf("%s: ok\n", label);
}

int main(void)
{
    test_init();
    long pagesize = sysconf(_SC_PAGESIZE);
    printf("page size: %ld\n", pagesize);

    /* anonymous private */
    unsigned char *a = map(16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    show_map("mmap anon private 16 pages", a);
    MUST(a == MAP_FAILED ? -1 : 0);
    show_bool("page aligned", ((uintptr_t)a & (PG - 1)) == 0);
    show_bool("zero filled", all(a, 16 * PG, 0));
    for (size_t i = 0; i < 16 * PG; i++)
        a[i] = (unsigned char)(i % 251);
    int ok = 1;
    for (size_t i = 0; i < 16 * PG; i++)
        if (a[i] != (unsigned char)(i % 251))
            ok = 0;
    show_bool("holds writes", ok);

    /* a private mapping is copied on fork */
    fflush(stdout);
    pid_t pid = fork();
    MUST(pid);
    if (pid == 0) {
        memset(a, 0xee, PG);
        _exit(all(a, PG, 0xee) ? 0 : 1);
    }
    int status;
    MUST(waitpid(pid, &status, 0));
    printf("child exit: %d\n", WEXITSTATUS(status));
    show_bool("private mapping unchanged in parent after child write", a[0] == 0 && a[1] == 1);

    /* anonymous shared is shared with a forked child */
    unsigned char *s = map(2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED);
    show_map("mmap anon shared", s);
    MUST(s == MAP_FAILED ? -1 : 0);
    show_bool("shared zero filled", all(s, 2 * PG, 0));
    fflush(stdout);
    pid = fork();
    MUST(pid);
    if (pid == 0) {
        strcpy((char *)s, "written by child");
        s[PG + 7] = 42;
        _exit(0);
    }
    MUST(waitpid(pid, &status, 0));
    printf("shared content seen by parent: \"%s\" %d\n", (char *)s, s[PG + 7]);

    /* munmap */
    show("munmap middle page", munmap(a + 4 * PG, PG));
    show_bool("pages around the hole intact", a[4 * PG - 1] == (unsigned char)((4 * PG - 1) % 251) &&
                                                  a[5 * PG] == (unsigned char)((5 * PG) % 251));
    expect_err("mprotect on the hole", mprotect(a + 4 * PG, PG, PROT_READ));
    expect_err("mprotect spanning the hole", mprotect(a + 3 * PG, 3 * PG, PROT_READ));
    show("munmap already unmapped range", munmap(a + 4 * PG, PG));
    expect_err("munmap unaligned", munmap(a + 1, PG));
    expect_err("munmap length 0", munmap(a, 0));
    show("munmap unaligned length rounds up", munmap(a + 14 * PG, PG + 1));
    expect_err("mprotect after rounded munmap", mprotect(a + 15 * PG, PG, PROT_READ));

    /* mprotect */
    unsigned char *n = map(4 * PG, PROT_NONE, MAP_PRIVATE);
    show_map("mmap PROT_NONE", n);
    show("mprotect RW", mprotect(n, 4 * PG, PROT_READ | PROT_WRITE));
    memset(n, 7, 4 * PG);
    show_bool("writable after mprotect", all(n, 4 * PG, 7));
    show("mprotect READ one page", mprotect(n + PG, PG, PROT_READ));
    show_bool("readable after mprotect READ", n[PG] == 7);
    show("mprotect back to RW", mprotect(n + PG, PG, PROT_READ | PROT_WRITE));
    n[PG] = 8;
    show_bool("write after restoring RW", n[PG] == 8);
    expect_err("mprotect unaligned", mprotect(n + 1, PG, PROT_READ));
    expect_err("mprotect bad prot bits", mprotect(n, PG, 0x100));
    show("mprotect length 0", mprotect(n, 0, PROT_READ));
    show("mprotect unaligned length", mprotect(n, 10, PROT_READ | PROT_WRITE));
    show("mprotect PROT_EXEC", mprotect(n + 3 * PG, PG, PROT_READ | PROT_EXEC));

    /* mremap */
    unsigned char *r = map(PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    MUST(r == MAP_FAILED ? -1 : 0);
    strcpy((char *)r, "mremap keeps this");
    unsigned char *r2 = mremap(r, PG, 64 * PG, MREMAP_MAYMOVE);
    show_map("mremap grow MAYMOVE", r2);
    if (r2 != MAP_FAILED) {
        printf("content after grow: \"%s\"\n", (char *)r2);
        show_bool("grown tail is zero", all(r2 + PG, 63 * PG, 0));
        memset(r2 + 63 * PG, 3, PG);
        show_bool("grown tail writable", all(r2 + 63 * PG, PG, 3));
        unsigned char *r3 = mremap(r2, 64 * PG, 2 * PG, 0);
        show_map("mremap shrink", r3);
        show_bool("shrink stays in place", r3 == r2);
        show_bool("content after shrink", strcmp((char *)r3, "mremap keeps this") == 0);
        expect_err("mprotect beyond shrunk end", mprotect(r3 + 2 * PG, PG, PROT_READ));
        munmap(r3, 2 * PG);
    }
    unsigned char *two = map(2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    errno = 0;
    void *rr = mremap(two, PG, 2 * PG, 0);
    show_map("mremap grow in place into mapped page without MAYMOVE", rr);
    rr = mremap(two + 1, PG, 2 * PG, MREMAP_MAYMOVE);
    show_map("mremap unaligned address", rr);
    rr = mremap(two, PG, 0, MREMAP_MAYMOVE);
    show_map("mremap new length 0", rr);
    rr = mremap(two, PG, 2 * PG, MREMAP_FIXED);
    show_map("mremap FIXED without MAYMOVE", rr);
    rr = mremap(two, PG, 2 * PG, 0x80);
    show_map("mremap bad flags", rr);
    munmap(two, 2 * PG);
    rr = mremap(two, PG, 2 * PG, MREMAP_MAYMOVE);
    show_map("mremap unmapped address", rr);

    /* mremap MREMAP_FIXED to a chosen address */
    unsigned char *src = map(2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    unsigned char *dst = map(4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    memset(src, 0x11, 2 * PG);
    rr = mremap(src, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst + PG);
    show_map("mremap MAYMOVE|FIXED", rr);
    show_bool("moved to requested address", rr == dst + PG);
    show_bool("moved content", all(dst + PG, 2 * PG, 0x11));
    expect_err("old range unmapped", mprotect(src, PG, PROT_READ));
    munmap(dst, 4 * PG);

    /* madvise */
    unsigned char *m = map(8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    memset(m, 0x5a, 8 * PG);
    show("madvise DONTNEED", madvise(m + 2 * PG, 4 * PG, MADV_DONTNEED));
    show_bool("DONTNEED range reads zero", all(m + 2 * PG, 4 * PG, 0));
    show_bool("outside range intact", all(m, 2 * PG, 0x5a) && all(m + 6 * PG, 2 * PG, 0x5a));
    show("madvise NORMAL", madvise(m, 8 * PG, MADV_NORMAL));
    show("madvise WILLNEED", madvise(m, 8 * PG, MADV_WILLNEED));
    show("madvise SEQUENTIAL", madvise(m, 8 * PG, MADV_SEQUENTIAL));
    show("madvise RANDOM", madvise(m, 8 * PG, MADV_RANDOM));
    expect_err("madvise bad advice", madvise(m, PG, 9999));
    expect_err("madvise unaligned", madvise(m + 1, PG, MADV_NORMAL));
    show("madvise length 0", madvise(m, 0, MADV_NORMAL));
    memset(s, 0x77, 2 * PG);
    show("madvise DONTNEED shared", madvise(s, 2 * PG, MADV_DONTNEED));
    show_bool("shared content survives DONTNEED", all(s, 2 * PG, 0x77));
    munmap(m, 8 * PG);

    /* MAP_FIXED replaces, MAP_FIXED_NOREPLACE refuses */
    unsigned char *f = map(3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    memset(f, 1, 3 * PG);
    void *fx = mmap(f + PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    show_bool("MAP_FIXED at requested address", fx == f + PG);
    show_bool("MAP_FIXED page is fresh", all(f + PG, PG, 0));
    show_bool("neighbours kept", all(f, PG, 1) && all(f + 2 * PG, PG, 1));
    fx = mmap(f, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    show_map("MAP_FIXED_NOREPLACE over a mapping", fx);
    munmap(f, 3 * PG);
    fx = mmap(f, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    show_bool("MAP_FIXED_NOREPLACE on free range", fx == f);
    munmap(f, PG);

    /* a big sparse mapping */
    size_t big = 256UL << 20;
    unsigned char *b = mmap(NULL, big, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    show_map("mmap 256 MiB NORESERVE", b);
    if (b != MAP_FAILED) {
        for (size_t i = 0; i < big; i += 1 << 20)
            b[i] = (unsigned char)(i >> 20);
        ok = 1;
        for (size_t i = 0; i < big; i += 1 << 20)
            if (b[i] != (unsigned char)(i >> 20))
                ok = 0;
        show_bool("sparse touches", ok);
        show("munmap big", munmap(b, big));
    }
    unsigned char *pop = map(16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_POPULATE);
    show_map("mmap MAP_POPULATE", pop);
    show_bool("populated zero", pop != MAP_FAILED && all(pop, 16 * PG, 0));

    /* invalid arguments */
    show_map("mmap length 0", map(0, PROT_READ, MAP_PRIVATE));
    show_map("mmap neither PRIVATE nor SHARED", map(PG, PROT_READ, 0));
    show_map("mmap bad fd", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, 999, 0));
    show_map("mmap FIXED unaligned", mmap((void *)0x10001, PG, PROT_READ,
                                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    show_map("mmap huge length", map((size_t)-4096, PROT_READ, MAP_PRIVATE));
    show_map("mmap anon unaligned offset",
             (void *)syscall(SYS_mmap, 0, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 123));
    show("msync anon", msync(s, PG, MS_SYNC));
    expect_err("msync unaligned", msync((char *)s + 1, PG, MS_SYNC));
    expect_err("msync bad flags", msync(s, PG, MS_SYNC | MS_ASYNC));

    show("munmap shared", munmap(s, 2 * PG));
    printf("done\n");
    return 0;
}
