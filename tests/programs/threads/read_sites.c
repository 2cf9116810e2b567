/*
 * glibc's read wrapper, called hot from several threads at once: on
 * systrap, rvisor rewrites its `xor %eax, %eax; syscall; cmp $-4096, %rax`
 * while other threads run it, and their calls, before, during and after
 * the rewrite, must return what Linux returns: the bytes, the count, 0 at
 * the end of the file, and -1 with errno for a bad fd (the `cmp` that
 * tells an error from a count runs elsewhere once the site is rewritten),
 * and a call that blocked in the site before the rewrite and returns into
 * the rewritten bytes after it.
 */
#include "../common.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>

#define PATH "/tmp/rvisor-difftest-read-sites"
#define THREADS 3
#define ROUNDS 4000

static char content[256];
static atomic_int go;
/* An address nothing is mapped at (volatile: the compiler must not see it). */
static void *volatile unmapped = (void *)8;

struct result {
    long wrong_bytes, wrong_counts, eof_wrong, ebadf_wrong, efault_wrong;
};

static void *reader(void *arg)
{
    struct result *r = arg;
    int fd = open(PATH, O_RDONLY);
    if (fd < 0) {
        r->wrong_counts = -1;
        return NULL;
    }
    while (!atomic_load(&go))
        ;
    char buf[32];
    for (int i = 0; i < ROUNDS; i++) {
        off_t at = (i * 7) % 224;
        lseek(fd, at, SEEK_SET);
        ssize_t n = read(fd, buf, sizeof buf);
        if (n != (ssize_t)sizeof buf)
            r->wrong_counts++;
        else if (memcmp(buf, content + at, sizeof buf) != 0)
            r->wrong_bytes++;
        if (i % 50 == 0) {
            lseek(fd, 0, SEEK_END);
            if (read(fd, buf, sizeof buf) != 0)
                r->eof_wrong++;
            errno = 0;
            if (read(-1, buf, sizeof buf) != -1 || errno != EBADF)
                r->ebadf_wrong++;
            errno = 0;
            lseek(fd, 0, SEEK_SET);
            if (read(fd, unmapped, sizeof buf) != -1 || errno != EFAULT)
                r->efault_wrong++;
        }
    }
    close(fd);
    return NULL;
}

static int blocked_pipe[2];

static void *blocked_reader(void *arg)
{
    (void)arg;
    char buf[8] = {0};
    ssize_t n = read(blocked_pipe[0], buf, sizeof buf);
    printf("blocked read returned %zd: %.*s\n", n, n > 0 ? (int)n : 0, buf);
    return NULL;
}

static void report(const char *who, const struct result *r)
{
    printf("%s: wrong bytes %ld, wrong counts %ld, eof wrong %ld, ebadf wrong %ld, efault wrong %ld\n",
           who, r->wrong_bytes, r->wrong_counts, r->eof_wrong, r->ebadf_wrong, r->efault_wrong);
}

int main(void)
{
    test_init();
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (char)(i * 31 + 7);
    int fd = open(PATH, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    MUST(fd);
    MUST(write(fd, content, sizeof content));
    close(fd);

    /* One thread first: glibc's single-threaded read site. */
    struct result alone = {0};
    atomic_store(&go, 1);
    reader(&alone);
    report("alone", &alone);

    /* Then several at once, released together: the multi-threaded site,
     * rewritten while they run it. */
    atomic_store(&go, 0);
    pthread_t t[THREADS];
    struct result res[THREADS];
    memset(res, 0, sizeof res);
    for (int i = 0; i < THREADS; i++)
        MUST(-pthread_create(&t[i], NULL, reader, &res[i]));
    atomic_store(&go, 1);
    struct result mine = {0};
    reader(&mine);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        char who[16];
        snprintf(who, sizeof who, "thread %d", i);
        report(who, &res[i]);
    }
    report("main", &mine);

    /* A read blocked in the site while another thread makes it hot (and
     * gets it rewritten): it returns into the new bytes. */
    MUST(pipe(blocked_pipe));
    int hot[2];
    MUST(pipe(hot));
    pthread_t b;
    MUST(-pthread_create(&b, NULL, blocked_reader, NULL));
    usleep(100 * 1000);
    char c;
    long ok = 0;
    for (int i = 0; i < 200; i++)
        if (write(hot[1], "h", 1) == 1 && read(hot[0], &c, 1) == 1 && c == 'h')
            ok++;
    printf("hot reads meanwhile: %ld\n", ok);
    fflush(stdout);
    MUST(write(blocked_pipe[1], "late", 4));
    pthread_join(b, NULL);
    unlink(PATH);
    printf("done\n");
    return 0;
}
