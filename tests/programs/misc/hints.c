/* misc/hints: calls that are only hints but validate their arguments —
 * posix_fadvise, readahead — and nice values: getpriority/setpriority for
 * the process, its group and user, nice(), inheritance across fork, and the
 * errors for bad `which` and unknown targets. */
#include "../common.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>

int main(void)
{
    test_init();
    int fd = open("/proc/self/exe", O_RDONLY);
    MUST(fd);
    int p[2];
    MUST(pipe(p));
    /* posix_fadvise returns the error instead of setting errno */
    printf("fadvise WILLNEED: %s\n", errname(posix_fadvise(fd, 0, 4096, POSIX_FADV_WILLNEED)) );
    printf("fadvise DONTNEED whole file: %d\n", posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
    printf("fadvise bad advice: %s\n", errname(posix_fadvise(fd, 0, 0, 99)));
    printf("fadvise pipe: %s\n", errname(posix_fadvise(p[0], 0, 0, POSIX_FADV_NORMAL)));
    printf("fadvise bad fd: %s\n", errname(posix_fadvise(999, 0, 0, POSIX_FADV_NORMAL)));
    printf("fadvise negative len: %s\n", errname(posix_fadvise(fd, 0, -1, POSIX_FADV_NORMAL)));
    show("readahead file", readahead(fd, 0, 8192));
    expect_err("readahead pipe", readahead(p[0], 0, 10));
    int z = open("/dev/zero", O_RDONLY);
    expect_err("readahead /dev/zero", readahead(z, 0, 10));
    int w = open("/dev/null", O_WRONLY);
    expect_err("readahead write-only", readahead(w, 0, 10));

    errno = 0;
    show("getpriority self", getpriority(PRIO_PROCESS, 0));
    show("setpriority 5", setpriority(PRIO_PROCESS, 0, 5));
    show("getpriority self", getpriority(PRIO_PROCESS, getpid()));
    show("getpriority pgrp", getpriority(PRIO_PGRP, 0));
    show("nice(2)", nice(2));
    show("setpriority 100 clamps", setpriority(PRIO_PROCESS, 0, 100));
    show("getpriority", getpriority(PRIO_PROCESS, 0));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        printf("child inherits: %d\n", getpriority(PRIO_PROCESS, 0));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    show("setpriority back to 0 (root)", setpriority(PRIO_PROCESS, 0, 0));
    expect_err("getpriority bad which", getpriority(7, 0));
    expect_err("getpriority no such pid", getpriority(PRIO_PROCESS, 4000000));
    expect_err("setpriority no such pid", setpriority(PRIO_PROCESS, 4000000, 1));
    return 0;
}
