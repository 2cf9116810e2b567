/* file/perms: discretionary access as an unprivileged user — search (x)
 * permission on every directory of a path, the sticky-bit rule for unlink
 * and rename, chown limits — and RLIMIT_FSIZE (EFBIG and SIGXFSZ for
 * truncate and write, writes cut at the limit). Starts as root, drops to
 * uid/gid 65534 in a child. */
#include "../common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define DIR "/tmp/rvisor-difftest-perms"

static volatile sig_atomic_t xfsz;
static void on_xfsz(int s) { (void)s; xfsz++; }

int main(void)
{
    test_init();
    umask(0);
    system("rm -rf " DIR);
    MUST(mkdir(DIR, 0777));
    MUST(mkdir(DIR "/closed", 0700));
    MUST(close(open(DIR "/closed/f", O_CREAT | O_WRONLY, 0666)));
    MUST(mkdir(DIR "/sticky", 01777));
    MUST(close(open(DIR "/sticky/roots", O_CREAT | O_WRONLY, 0666)));
    MUST(close(open(DIR "/mine", O_CREAT | O_WRONLY, 0666)));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0) {
            printf("cannot drop privileges: %s\n", errname(errno));
            _exit(1);
        }
        struct stat st;
        expect_err("stat through a 0700 directory", stat(DIR "/closed/f", &st));
        expect_err("open through it", open(DIR "/closed/f", O_RDONLY));
        expect_err("chdir into it", chdir(DIR "/closed"));
        show("stat the directory itself", stat(DIR "/closed", &st));
        expect_err("access F_OK through it", access(DIR "/closed/f", F_OK));
        expect_err("unlink in it", unlink(DIR "/closed/f"));
        expect_err("unlink another's file in a sticky dir", unlink(DIR "/sticky/roots"));
        expect_err("rename it away", rename(DIR "/sticky/roots", DIR "/sticky/x"));
        int fd = open(DIR "/sticky/own", O_CREAT | O_WRONLY, 0644);
        show_ok("create own file in sticky dir", fd);
        close(fd);
        show("unlink own file in sticky dir", unlink(DIR "/sticky/own"));
        expect_err("chown a root file", chown(DIR "/mine", 65534, 65534));
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);

    signal(SIGXFSZ, on_xfsz);
    struct rlimit rl = {.rlim_cur = 10000, .rlim_max = RLIM_INFINITY};
    MUST(setrlimit(RLIMIT_FSIZE, &rl));
    int fd = open(DIR "/big", O_CREAT | O_RDWR, 0644);
    expect_err("ftruncate past RLIMIT_FSIZE", ftruncate(fd, 20000));
    show("ftruncate to the limit", ftruncate(fd, 10000));
    MUST(lseek(fd, 9990, SEEK_SET));
    char buf[100];
    memset(buf, 'x', sizeof buf);
    show("write crossing the limit", write(fd, buf, sizeof buf));
    expect_err("write at the limit", write(fd, buf, sizeof buf));
    expect_err("pwrite past the limit", pwrite(fd, buf, 10, 50000));
    printf("SIGXFSZ count %d\n", (int)xfsz);
    close(fd);
    system("rm -rf " DIR);
    return 0;
}
