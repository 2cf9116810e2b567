/* file/xattr: extended attributes — set/get/list/remove through a path, a
 * symlink (l*) and an fd, XATTR_CREATE/XATTR_REPLACE, size-0 queries and
 * ERANGE, ENODATA, unknown namespaces, user.* refused on symlinks, trusted.*
 * for root only, and an unprivileged caller without write access. */
#include "../common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#define F "/tmp/rvisor-difftest-xattr"
#define L "/tmp/rvisor-difftest-xattr-link"

static void list(const char *label)
{
    char buf[256];
    ssize_t n = listxattr(F, buf, sizeof buf);
    printf("%s:", label);
    /* print in sorted order: the order of the list is the filesystem's */
    const char *names[16];
    int k = 0;
    for (ssize_t i = 0; i < n && k < 16; i += strlen(buf + i) + 1)
        names[k++] = buf + i;
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k; j++)
            if (strcmp(names[j], names[i]) < 0) {
                const char *x = names[i];
                names[i] = names[j];
                names[j] = x;
            }
    for (int i = 0; i < k; i++)
        if (strncmp(names[i], "security.", 9) != 0) /* the host may add its own */
            printf(" %s", names[i]);
    printf("\n");
}

int main(void)
{
    test_init();
    unlink(F);
    unlink(L);
    int fd = open(F, O_CREAT | O_RDWR, 0644);
    MUST(fd);
    MUST(symlink(F, L));
    show("setxattr user.a", setxattr(F, "user.a", "alpha", 5, 0));
    show("fsetxattr user.b", fsetxattr(fd, "user.b", "be", 2, 0));
    expect_err("XATTR_CREATE existing", setxattr(F, "user.a", "x", 1, XATTR_CREATE));
    expect_err("XATTR_REPLACE missing", setxattr(F, "user.c", "x", 1, XATTR_REPLACE));
    show("XATTR_REPLACE existing", setxattr(F, "user.a", "ALPHA!", 6, XATTR_REPLACE));
    expect_err("bad flags", setxattr(F, "user.a", "x", 1, 8));
    char v[64];
    show("getxattr size query", getxattr(F, "user.a", NULL, 0));
    expect_err("getxattr small buffer", getxattr(F, "user.a", v, 2));
    ssize_t n = getxattr(L, "user.a", v, sizeof v);
    printf("through the symlink: %.*s\n", (int)n, v);
    n = fgetxattr(fd, "user.b", v, sizeof v);
    printf("fgetxattr: %.*s\n", (int)n, v);
    expect_err("getxattr missing", getxattr(F, "user.zz", v, sizeof v));
    expect_err("unknown namespace", setxattr(F, "bogus.a", "x", 1, 0));
    expect_err("empty name", setxattr(F, "", "x", 1, 0));
    expect_err("user.* on the symlink itself", lsetxattr(L, "user.a", "x", 1, 0));
    show("setxattr trusted as root", setxattr(F, "trusted.t", "tt", 2, 0));
    list("list");
    show("listxattr size query > 0", listxattr(F, NULL, 0) > 0);
    show("removexattr user.b", removexattr(F, "user.b"));
    expect_err("removexattr again", removexattr(F, "user.b"));
    list("after remove");
    MUST(chmod(F, 0644));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        setgid(65534);
        setuid(65534);
        expect_err("set without write access", setxattr(F, "user.x", "x", 1, 0));
        n = getxattr(F, "user.a", v, sizeof v);
        printf("unprivileged read: %.*s\n", (int)(n > 0 ? n : 0), v);
        expect_err("trusted.* hidden from the unprivileged", getxattr(F, "trusted.t", v, sizeof v));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    close(fd);
    unlink(F);
    unlink(L);
    return 0;
}
