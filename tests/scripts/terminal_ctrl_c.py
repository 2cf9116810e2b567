# Runs a command (a container engine's `run -it`) in a new pty, waits
# until the container prints "ready", types Ctrl-C, and reports what a
# user at that terminal sees: whether the container's trap ran and the
# client's exit code.
import os
import pty
import select
import sys
import time

pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])

out = b""
def read_until(marker, timeout):
    global out
    end = time.monotonic() + timeout
    while marker not in out and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            out += chunk

read_until(b"ready", 60)
time.sleep(0.3)
os.write(fd, b"\x03")
read_until(b"done", 30)
_, status = os.waitpid(pid, 0)
text = out.decode(errors="replace")
print("trap ran:", "got INT" in text, "done:", "done" in text,
      "exit:", os.waitstatus_to_exitcode(status))
