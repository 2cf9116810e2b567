/*
 * Shared helpers for rvisor's differential test programs.
 *
 * Every program prints only deterministic text (no pids, addresses, times,
 * inode numbers...) so that its output natively and under `rvisor do` can be
 * compared byte for byte.  Errors are printed by errno *name* (ENOENT...).
 */
#ifndef RVISOR_TEST_COMMON_H
#define RVISOR_TEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline const char *errname(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

/* Line-buffer stdout so output interleaves sanely with children that write
 * to the same pipe; call fflush(stdout) before fork() in any case. */
static inline void test_init(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
}

/* Print "label = VALUE" or "label = -1 ENAME". */
static inline void show(const char *label, long ret)
{
    if (ret < 0)
        printf("%s = -1 %s\n", label, errname(errno));
    else
        printf("%s = %ld\n", label, ret);
}

/* Print "label: ok" or "label: -1 ENAME" (for calls whose success value is
 * not deterministic, like a returned pointer or fd). */
static inline void show_ok(const char *label, long ret)
{
    if (ret < 0)
        printf("%s: -1 %s\n", label, errname(errno));
    else
        printf("%s: ok\n", label);
}

/* Print the errno of an expected failure. */
static inline void expect_err(const char *label, long ret)
{
    if (ret < 0)
        printf("%s: %s\n", label, errname(errno));
    else
        printf("%s: unexpectedly succeeded (%ld)\n", label, ret);
}

static inline void show_bool(const char *label, int cond)
{
    printf("%s: %s\n", label, cond ? "yes" : "no");
}

/* Fatal if a setup step fails: a test program that cannot set itself up
 * prints why and exits 99 (so native vs sandbox differ visibly). */
#define MUST(expr)                                                            \
    do {                                                                      \
        if ((long)(expr) < 0) {                                               \
            printf("FATAL %s:%d: %s: %s\n", __FILE__, __LINE__, #expr,        \
                   errname(errno));                                           \
            fflush(stdout);                                                   \
            _exit(99);                                                        \
        }                                                                     \
    } while (0)

#endif
