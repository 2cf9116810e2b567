/* mm/proc_maps: /proc/self/maps tracks the address space — the program's
 * own file mappings, [heap], [stack], [vdso], a mapped file by its path
 * with its permissions and offset, mprotect splitting a mapping, munmap
 * and mremap moving one; and pthread_getattr_np (which reads the maps to
 * find the main thread's stack) works. */
#include "../common.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>

#define PATH "/tmp/rvisor-difftest-maps"

static char maps[1 << 16];

static void load(void)
{
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd, maps + n, sizeof maps - 1 - n)) > 0)
        n += r;
    maps[n] = 0;
    close(fd);
}

/* The line for address `a`, or NULL. */
static const char *line_of(void *a)
{
    unsigned long x = (unsigned long)a;
    for (const char *l = maps; *l;) {
        unsigned long s, e;
        if (sscanf(l, "%lx-%lx", &s, &e) == 2 && x >= s && x < e)
            return l;
        l = strchr(l, '\n');
        if (!l)
            break;
        l++;
    }
    return NULL;
}

static void show_line(const char *label, void *a)
{
    const char *l = line_of(a);
    if (!l) {
        printf("%s: not mapped\n", label);
        return;
    }
    char one[512], perms[8], off[32], dev[16], name[256] = "";
    const char *nl = strchr(l, '\n');
    size_t len = nl ? (size_t)(nl - l) : strlen(l);
    if (len >= sizeof one)
        len = sizeof one - 1;
    memcpy(one, l, len);
    one[len] = 0;
    unsigned long ino;
    sscanf(one, "%*s %7s %31s %15s %lu %255s", perms, off, dev, &ino, name);
    printf("%s: %s offset %s named %s\n", label, perms, off, name[0] ? name : "(anonymous)");
}

static int has(const char *what)
{
    return strstr(maps, what) != NULL;
}

int main(void)
{
    test_init();
    long pg = sysconf(_SC_PAGESIZE);
    int fd = open(PATH, O_CREAT | O_RDWR | O_TRUNC, 0644);
    MUST(ftruncate(fd, 4 * pg));
    char *f = mmap(NULL, 3 * pg, PROT_READ, MAP_SHARED, fd, pg);
    char *anon = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *heap = malloc(100);
    int local;
    load();
    printf("[heap] %d [stack] %d [vdso] %d own exe %d\n", has("[heap]"), has("[stack]"), has("[vdso]"),
           line_of((void *)main) != NULL);
    show_line("stack variable", &local);
    show_line("malloc'd", heap);
    show_line("file mapping", f + pg);
    show_line("anonymous", anon);
    MUST(mprotect(anon + pg, pg, PROT_READ));
    load();
    show_line("anon page 0 after mprotect", anon);
    show_line("anon page 1 after mprotect", anon + pg);
    show_line("anon page 2 after mprotect", anon + 2 * pg);
    MUST(munmap(f, 3 * pg));
    load();
    show_line("file mapping after munmap", f);
    /* a mapping spanning several VMAs cannot be remapped */
    printf("mremap across VMAs fails: %d\n", mremap(anon, 4 * pg, 8 * pg, MREMAP_MAYMOVE) == MAP_FAILED);
    char *one = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* block growth in place so it has to move */
    mmap(one + 2 * pg, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    char *moved = mremap(one, 2 * pg, 8 * pg, MREMAP_MAYMOVE);
    printf("mremap moved: %d\n", moved != MAP_FAILED && moved != one);
    load();
    show_line("old place", one);
    show_line("mremap'd page 1", moved + pg);
    show_line("mremap'd page 7", moved + 7 * pg);

    pthread_attr_t at;
    void *stack;
    size_t size;
    int r = pthread_getattr_np(pthread_self(), &at);
    pthread_attr_getstack(&at, &stack, &size);
    printf("pthread_getattr_np: %d, stack contains a local: %d\n", r,
           (char *)&local >= (char *)stack && (char *)&local < (char *)stack + size);
    unlink(PATH);
    return 0;
}
