#!/usr/bin/env python3
"""A terminal container as a shim drives one, and Ctrl-C typed at it.

    console_ctrl_c.py RUNTIME ROOT BUNDLE ID

Listens on a console socket, runs `RUNTIME --root ROOT create --bundle
BUNDLE --console-socket SOCK ID`, takes the pty master the runtime sends,
starts the container, waits for it to print "ready", types Ctrl-C and
reports what the user at that terminal sees: whether the container's trap
ran, whether it went on to print "done", and its exit code (from the
process the pid file names, which this script, a child subreaper like a
shim, reaps).
"""

import array
import ctypes
import os
import socket
import subprocess
import sys
import tempfile
import time

from terminal_ctrl_c import report, type_ctrl_c

PR_SET_CHILD_SUBREAPER = 36


def main():
    runtime, root, bundle, cid = sys.argv[1:5]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    work = tempfile.mkdtemp(prefix="console-")
    sock_path = os.path.join(work, "console.sock")
    pid_file = os.path.join(work, "pid")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    create = subprocess.Popen(
        [runtime, "--root", root, "create", "--bundle", bundle,
         "--console-socket", sock_path, "--pid-file", pid_file, cid])
    server.settimeout(60)
    conn, _ = server.accept()
    fds = array.array("i")
    _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_LEN(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    master = fds[0]
    if create.wait(60) != 0:
        sys.exit("create failed")
    pid = int(open(pid_file).read())
    subprocess.run([runtime, "--root", root, "start", cid], check=True)

    text = type_ctrl_c(master)
    status = None
    end = time.monotonic() + 30
    while time.monotonic() < end:
        got, st = os.waitpid(-1, os.WNOHANG)
        if got == pid:
            status = os.waitstatus_to_exitcode(st)
            break
        if got == 0:
            time.sleep(0.05)
    report(text, status)


if __name__ == "__main__":
    main()
