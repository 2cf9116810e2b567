"""/proc/net as tools read it: a listener, a connection with unread data,
a bound UDP socket and an IPv6 listener, then each file's rows with the
fields that do not vary from run to run (ephemeral ports, inodes and
kernel pointers do). Run natively in a new network namespace with lo up
and inside rvisor; the outputs must match."""
import socket

l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 8088))
l.listen(5)
c = socket.create_connection(("127.0.0.1", 8088))
a, _ = l.accept()
c.send(b"hello")
pending = socket.create_connection(("127.0.0.1", 8088))  # not accepted
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 9099))
u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u2.connect(("127.0.0.1", 9099))
u2.send(b"datagram")
l6 = socket.socket(socket.AF_INET6)
l6.bind(("::1", 8089))
l6.listen(1)
ephemeral = {c.getsockname()[1], pending.getsockname()[1], u2.getsockname()[1]}


def addr(field):
    ip, port = field.split(":")
    port = int(port, 16)
    return "%s:%s" % (ip, "EPH" if port in ephemeral else port)


for name in ["tcp", "tcp6", "udp", "udp6"]:
    lines = open("/proc/net/" + name).read().splitlines()
    print(name, "header:", lines[0].split())
    rows = []
    for line in lines[1:]:
        f = line.split()
        queues = f[4]
        if name.startswith("udp"):
            # UDP counts buffer space (the kernel's skb sizes), not bytes.
            tx, rx = queues.split(":")
            queues = "%s:%s" % (tx, "queued" if int(rx, 16) else "empty")
        # local, remote, state, tx_queue:rx_queue, uid
        rows.append((addr(f[1]), addr(f[2]), f[3], queues, f[7]))
    for r in sorted(rows):
        print(" ", *r)
lines = open("/proc/net/dev").read().splitlines()
print("dev:", lines[:2], [l.split(":")[0].strip() for l in lines[2:]])
print("route:", open("/proc/net/route").read().splitlines())
