"""python3's http.server answering urllib over loopback, in one process:
a directory listing, then 20 more requests by name (localhost through
/etc/hosts and getaddrinfo). Prints what a user would check."""
import http.server, threading, urllib.request, socketserver, os, socket
os.chdir("/usr/share/doc/python3" if os.path.isdir("/usr/share/doc/python3") else "/")
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
port = srv.server_address[1]
threading.Thread(target=srv.serve_forever, daemon=True).start()
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/").read()
print("listing bytes", len(body), b"<title>" in body)
for i in range(20):
    urllib.request.urlopen(f"http://localhost:{port}/").read()
print("20 more requests ok")
print(socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)[0][4][0])
srv.shutdown()
