/* mm/mmap_shared_file: writable MAP_SHARED file mappings — stores through the
 * mapping reach the file (seen by pread, after msync and without it), write()
 * is visible through the mapping (read-only and writable ones), two mappings
 * of the same file and a forked child share the pages, the mapping outlives
 * the descriptor, and an O_RDONLY shared mapping cannot be mprotect'ed
 * writable.
 *
 * (mm/mmap_file.c covers private mappings, read-only MAP_SHARED of an
 * unchanging file, and the mmap error paths, including EACCES for
 * PROT_WRITE|MAP_SHARED of an O_RDONLY descriptor.) */
#include "../common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PATH "/tmp/rvisor-difftest-mm-shared-file"
#define PG 4096

static char content[3 * PG + 100];

static void show_file(const char *label, int fd, off_t off)
{
    char buf[32];
    ssize_t n = pread(fd, buf, 18, off);
    if (n < 0)
        printf("%s: pread -1 %s\n", label, errname(errno));
    else
        printf("%s: %.*s\n", label, (int)n, buf);
}

int main(void)
{
    test_init();
    umask(022);
    unlink(PATH);

    /* 3 pages + 100 bytes: each page starts with a recognisable line */
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (char)('a' + (i % 26));
    for (int pg = 0; pg < 4; pg++) {
        char line[32];
        int n = snprintf(line, sizeof line, "page %d begins here\n", pg);
        memcpy(content + pg * PG, line, n);
    }
    int fd = open(PATH, O_CREAT | O_RDWR | O_TRUNC, 0644);
    MUST(fd);
    MUST(write(fd, content, sizeof content));

    /* shared writable: writes reach the file */
    char *p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("mmap shared file: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    MUST(p == MAP_FAILED ? -1 : 0);
    memcpy(p + PG, "SHARED", 6);
    show_file("file after shared write (before msync)", fd, PG);
    show("msync", msync(p, 2 * PG, MS_SYNC));
    show_file("file after shared write", fd, PG);
    show("msync MS_ASYNC", msync(p, PG, MS_ASYNC));
    show("msync MS_INVALIDATE", msync(p, PG, MS_INVALIDATE));
    /* msync of an unaligned address */
    expect_err("msync unaligned", msync(p + 1, PG, MS_SYNC));
    /* and write() is visible through the shared mapping */
    MUST(pwrite(fd, "WRITTEN", 7, 0));
    printf("mapping after pwrite: %.*s\n", 18, p);

    /* a second shared mapping of the same page sees the first one's stores */
    char *q = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PG);
    printf("second shared mapping: %s\n", q == MAP_FAILED ? errname(errno) : "ok");
    if (q != MAP_FAILED) {
        printf("second mapping sees: %.*s\n", 18, q);
        memcpy(q + 6, "-TWICE", 6);
        printf("first mapping sees: %.*s\n", 18, p + PG);
        munmap(q, PG);
    }
    show_file("file after second mapping's write", fd, PG);

    /* a forked child shares the pages */
    fflush(stdout);
    pid_t pid = fork();
    MUST(pid);
    if (pid == 0) {
        memcpy(p + 2, "CHILD", 5);
        _exit(0);
    }
    int status;
    MUST(waitpid(pid, &status, 0));
    printf("parent sees child's store: %.*s\n", 18, p);
    show_file("file after child's store", fd, 0);
    munmap(p, 2 * PG);

    /* a read-only MAP_SHARED mapping sees later write()s (it is not a copy) */
    p = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 2 * PG);
    printf("mmap shared read-only: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    MUST(p == MAP_FAILED ? -1 : 0);
    printf("read-only shared before pwrite: %.*s\n", 18, p);
    MUST(pwrite(fd, "REWRITTEN", 9, 2 * PG));
    printf("read-only shared after pwrite: %.*s\n", 18, p);
    munmap(p, PG);

    /* the mapping outlives the descriptor, and stores still reach the file */
    p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    MUST(p == MAP_FAILED ? -1 : 0);
    close(fd);
    printf("after close: %.*s\n", 18, p);
    memcpy(p, "CLOSED", 6);
    show("msync after close", msync(p, PG, MS_SYNC));
    munmap(p, PG);
    fd = open(PATH, O_RDONLY);
    MUST(fd);
    show_file("file after store past close", fd, 0);

    /* O_RDONLY descriptor: a read-only shared mapping cannot become writable */
    p = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
    printf("shared read-only of O_RDONLY fd: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    if (p != MAP_FAILED) {
        expect_err("mprotect it PROT_WRITE", mprotect(p, PG, PROT_READ | PROT_WRITE));
        munmap(p, PG);
    }
    close(fd);

    /* the file's final contents, page by page */
    fd = open(PATH, O_RDONLY);
    MUST(fd);
    for (int pg = 0; pg < 4; pg++) {
        char label[32];
        snprintf(label, sizeof label, "final page %d", pg);
        show_file(label, fd, pg * PG);
    }
    struct stat st;
    MUST(fstat(fd, &st));
    printf("final size: %ld\n", (long)st.st_size);
    close(fd);

    unlink(PATH);
    printf("done\n");
    return 0;
}
