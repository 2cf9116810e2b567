/* tty/pty: pseudo-terminals — posix_openpt/grantpt/unlockpt/ptsname, the
 * replica locked until unlockpt, termios defaults and changes, canonical
 * input (one line per read, erase and kill characters, VEOF), echo with
 * ONLCR, raw mode with VMIN, the System V termio (TCGETA/TCSETA), ^C
 * raising SIGINT in the foreground group of the controlling terminal,
 * TIOCSCTTY/TIOCGPGRP/TIOCSPGRP/TIOCGSID, window size with SIGWINCH,
 * FIONREAD, poll readiness, and hangup when the master closes. */
#include "../common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

static void drain(int m, const char *label)
{
    char buf[256];
    struct pollfd p = {.fd = m, .events = POLLIN};
    size_t total = 0;
    char all[1024];
    while (poll(&p, 1, 200) > 0 && (p.revents & POLLIN)) {
        ssize_t n = read(m, buf, sizeof buf);
        if (n <= 0)
            break;
        memcpy(all + total, buf, n);
        total += n;
    }
    printf("%s: \"", label);
    for (size_t i = 0; i < total; i++) {
        unsigned char c = all[i];
        if (c == '\r')
            printf("\\r");
        else if (c == '\n')
            printf("\\n");
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf("\"\n");
}

static void read_line(int s, const char *label)
{
    char buf[64];
    ssize_t n = read(s, buf, sizeof buf);
    if (n < 0)
        printf("%s: -1 %s\n", label, errname(errno));
    else
        printf("%s: %zd \"%.*s\"\n", label, n, (int)(n > 0 && buf[n - 1] == '\n' ? n - 1 : n), buf);
}

static volatile sig_atomic_t winch;
static void on_winch(int s) { (void)s; winch = 1; }

int main(void)
{
    test_init();
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    MUST(m);
    show("isatty(master)", isatty(m));
    show("grantpt", grantpt(m));
    char *name = ptsname(m);
    printf("ptsname under /dev/pts: %s\n", name && strncmp(name, "/dev/pts/", 9) == 0 ? "yes" : "no");
    expect_err("open replica while locked", open(name, O_RDWR | O_NOCTTY));
    show("unlockpt", unlockpt(m));
    int s = open(name, O_RDWR | O_NOCTTY);
    MUST(s);
    show("isatty(replica)", isatty(s));

    struct termios t;
    MUST(tcgetattr(s, &t));
    printf("defaults: icanon %d echo %d isig %d icrnl %d onlcr %d vintr %d veof %d verase %d\n",
           !!(t.c_lflag & ICANON), !!(t.c_lflag & ECHO), !!(t.c_lflag & ISIG),
           !!(t.c_iflag & ICRNL), !!(t.c_oflag & ONLCR), t.c_cc[VINTR], t.c_cc[VEOF],
           t.c_cc[VERASE]);

    /* canonical input, echoed with ONLCR; CR becomes NL (ICRNL) */
    MUST(write(m, "hello\rworld\n", 12));
    drain(m, "echo of two lines");
    read_line(s, "first canonical read");
    read_line(s, "second canonical read");
    /* erase (DEL) and kill (^U) editing */
    MUST(write(m, "abX\x7f" "c\n", 6));
    read_line(s, "after erase");
    MUST(write(m, "junk\x15ok\n", 8));
    read_line(s, "after kill");
    drain(m, "echo of edits");
    /* VEOF on an empty line: read returns 0 */
    MUST(write(m, "\x04", 1));
    read_line(s, "read at VEOF");
    int n = -1;
    MUST(write(m, "pending\n", 8));
    usleep(100000); /* Linux moves pty input to the reader asynchronously */
    show("FIONREAD replica", ioctl(s, FIONREAD, &n) < 0 ? -1 : n);
    read_line(s, "pending line");
    drain(m, "echo");

    /* output processing: replica writes NL, master reads CR NL */
    MUST(write(s, "out\n", 4));
    usleep(100000);
    show("FIONREAD master", ioctl(m, FIONREAD, &n) < 0 ? -1 : n);
    drain(m, "replica output");

    /* raw mode: bytes available at once, no echo */
    struct termios raw = t;
    cfmakeraw(&raw);
    raw.c_cc[VMIN] = 1;
    MUST(tcsetattr(s, TCSANOW, &raw));
    MUST(write(m, "xy", 2));
    char buf[8];
    ssize_t r = read(s, buf, sizeof buf);
    printf("raw read: %zd \"%.*s\"\n", r, (int)(r > 0 ? r : 0), buf);
    drain(m, "raw echo (none)");
    MUST(write(s, "a\nb", 3));
    drain(m, "raw output (no ONLCR)");
    MUST(tcsetattr(s, TCSANOW, &t));

    /* the System V struct termio (TCGETA/TCSETA): low 16 bits of each flag */
    struct termio tio;
    memset(&tio, 0xee, sizeof tio);
    show("TCGETA", ioctl(s, TCGETA, &tio));
    printf("termio: icanon %d echo %d icrnl %d vintr %d veof %d line %d size %zu last byte %#x\n",
           !!(tio.c_lflag & ICANON), !!(tio.c_lflag & ECHO), !!(tio.c_iflag & ICRNL),
           tio.c_cc[VINTR], tio.c_cc[VEOF], tio.c_line, sizeof tio,
           ((unsigned char *)&tio)[sizeof tio - 1]);
    tio.c_lflag &= ~ECHO;
    tio.c_cc[VINTR] = 0x07;
    show("TCSETA", ioctl(s, TCSETA, &tio));
    struct termios after;
    MUST(tcgetattr(s, &after));
    printf("after TCSETA: echo %d icanon %d vintr %d cflag kept %d vdiscard kept %d\n",
           !!(after.c_lflag & ECHO), !!(after.c_lflag & ICANON), after.c_cc[VINTR],
           after.c_cflag == t.c_cflag, after.c_cc[VDISCARD] == t.c_cc[VDISCARD]);
    expect_err("TCGETA to a bad address", ioctl(s, TCGETA, (struct termio *)-1));
    expect_err("TCSETA from NULL", ioctl(s, TCSETA, NULL));
    MUST(tcsetattr(s, TCSANOW, &t));

    /* poll: nothing to read, then a line */
    struct pollfd p = {.fd = s, .events = POLLIN};
    show("poll replica idle", poll(&p, 1, 0));
    MUST(write(m, "x\n", 2));
    show("poll replica with a line", poll(&p, 1, 1000));
    read_line(s, "line");
    drain(m, "echo");

    /* window size */
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    show("TIOCSWINSZ", ioctl(m, TIOCSWINSZ, &ws));
    struct winsize got;
    show("TIOCGWINSZ", ioctl(s, TIOCGWINSZ, &got));
    printf("size %dx%d\n", got.ws_row, got.ws_col);

    /* not our controlling terminal */
    pid_t pg;
    expect_err("TIOCGPGRP on a foreign tty", ioctl(s, TIOCGPGRP, &pg));

    /* a child session takes the terminal; ^C reaches its group */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int cs = open(name, O_RDWR | O_NOCTTY);
        if (ioctl(cs, TIOCSCTTY, 0) < 0) {
            printf("child TIOCSCTTY: %s\n", errname(errno));
            _exit(1);
        }
        pid_t fg = 0, sid = 0;
        ioctl(cs, TIOCGPGRP, &fg);
        ioctl(cs, TIOCGSID, &sid);
        printf("child: foreground is own group %d, session is own %d\n", fg == getpgrp(), sid == getsid(0));
        signal(SIGWINCH, on_winch);
        int fd2 = open("/dev/tty", O_RDWR);
        printf("child: /dev/tty opens: %s\n", fd2 >= 0 ? "yes" : errname(errno));
        fflush(stdout);
        /* tell the parent we are ready, then wait for ^C */
        write(cs, "R", 1);
        for (int i = 0; i < 500 && !winch; i++)
            usleep(10000);
        printf("child: SIGWINCH %d\n", (int)winch);
        fflush(stdout);
        pause();
        _exit(0);
    }
    char c;
    MUST(read(m, &c, 1) == 1 ? 0 : -1);
    struct winsize ws2 = {.ws_row = 30, .ws_col = 100};
    ioctl(m, TIOCSWINSZ, &ws2);
    usleep(200000);
    MUST(write(m, "\x03", 1));
    int st;
    waitpid(pid, &st, 0);
    printf("child ended by: %s\n", WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exit");
    drain(m, "echo of ^C");

    /* hangup: master closed, replica reads EOF and writes fail with EIO */
    close(m);
    read_line(s, "replica read after master close");
    expect_err("replica write after master close", write(s, "z", 1));
    close(s);
    return 0;
}
