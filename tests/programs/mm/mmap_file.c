/* mm/mmap_file: file-backed mappings — private read-only mapping of a file the
 * program creates and of /etc/passwd, offsets, the zero tail past EOF in the
 * last page, copy-on-write private writes never reaching the file, a
 * read-only MAP_SHARED mapping of an unchanging file, and the
 * EACCES/ENODEV/EINVAL paths.
 *
 * Writable MAP_SHARED file mappings (writes reaching the file, coherence with
 * write(), msync) are in mm/mmap_shared_file.c. */
#include "../common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PATH "/tmp/rvisor-difftest-mm-file"
#define PG 4096

static char content[3 * PG + 100];

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

    /* private, read-only, whole file */
    char *p = mmap(NULL, sizeof content, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("mmap private file: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    MUST(p == MAP_FAILED ? -1 : 0);
    printf("first line: %.*s\n", 18, p);
    printf("page 2 line: %.*s\n", 18, p + 2 * PG);
    show_bool("whole mapping equals file", memcmp(p, content, sizeof content) == 0);
    /* the rest of the last page past EOF reads as zeros */
    int zero = 1;
    for (size_t i = sizeof content; i < 4 * PG; i++)
        if (p[i] != 0)
            zero = 0;
    show_bool("tail of last page past EOF is zero", zero);
    show("munmap", munmap(p, sizeof content));

    /* with an offset */
    p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, PG);
    printf("mmap at offset 1 page: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    if (p != MAP_FAILED) {
        printf("offset mapping first line: %.*s\n", 18, p);
        munmap(p, PG);
    }
    p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 100);
    printf("mmap unaligned offset: %s\n", p == MAP_FAILED ? errname(errno) : "ok");

    /* private writable: copy-on-write, the file is not modified */
    p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    MUST(p == MAP_FAILED ? -1 : 0);
    memcpy(p, "PRIVATE", 7);
    printf("private mapping now: %.*s\n", 18, p);
    char buf[64];
    MUST(pread(fd, buf, 18, 0));
    printf("file still: %.*s\n", 18, buf);
    munmap(p, 2 * PG);

    /* shared read-only, file not modified while mapped: reads its contents */
    p = mmap(NULL, sizeof content, PROT_READ, MAP_SHARED, fd, 0);
    printf("mmap shared read-only: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    if (p != MAP_FAILED) {
        printf("shared read-only page 1 line: %.*s\n", 18, p + PG);
        show_bool("shared read-only mapping equals file", memcmp(p, content, sizeof content) == 0);
        munmap(p, sizeof content);
    }

    /* the mapping outlives the descriptor */
    p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 0);
    MUST(p == MAP_FAILED ? -1 : 0);
    close(fd);
    printf("after close: %.*s\n", 18, p);
    munmap(p, PG);

    /* permission checks */
    fd = open(PATH, O_RDONLY);
    MUST(fd);
    p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("shared RW of O_RDONLY fd: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("private RW of O_RDONLY fd: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    if (p != MAP_FAILED)
        munmap(p, PG);
    close(fd);
    fd = open(PATH, O_WRONLY);
    MUST(fd);
    p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("read mapping of O_WRONLY fd: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    close(fd);
    int pp[2];
    MUST(pipe(pp));
    p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, pp[0], 0);
    printf("mapping a pipe: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    close(pp[0]);
    close(pp[1]);
    fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("mapping a directory: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    close(fd);

    /* a real host file: /etc/passwd */
    fd = open("/etc/passwd", O_RDONLY);
    MUST(fd);
    struct stat st;
    MUST(fstat(fd, &st));
    char *data = malloc(st.st_size + 1);
    long got = 0, n;
    while ((n = read(fd, data + got, st.st_size - got)) > 0)
        got += n;
    p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("mmap /etc/passwd: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    if (p != MAP_FAILED) {
        show_bool("/etc/passwd mapping equals read()", got == st.st_size && memcmp(p, data, got) == 0);
        char *nl = memchr(p, ':', st.st_size);
        printf("/etc/passwd first user: %.*s\n", nl ? (int)(nl - p) : 0, p);
        munmap(p, st.st_size);
    }
    free(data);
    close(fd);

    /* mapping /dev/zero privately gives zeroed anonymous memory */
    fd = open("/dev/zero", O_RDWR);
    MUST(fd);
    p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("mmap /dev/zero: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    if (p != MAP_FAILED) {
        zero = 1;
        for (int i = 0; i < 2 * PG; i++)
            if (p[i])
                zero = 0;
        show_bool("/dev/zero mapping is zero", zero);
        p[0] = 1;
        munmap(p, 2 * PG);
    }
    close(fd);

    unlink(PATH);
    printf("done\n");
    return 0;
}
