# Runs a command (a container engine's `run -it`) in a new pty, waits
# until the container prints "ready", types Ctrl-C, and reports what a
# user at that terminal sees: whether the container's trap ran and the
# client's exit code.
import os
import pty
import select
import sys
import time


def type_ctrl_c(fd):
    """At the terminal `fd`: waits for "ready", types Ctrl-C, waits for
    "done"; returns what the terminal showed."""
    out = b""

    def read_until(marker, timeout):
        nonlocal out
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
    return out.decode(errors="replace")


def report(text, exit_code):
    print("trap ran:", "got INT" in text, "done:", "done" in text, "exit:", exit_code)


if __name__ == "__main__":
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[1], sys.argv[1:])
    text = type_ctrl_c(fd)
    _, status = os.waitpid(pid, 0)
    report(text, os.waitstatus_to_exitcode(status))
