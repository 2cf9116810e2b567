/* netns/ifaces: what a program learns about the network's interfaces —
 * getifaddrs (netlink RTM_GETLINK and RTM_GETADDR), if_nameindex,
 * if_nametoindex and the netdevice ioctls (SIOCGIFINDEX, SIOCGIFNAME,
 * SIOCGIFFLAGS, SIOCGIFMTU, SIOCGIFADDR, SIOCGIFNETMASK, SIOCGIFCONF),
 * a raw RTM_GETROUTE dump, and getaddrinfo with AI_ADDRCONFIG.
 *
 * Not differential against the host: tests/net.rs compares it with a
 * native run in a new network namespace with only lo up (the sandbox's
 * network), and with the host under --network host. */
#include "../common.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void addr_text(const struct sockaddr *sa, char *out, size_t n)
{
    if (!sa) {
        snprintf(out, n, "-");
    } else if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, out, n);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, out, n);
    } else {
        snprintf(out, n, "family %d", sa->sa_family);
    }
}

static void ifaddrs(void)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0) {
        printf("getifaddrs: %s\n", errname(errno));
        return;
    }
    char *lines[256];
    int n = 0;
    for (struct ifaddrs *i = list; i && n < 256; i = i->ifa_next) {
        char a[64], m[64];
        int fam = i->ifa_addr ? i->ifa_addr->sa_family : -1;
        addr_text(fam == AF_PACKET ? NULL : i->ifa_addr, a, sizeof a);
        addr_text(fam == AF_PACKET ? NULL : i->ifa_netmask, m, sizeof m);
        lines[n] = malloc(256);
        snprintf(lines[n], 256, "ifaddr %s family %d flags %#x addr %s mask %s", i->ifa_name,
                 fam, i->ifa_flags & (IFF_UP | IFF_LOOPBACK | IFF_RUNNING), a, m);
        n++;
    }
    freeifaddrs(list);
    qsort(lines, n, sizeof lines[0], cmp);
    for (int i = 0; i < n; i++) {
        printf("%s\n", lines[i]);
        free(lines[i]);
    }
}

static void ioctls(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq r;
    memset(&r, 0, sizeof r);
    strcpy(r.ifr_name, "lo");
    show("SIOCGIFINDEX lo", ioctl(s, SIOCGIFINDEX, &r));
    printf("index %d\n", r.ifr_ifindex);
    memset(&r, 0, sizeof r);
    r.ifr_ifindex = 1;
    show("SIOCGIFNAME 1", ioctl(s, SIOCGIFNAME, &r));
    printf("name %s\n", r.ifr_name);
    strcpy(r.ifr_name, "lo");
    show("SIOCGIFFLAGS", ioctl(s, SIOCGIFFLAGS, &r));
    printf("flags %#x\n", r.ifr_flags & (IFF_UP | IFF_LOOPBACK | IFF_RUNNING));
    show("SIOCGIFMTU", ioctl(s, SIOCGIFMTU, &r));
    printf("mtu %d\n", r.ifr_mtu);
    char a[64];
    show("SIOCGIFADDR", ioctl(s, SIOCGIFADDR, &r));
    addr_text(&r.ifr_addr, a, sizeof a);
    printf("addr %s\n", a);
    show("SIOCGIFNETMASK", ioctl(s, SIOCGIFNETMASK, &r));
    addr_text(&r.ifr_netmask, a, sizeof a);
    printf("netmask %s\n", a);
    strcpy(r.ifr_name, "nosuch0");
    expect_err("SIOCGIFFLAGS nosuch0", ioctl(s, SIOCGIFFLAGS, &r));
    struct ifconf c = {.ifc_len = 0, .ifc_buf = NULL};
    show("SIOCGIFCONF size", ioctl(s, SIOCGIFCONF, &c));
    struct ifreq reqs[16];
    c.ifc_len = sizeof reqs;
    c.ifc_req = reqs;
    show("SIOCGIFCONF", ioctl(s, SIOCGIFCONF, &c));
    for (int i = 0; i < c.ifc_len / (int)sizeof reqs[0]; i++) {
        addr_text(&reqs[i].ifr_addr, a, sizeof a);
        printf("ifconf %s %s\n", reqs[i].ifr_name, a);
    }
    printf("if_nametoindex lo: %u\n", if_nametoindex("lo"));
    struct if_nameindex *ni = if_nameindex();
    for (struct if_nameindex *p = ni; p && p->if_index; p++)
        printf("if_nameindex %u %s\n", p->if_index, p->if_name);
    if (ni)
        if_freenameindex(ni);
    close(s);
}

/* A raw dump of the main routing table: how many routes, and NLMSG_DONE. */
static void routes(void)
{
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) {
        printf("netlink socket: %s\n", errname(errno));
        return;
    }
    struct {
        struct nlmsghdr h;
        struct rtmsg r;
    } req = {.h = {.nlmsg_len = sizeof req, .nlmsg_type = RTM_GETROUTE,
                   .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 7},
             .r = {.rtm_family = AF_INET}};
    show("send RTM_GETROUTE", send(s, &req, sizeof req, 0) == sizeof req ? 0 : -1);
    int main_routes = 0, done = 0;
    char buf[16384];
    while (!done) {
        ssize_t n = recv(s, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                done = 1;
                printf("done, seq %u\n", h->nlmsg_seq);
            } else if (h->nlmsg_type == RTM_NEWROUTE &&
                       ((struct rtmsg *)NLMSG_DATA(h))->rtm_table == RT_TABLE_MAIN) {
                main_routes++;
            }
        }
    }
    printf("main-table IPv4 routes: %d\n", main_routes);
    struct sockaddr_nl me;
    socklen_t len = sizeof me;
    show("getsockname", getsockname(s, (struct sockaddr *)&me, &len));
    printf("nl_family %d len %u\n", me.nl_family, (unsigned)len);
    close(s);
}

static void addrconfig(void)
{
    struct addrinfo hints = {.ai_flags = AI_ADDRCONFIG, .ai_socktype = SOCK_STREAM}, *res;
    int r = getaddrinfo("localhost", "80", &hints, &res);
    if (r != 0) {
        printf("getaddrinfo: %s\n", gai_strerror(r));
        return;
    }
    char *lines[16];
    int n = 0;
    for (struct addrinfo *i = res; i && n < 16; i = i->ai_next) {
        lines[n] = malloc(80);
        char a[64];
        addr_text(i->ai_addr, a, sizeof a);
        snprintf(lines[n++], 80, "localhost %s", a);
    }
    freeaddrinfo(res);
    qsort(lines, n, sizeof lines[0], cmp);
    for (int i = 0; i < n; i++) {
        printf("%s\n", lines[i]);
        free(lines[i]);
    }
}

int main(void)
{
    test_init();
    ifaddrs();
    ioctls();
    routes();
    addrconfig();
    return 0;
}
