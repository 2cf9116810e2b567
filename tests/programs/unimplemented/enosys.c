/* unimplemented/enosys: NOT a differential program.  Calls syscalls that
 * rvisor does not implement in this version and prints the errno names; each
 * must fail with ENOSYS without killing the program, which then keeps doing
 * ordinary work and prints "still alive".
 *
 * Expected output under rvisor:
 *   io_uring_setup: ENOSYS
 *   io_uring_setup again: ENOSYS
 *   add_key: ENOSYS
 *   syscall 1000: ENOSYS
 *   file round trip: ok
 *   still alive
 */
#include "../common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_add_key
#define SYS_add_key 248
#endif

#define PATH "/tmp/rvisor-enosys-probe"

static void report(const char *label, long r)
{
    if (r < 0)
        printf("%s: %s\n", label, errname(errno));
    else {
        printf("%s: succeeded (%ld)\n", label, r);
        /* natively io_uring_setup returns an fd: do not leak it */
        if (r > 2 && r < 1024)
            close((int)r);
    }
}

int main(void)
{
    test_init();
    /* struct io_uring_params is 120 bytes; zeroed is a valid request */
    uint64_t params[16];
    memset(params, 0, sizeof params);
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
    memset(params, 0, sizeof params);
    report("io_uring_setup again", syscall(SYS_io_uring_setup, 1, params));
    report("add_key", syscall(SYS_add_key, "user", "rvisor-test", "payload", 7, -2 /* KEY_SPEC_PROCESS_KEYRING */));
    report("syscall 1000", syscall(1000, 1, 2, 3));

    /* keep doing real work afterwards */
    unlink(PATH);
    int fd = open(PATH, O_CREAT | O_RDWR | O_TRUNC, 0644);
    MUST(fd);
    const char msg[] = "the sandbox survived unimplemented syscalls\n";
    MUST(write(fd, msg, sizeof msg - 1));
    MUST(lseek(fd, 0, SEEK_SET));
    char buf[128];
    long n = read(fd, buf, sizeof buf);
    close(fd);
    unlink(PATH);
    printf("file round trip: %s\n", n == (long)sizeof msg - 1 && memcmp(buf, msg, n) == 0 ? "ok" : "MISMATCH");
    printf("still alive\n");
    return 0;
}
