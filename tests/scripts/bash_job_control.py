# bash with job control in a pseudo-terminal: pty.fork() gives bash a new
# session whose controlling terminal is the pty; we type into the master
# and report what a user at the terminal would see, normalised (no pids,
# prompts or timing): background jobs, `jobs`, `kill %1`, Ctrl-C and
# Ctrl-Z reaching the foreground job, `fg`, and the exit statuses bash saw.
import os
import pty
import select
import signal
import sys
import time

def read_until(fd, marker, timeout=20.0, resend=None):
    """Reads from the master until `marker` has been printed by bash. If it
    has not come after a few seconds, `resend` is typed again: bash
    discards typed-ahead input when a job is interrupted, so a marker typed
    right after ^C may be lost, natively as well."""
    out = b""
    start = time.monotonic()
    deadline = start + timeout
    resent = False
    while marker not in out:
        left = deadline - time.monotonic()
        if resend is not None and not resent and time.monotonic() - start > 4:
            os.write(fd, resend)
            resent = True
        if left <= 0:
            sys.exit(f"timed out waiting for {marker!r}; got {out[-400:]!r}")
        r, _, _ = select.select([fd], [], [], min(left, 1.0))
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")

step = 0
def run(fd, text, keys=None, settle=0.0):
    """Types `text` (a command line), optionally sends control keys after
    `settle` seconds, then waits for a marker echo so output is complete."""
    global step
    step += 1
    os.write(fd, text.encode())
    if keys is not None:
        # Type the key only once the job owns the terminal (its process
        # group is the foreground one), however loaded the machine is.
        deadline = time.monotonic() + 20
        while os.tcgetpgrp(fd) == pid and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(settle)
        os.write(fd, keys)
        time.sleep(0.5)
    # The marker is split in the command so its echo never matches.
    marker_cmd = f"echo M''ARK{step} $?\n".encode()
    os.write(fd, marker_cmd)
    return read_until(fd, f"MARK{step} ".encode(), resend=marker_cmd if keys else None)

def lines_with(text, *words):
    """The distinct lines mentioning one of `words`, excluding the
    terminal's echo of typed commands (which, typed ahead, may appear once
    or twice depending on timing)."""
    keep = set()
    # The terminal's echo of ^C/^Z lands before or after the job's own
    # output depending on timing: drop it.
    for line in text.replace("\r", "").replace("^C", "").replace("^Z", "").split("\n"):
        if any(w in line for w in words) and "echo" not in line:
            # Drop job pids ("[1] 1234") and prompts, whose place relative
            # to the terminal's echo of typed-ahead input is a matter of timing.
            keep.add(" ".join(p for p in line.split() if not p.isdigit() and p != "$"))
    return sorted(keep)

pid, fd = pty.fork()
if pid == 0:
    # Whoever started us may have ignored these (a shell's background
    # job does); ignored signals would survive exec into bash and its jobs.
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_DFL)
    os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"],
               {"PS1": "$ ", "TERM": "dumb", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})

print("tty:", run(fd, "tty >/dev/null && echo IS''ATTY\n").count("ISATTY") >= 1)
print("job started:", lines_with(run(fd, "sleep 100 &\n"), "[1]"))
print("jobs:", lines_with(run(fd, "jobs\n"), "Running", "sleep"))
out = run(fd, "kill %1\n") + run(fd, "sleep 0.2; jobs\n")
print("after kill %1:", lines_with(out, "Terminated"))
out = run(fd, "sleep 100\n", keys=b"\x03", settle=0.2)
print("Ctrl-C:", out.split(f"MARK{step} ")[1].split()[0], "(status of the interrupted job)")
out = run(fd, "sleep 100\n", keys=b"\x1a", settle=0.2)
print("Ctrl-Z:", lines_with(out, "Stopped"), out.split(f"MARK{step} ")[1].split()[0])
print("stopped jobs:", lines_with(run(fd, "jobs\n"), "Stopped"))
out = run(fd, "kill -CONT %1; kill %1; sleep 0.2; jobs\n")
print("after continue+kill:", lines_with(out, "Terminated"))
out = run(fd, "(trap 'echo caught INT' INT; sleep 5; true)\n", keys=b"\x03", settle=1.0)
print("subshell trap:", lines_with(out, "caught"))
out = run(fd, "stty -a | grep -o 'icanon' ; stty size\n")
print("stty:", [l for l in lines_with(out, "icanon") if "stty" not in l])
os.write(fd, b"exit 7\n")
_, status = os.waitpid(pid, 0)
print("bash exit:", os.waitstatus_to_exitcode(status))
