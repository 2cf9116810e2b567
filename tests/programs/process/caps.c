/* process/caps: capability sets and prctl — capget/capset (dropping from
 * effective and permitted, refusing to raise), the version handshake,
 * setuid away from root clearing the sets (and PR_SET_KEEPCAPS keeping
 * permitted), PR_CAPBSET_READ/DROP, ambient caps, no_new_privs,
 * PR_SET_PDEATHSIG (delivered when the parent dies) and
 * PR_SET_CHILD_SUBREAPER (orphans reparented to the subreaper). */
#include "../common.h"

#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int capget_(struct __user_cap_data_struct d[2])
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    return (int)syscall(SYS_capget, &h, d);
}

static int capset_(struct __user_cap_data_struct d[2])
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    return (int)syscall(SYS_capset, &h, d);
}

static void show_caps(const char *label)
{
    struct __user_cap_data_struct d[2];
    if (capget_(d) < 0) {
        printf("%s: capget %s\n", label, errname(errno));
        return;
    }
    /* A few well-known bits (the full sets depend on how the host started us). */
    printf("%s: eff kill/setuid/sys_admin %d%d%d prm %d%d%d inh %x%x\n", label,
           !!(d[0].effective & (1u << CAP_KILL)), !!(d[0].effective & (1u << CAP_SETUID)),
           !!(d[0].effective & (1u << CAP_SYS_ADMIN)), !!(d[0].permitted & (1u << CAP_KILL)),
           !!(d[0].permitted & (1u << CAP_SETUID)), !!(d[0].permitted & (1u << CAP_SYS_ADMIN)),
           d[0].inheritable, d[1].inheritable);
}

int main(void)
{
    test_init();
    show_caps("root");
    struct __user_cap_header_struct h = {.version = 0x12345678, .pid = 0};
    struct __user_cap_data_struct d[2];
    expect_err("capget bad version", syscall(SYS_capget, &h, d));
    printf("kernel prefers v3: %d\n", h.version == _LINUX_CAPABILITY_VERSION_3);
    show("capget NULL data probe", syscall(SYS_capget, &(struct __user_cap_header_struct){_LINUX_CAPABILITY_VERSION_3, 0}, NULL));
    show("PR_CAPBSET_READ CAP_KILL", prctl(PR_CAPBSET_READ, CAP_KILL));
    expect_err("PR_CAPBSET_READ 99", prctl(PR_CAPBSET_READ, 99));

    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        capget_(d);
        d[0].effective &= ~(1u << CAP_KILL);
        show("capset drop CAP_KILL from effective", capset_(d));
        d[0].effective |= 1u << CAP_KILL;
        d[0].permitted &= ~(1u << CAP_KILL);
        expect_err("capset effective beyond permitted", capset_(d));
        d[0].effective &= ~(1u << CAP_KILL);
        show("capset drop CAP_KILL from permitted", capset_(d));
        d[0].permitted |= 1u << CAP_KILL;
        expect_err("capset raise permitted again", capset_(d));
        show("PR_CAPBSET_DROP CAP_NET_RAW", prctl(PR_CAPBSET_DROP, CAP_NET_RAW));
        show("PR_CAPBSET_READ CAP_NET_RAW", prctl(PR_CAPBSET_READ, CAP_NET_RAW));
        show("PR_SET_KEEPCAPS", prctl(PR_SET_KEEPCAPS, 1));
        show("setresuid 65534", setresuid(65534, 65534, 65534));
        struct __user_cap_data_struct k[2];
        capget_(k);
        printf("kept permitted without CAP_KILL: %d, effective cleared: %d\n",
               k[0].permitted == (d[0].permitted & ~(1u << CAP_KILL)), k[0].effective == 0 && k[1].effective == 0);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    fflush(stdout);
    c = fork();
    if (c == 0) {
        setresuid(65534, 65534, 65534);
        show_caps("after setuid without keepcaps");
        expect_err("PR_CAPBSET_DROP unprivileged", prctl(PR_CAPBSET_DROP, CAP_KILL));
        show("PR_GET_NO_NEW_PRIVS", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
        expect_err("PR_SET_NO_NEW_PRIVS 2", prctl(PR_SET_NO_NEW_PRIVS, 2, 0, 0, 0));
        show("PR_SET_NO_NEW_PRIVS", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        show("PR_GET_NO_NEW_PRIVS", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
        expect_err("PR_CAP_AMBIENT_RAISE without the cap", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0));
        _exit(0);
    }
    waitpid(c, NULL, 0);

    /* pdeathsig: a grandchild learns of its parent's death */
    int p[2];
    pipe(p);
    fflush(stdout);
    c = fork();
    if (c == 0) {
        show("PR_SET_CHILD_SUBREAPER", prctl(PR_SET_CHILD_SUBREAPER, 1));
        int on = 0;
        prctl(PR_GET_CHILD_SUBREAPER, &on);
        printf("subreaper: %d\n", on);
        fflush(stdout);
        pid_t mid = fork();
        if (mid == 0) {
            pid_t g = fork();
            if (g == 0) {
                prctl(PR_SET_PDEATHSIG, SIGUSR1);
                int sig = 0;
                prctl(PR_GET_PDEATHSIG, &sig);
                sigset_t set;
                sigemptyset(&set);
                sigaddset(&set, SIGUSR1);
                sigprocmask(SIG_BLOCK, &set, NULL);
                write(p[1], "r", 1);
                int got = 0;
                struct timespec ts = {5, 0};
                got = sigtimedwait(&set, NULL, &ts);
                printf("grandchild: pdeathsig %d, got %s, new parent is the subreaper: %d\n", sig,
                       got == SIGUSR1 ? "SIGUSR1" : "nothing", getppid() != 1);
                fflush(stdout);
                _exit(0);
            }
            char ch;
            read(p[0], &ch, 1);
            _exit(0);
        }
        waitpid(mid, NULL, 0);
        int st;
        pid_t w = wait(&st);
        printf("subreaper reaped the orphan: %d\n", w > 0);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    return 0;
}
