"""A TCP echo server under load, both ends in one sandbox: a selectors
(epoll) server and 16 client threads, each making 200 round trips of
varied sizes, all over 127.0.0.1, plus UDP round trips over ::1. Bounded
in count; prints totals and checks every echo byte for byte."""
import selectors
import socket
import threading

sel = selectors.DefaultSelector()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(64)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
port = srv.getsockname()[1]
stop = threading.Event()


def serve():
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.2):
            if key.fileobj is srv:
                conn, _ = srv.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(conn)
                conn.close()
                continue
            conn.setblocking(True)
            conn.sendall(data)
            conn.setblocking(False)


server = threading.Thread(target=serve)
server.start()
results = []
PATTERN = bytes(range(251)) * 90


def client(n):
    ok = 0
    nbytes = 0
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(200):
            size = 1 + (i * 997 + n * 131) % 20000
            off = (i + n) % 251
            msg = PATTERN[off:off + size]
            c.sendall(msg)
            got = b""
            while len(got) < size:
                chunk = c.recv(size - len(got))
                if not chunk:
                    break
                got += chunk
            ok += got == msg
            nbytes += len(got)
    results.append((ok, nbytes))


threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
stop.set()
server.join()
print("clients", len(results), "round trips ok", sum(r[0] for r in results),
      "bytes", sum(r[1] for r in results))

# UDP over IPv6 loopback.
a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
b.bind(("::1", 0))
b.settimeout(5)
good = 0
for i in range(300):
    payload = str(i).encode() * (1 + i % 50)
    a.sendto(payload, b.getsockname())
    data, src = b.recvfrom(65536)
    b.sendto(data, src)
    back, _ = a.recvfrom(65536)
    good += back == payload
print("udp round trips ok", good)
