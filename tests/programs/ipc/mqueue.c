/* ipc/mqueue: POSIX message queues — mq_open (O_CREAT, O_EXCL, bad
 * attributes, missing queues), priorities (highest first, FIFO within
 * one), message-size and priority limits, a full queue (EAGAIN with
 * O_NONBLOCK, ETIMEDOUT with a deadline), an empty one, a receiver blocked
 * until another process sends, mq_notify with a signal (and EBUSY for a
 * second process), poll readiness, the status line read() gives, and
 * mq_unlink. */
#include "../common.h"

#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define NAME "/rvisor-difftest-mq"

static volatile sig_atomic_t notified_code, notified_value;

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    notified_code = si->si_code;
    notified_value = si->si_value.sival_int;
}

static struct timespec in_ms(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    /* A deadline in the past can leave tv_nsec negative: normalise it,
     * or the call fails with EINVAL instead of timing out. */
    if (ts.tv_nsec < 0) {
        ts.tv_nsec += 1000000000;
        ts.tv_sec -= 1;
    }
    return ts;
}

static void show_attr(const char *label, mqd_t q)
{
    struct mq_attr a;
    if (mq_getattr(q, &a) != 0) {
        printf("%s: %s\n", label, errname(errno));
        return;
    }
    printf("%s: flags %s maxmsg %ld msgsize %ld curmsgs %ld\n", label,
           a.mq_flags & O_NONBLOCK ? "O_NONBLOCK" : "0", a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs);
}

static void receive(const char *label, mqd_t q)
{
    char buf[64] = {0};
    unsigned prio = 99;
    ssize_t n = mq_receive(q, buf, sizeof buf, &prio);
    if (n < 0)
        printf("%s: %s\n", label, errname(errno));
    else
        printf("%s: \"%.*s\" prio %u\n", label, (int)n, buf, prio);
}

int main(void)
{
    test_init();
    mq_unlink(NAME);
    struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t q = mq_open(NAME, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    show_ok("mq_open O_CREAT|O_EXCL", q == (mqd_t)-1 ? -1 : 0);
    expect_err("again with O_EXCL", mq_open(NAME, O_CREAT | O_EXCL | O_RDWR, 0600, &attr));
    expect_err("missing queue", mq_open("/rvisor-difftest-mq-none", O_RDWR));
    struct mq_attr bad = {.mq_maxmsg = 0, .mq_msgsize = 64};
    expect_err("maxmsg 0", mq_open("/rvisor-difftest-mq-bad", O_CREAT | O_RDWR, 0600, &bad));
    expect_err("a name with a slash", mq_open("/a/b", O_CREAT | O_RDWR, 0600, NULL));
    show_attr("attributes", q);

    show("send low", mq_send(q, "low", 3, 1));
    show("send high", mq_send(q, "high", 4, 5));
    show("send mid", mq_send(q, "mid", 3, 3));
    show("send high2", mq_send(q, "high2", 5, 5));
    show_attr("four queued", q);
    char status[128] = {0};
    ssize_t n = read(q, status, sizeof status - 1);
    printf("read: %s", n > 0 ? status : "(nothing)\n");
    struct pollfd p = {.fd = q, .events = POLLIN};
    show("poll with messages", poll(&p, 1, 0));
    char big[65] = {0};
    expect_err("full, O_NONBLOCK unset, past deadline", ({
                   struct timespec past = in_ms(-10);
                   mq_timedsend(q, "x", 1, 0, &past);
               }));
    struct mq_attr nb = {.mq_flags = O_NONBLOCK};
    show("set O_NONBLOCK", mq_setattr(q, &nb, NULL));
    expect_err("full, O_NONBLOCK", mq_send(q, "x", 1, 0));
    nb.mq_flags = 0;
    show("clear O_NONBLOCK", mq_setattr(q, &nb, NULL));
    receive("receive 1", q);
    receive("receive 2", q);
    receive("receive 3", q);
    receive("receive 4", q);
    p.revents = 0;
    show("poll when empty", poll(&p, 1, 0));
    expect_err("message too long", mq_send(q, big, 65, 0));
    expect_err("priority too high", mq_send(q, "x", 1, 32768));
    char small[63];
    expect_err("receive buffer too small", mq_receive(q, small, sizeof small, NULL));
    struct timespec soon = in_ms(50);
    expect_err("empty, deadline", mq_timedreceive(q, small + 0, 64, NULL, &soon));

    /* A receiver blocks until another process sends. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(100000);
        mq_send(q, "from child", 10, 2);
        _exit(0);
    }
    receive("blocked receive", q);
    waitpid(pid, NULL, 0);

    /* Notification of a message arriving in an empty queue. */
    struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO};
    sigaction(SIGUSR1, &sa, NULL);
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    ev.sigev_value.sival_int = 42;
    show("mq_notify", mq_notify(q, &ev));
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        expect_err("mq_notify by another process", mq_notify(q, &ev));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    show("send to notify", mq_send(q, "ping", 4, 0));
    for (int i = 0; i < 100 && !notified_code; i++)
        usleep(10000);
    printf("notified: code %s value %d\n",
           notified_code == SI_MESGQ ? "SI_MESGQ" : "other", (int)notified_value);
    receive("receive ping", q);

    show("mq_unlink", mq_unlink(NAME));
    expect_err("mq_unlink again", mq_unlink(NAME));
    show("send after unlink", mq_send(q, "still", 5, 0));
    receive("receive after unlink", q);
    show("mq_close", mq_close(q));
    return 0;
}
