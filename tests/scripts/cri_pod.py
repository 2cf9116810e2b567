#!/usr/bin/env python3
"""Drives containerd's CRI as kubelet does, for tests/cri.rs and benches/cri.rs.

    cri_pod.py SOCK HANDLER transcript NAME   one pod, two containers: what a user sees
    cri_pod.py SOCK HANDLER sentries NAME     how many sentries a pod of two containers has
    cri_pod.py SOCK HANDLER shared NAME       a pod whose containers share one pid namespace
    cri_pod.py SOCK HANDLER http NAME         a pod's httpd over loopback and at the pod IP
    cri_pod.py SOCK HANDLER parallel N        N pods at once, each run and removed
    cri_pod.py SOCK HANDLER bench N           N full pod lifecycles, one after another

Prints a transcript with no ids, times or pids in it, so the same steps
under runc and under rvisor can be compared line by line. The last line of
each mode lists the pod and container ids it made (for the caller's
leak checks), prefixed with "ids:".
"""

import concurrent.futures
import os
import re
import sys
import time

import grpc
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc as api_grpc

IMAGE = "localhost/rvisor-busybox:latest"
TIMEOUT = 60


def connect(sock):
    channel = grpc.insecure_channel("unix://" + sock)
    return api_grpc.RuntimeServiceStub(channel)


# A pod with shareProcessNamespace: true.
PID_PER_POD = api.NamespaceOption(pid=api.POD)


def pod_config(name, log_dir, hostname, ns=None):
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, uid=name + "-uid", namespace="rvtest", attempt=0),
        hostname=hostname,
        log_directory=log_dir,
        linux=api.LinuxPodSandboxConfig(
            security_context=api.LinuxSandboxSecurityContext(namespace_options=ns or PID_PER_CONTAINER)
        ),
    )


# What kubelet asks for unless a pod sets shareProcessNamespace: a pid
# namespace per container (the CRI's zero value would share the pod's).
PID_PER_CONTAINER = api.NamespaceOption(pid=api.CONTAINER)


def container_config(name, script, ns=None):
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=0),
        image=api.ImageSpec(image=IMAGE),
        command=["/bin/sh", "-c", script],
        log_path=name + ".log",
        linux=api.LinuxContainerConfig(
            security_context=api.LinuxContainerSecurityContext(namespace_options=ns or PID_PER_CONTAINER)
        ),
    )


def run_pod(rt, handler, name, log_dir, hostname="rvpod", ns=None):
    cfg = pod_config(name, log_dir, hostname, ns)
    pod = rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg, runtime_handler=handler), timeout=TIMEOUT)
    return cfg, pod.pod_sandbox_id


def start_container(rt, pod_id, pod_cfg, name, script, ns=None):
    cid = rt.CreateContainer(
        api.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=container_config(name, script, ns), sandbox_config=pod_cfg
        ),
        timeout=TIMEOUT,
    ).container_id
    rt.StartContainer(api.StartContainerRequest(container_id=cid), timeout=TIMEOUT)
    return cid


def exec_sync(rt, cid, cmd):
    try:
        r = rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=20), timeout=TIMEOUT)
    except grpc.RpcError as e:
        return "error %s: %s" % (e.code().name, re.sub("[0-9a-f]{64}", "<id>", e.details()))
    return "exit %d stdout %r stderr %r" % (r.exit_code, r.stdout.decode(), r.stderr.decode())


def container_state(rt, cid):
    s = rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid), timeout=TIMEOUT).status
    state = api.ContainerState.Name(s.state)
    if s.state == api.CONTAINER_EXITED:
        return "%s exit %d reason %s" % (state, s.exit_code, s.reason)
    return state


def wait_exited(rt, cid):
    deadline = time.time() + 30
    while time.time() < deadline:
        s = rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid), timeout=TIMEOUT).status
        if s.state == api.CONTAINER_EXITED:
            break
        time.sleep(0.05)
    return container_state(rt, cid)


def pod_state(rt, pod_id):
    s = rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=TIMEOUT).status
    return api.PodSandboxState.Name(s.state)


def log_lines(path):
    """The CRI log file without its timestamps ('stdout F text'), stdout's
    lines first: the order between the two streams is a race (they are two
    pipes, under runc too), the order within each is not."""
    try:
        with open(path) as f:
            lines = [line.rstrip("\n").split(" ", 1)[1] for line in f if " " in line]
    except FileNotFoundError:
        return ["(no log file)"]
    return [l for l in lines if l.startswith("stdout ")] + [l for l in lines if not l.startswith("stdout ")]


def remove_pod(rt, pod_id):
    rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=TIMEOUT)
    rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=TIMEOUT)


def transcript(rt, handler, name, log_dir):
    out = []
    pod_cfg, pod = run_pod(rt, handler, name, log_dir)
    out.append("pod: " + pod_state(rt, pod))
    # c1 runs until SIGTERM (then exits 7); c2 until an exec tells it to stop.
    c1 = start_container(
        rt, pod, pod_cfg, "c1",
        "echo hello from c1; echo c1 to stderr >&2; trap 'echo c1 got TERM; exit 7' TERM; "
        "while :; do sleep 0.05; done",
    )
    c2 = start_container(
        rt, pod, pod_cfg, "c2",
        "echo c2 says hi; while [ ! -e /tmp/done ]; do sleep 0.05; done; "
        # (a moment for the exec that made the file to end: the rest of the
        # container dies with its init, under runc too)
        "sleep 2; echo c2 done; exit 3",
    )
    out.append("c1: " + container_state(rt, c1))
    out.append("c2: " + container_state(rt, c2))
    out.append("exec c1: " + exec_sync(rt, c1, ["sh", "-c", "echo out; echo err >&2; exit 5"]))
    out.append("exec c1 hostname: " + exec_sync(rt, c1, ["hostname"]))
    # Each container has a rootfs of its own: c1's file is not in c2.
    out.append("exec c1 write: " + exec_sync(rt, c1, ["sh", "-c", "echo mine > /tmp/c1-file"]))
    out.append("exec c2 read: " + exec_sync(rt, c2, ["sh", "-c", "cat /tmp/c1-file 2>&1 || echo absent"]))
    out.append("exec c2 missing command: " + exec_sync(rt, c2, ["/no/such/command"]))
    # Each container has a pid namespace of its own (the CRI's default):
    # its init is 1, an exec's parent is outside it, and ps shows only it.
    c3 = start_container(rt, pod, pod_cfg, "c3", "echo init pid $$; exec sleep 1000")
    # (once the init is sleep: it is sh until its exec)
    out.append("exec c3 ps: " + exec_sync(
        rt, c3, ["sh", "-c", "until [ \"$(cat /proc/1/comm)\" = sleep ]; do sleep 0.02; done; ps -o comm"]))
    out.append("exec c3 ids: " + exec_sync(
        rt, c3, ["sh", "-c", "echo ppid $PPID; tr '\\0' ' ' < /proc/1/cmdline; echo; kill -0 1 && echo 1 is alive; "
                 "sleep 100 & p=$!; kill $p; wait $p 2>/dev/null; echo child killed $?; kill -0 99999 || echo no 99999"]))
    out.append("exec c2 stop: " + exec_sync(rt, c2, ["touch", "/tmp/done"]))
    out.append("c2: " + wait_exited(rt, c2))
    # A container that exits leaves the pod and its other containers be.
    out.append("pod after c2 exited: " + pod_state(rt, pod))
    # Removing a container leaves the pod and ends what served it (gofers,
    # the host process standing for its init).
    rt.RemoveContainer(api.RemoveContainerRequest(container_id=c2), timeout=TIMEOUT)
    deadline = time.time() + 5
    while processes_naming(c2) and time.time() < deadline:
        time.sleep(0.05)
    out.append("c2 removed: %d of its processes left" % len(processes_naming(c2)))
    out.append("exec c1 after c2 exited: " + exec_sync(rt, c1, ["echo", "still here"]))
    rt.StopContainer(api.StopContainerRequest(container_id=c1, timeout=10), timeout=TIMEOUT)
    out.append("c1 after stop: " + container_state(rt, c1))
    for c in ("c1", "c2", "c3"):
        for line in log_lines(os.path.join(log_dir, c + ".log")):
            out.append("%s.log: %s" % (c, line))
    remove_pod(rt, pod)
    pods = rt.ListPodSandbox(api.ListPodSandboxRequest(), timeout=TIMEOUT).items
    ctrs = rt.ListContainers(api.ListContainersRequest(), timeout=TIMEOUT).containers
    out.append("after removal: %d pods, %d containers" % (len(pods), len(ctrs)))
    out.append("ids: " + " ".join([pod, c1, c2, c3]))
    return out


def shared_pids(rt, handler, name, log_dir):
    """A pod whose containers share one pid namespace (shareProcessNamespace):
    the pause process is 1, and each container sees the others."""
    pod_cfg, pod = run_pod(rt, handler, name, log_dir, ns=PID_PER_POD)
    c1 = start_container(rt, pod, pod_cfg, "c1", "exec sleep 1000", PID_PER_POD)
    c2 = start_container(rt, pod, pod_cfg, "c2", "exec sleep 1001", PID_PER_POD)
    out = []
    wait = "until ps -o args | grep -q '^sleep 100[1]'; do sleep 0.02; done; "
    out.append("exec c2 pid 1: " + exec_sync(rt, c2, ["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"]))
    out.append("exec c2 ps: " + exec_sync(rt, c2, ["sh", "-c", wait + "ps -o args > /tmp/ps; sort /tmp/ps"]))
    out.append("exec c1 kills c2: " + exec_sync(
        rt, c1, ["sh", "-c", "kill $(ps -o pid,args | awk '$2 == \"sleep\" && $3 == 1001 {print $1}')"]))
    out.append("c2: " + wait_exited(rt, c2))
    out.append("c1: " + container_state(rt, c1))
    remove_pod(rt, pod)
    out.append("ids: " + " ".join([pod, c1, c2]))
    return out


def one_pod(rt, handler, name, log_dir):
    """A pod's whole life: run, one container, an exec, stop, remove."""
    pod_cfg, pod = run_pod(rt, handler, name, log_dir, hostname=name)
    cid = start_container(rt, pod, pod_cfg, "main", "echo %s; sleep 1000" % name)
    res = exec_sync(rt, cid, ["cat", "/etc/hostname"])
    remove_pod(rt, pod)
    return "%s: %s" % (name, res), [pod, cid]


def host_children(ppid):
    """The host processes whose parent is `ppid`, as (pid, argv[0])."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                stat = f.read()
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == ppid:
            out.append((int(pid), argv0))
    return out


def processes_naming(word):
    """Host processes whose command line holds `word` (a container id)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if word.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def shim_of(pod_id):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"containerd-shim-rvisor-v1") and pod_id.encode() in argv:
            return int(pid)
    return None


def sentries(rt, handler, name, log_dir):
    """A pod of two running containers, and how many sentries serve it:
    the host processes called rvisor-sentry that its shim started."""
    pod_cfg, pod = run_pod(rt, handler, name, log_dir)
    c1 = start_container(rt, pod, pod_cfg, "c1", "sleep 1000")
    c2 = start_container(rt, pod, pod_cfg, "c2", "sleep 1000")
    out = ["c1: " + container_state(rt, c1), "c2: " + container_state(rt, c2)]
    shim = shim_of(pod)
    n = len([p for p, a in host_children(shim) if a == "rvisor-sentry"]) if shim else -1
    out.append("sentries: %d" % n)
    # kubelet's view of a container's use (kubectl top): some CPU spent,
    # some memory held, by a container that has run a shell and a sleep.
    st = rt.ContainerStats(api.ContainerStatsRequest(container_id=c1), timeout=TIMEOUT).stats
    out.append("c1 stats: cpu %s, memory %s" % (
        st.cpu.usage_core_nano_seconds.value > 0, st.memory.working_set_bytes.value > 0))
    remove_pod(rt, pod)
    out.append("ids: " + " ".join([pod, c1, c2]))
    return out


def parallel(rt, handler, n, log_root):
    names = ["pod%02d" % i for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        futures = [ex.submit(one_pod, rt, handler, nm, os.path.join(log_root, nm)) for nm in names]
        results = [f.result() for f in futures]
    out = [r[0] for r in results]
    ids = [i for r in results for i in r[1]]
    pods = rt.ListPodSandbox(api.ListPodSandboxRequest(), timeout=TIMEOUT).items
    out.append("after removal: %d pods" % len(pods))
    out.append("ids: " + " ".join(ids))
    return out


def bench(rt, handler, n, log_root):
    times, ids = [], []
    for i in range(n):
        t0 = time.monotonic()
        _, got = one_pod(rt, handler, "bench%02d" % i, os.path.join(log_root, "bench%02d" % i))
        times.append(time.monotonic() - t0)
        ids += got
    times.sort()
    return ["median %.4f min %.4f max %.4f" % (times[len(times) // 2], times[0], times[-1]),
            "ids: " + " ".join(ids)]


def http(rt, handler, name, log_dir):
    """busybox httpd in a pod: fetched from its own container and from a
    second one over loopback, and by this process (on the node) at the
    pod's IP."""
    import urllib.request

    out = []
    pod_cfg, pod = run_pod(rt, handler, name, log_dir)
    web = start_container(
        rt, pod, pod_cfg, "web",
        "mkdir -p /www && echo served from the pod > /www/index.html && exec httpd -f -p 8080 -h /www",
    )
    client = start_container(rt, pod, pod_cfg, "client", "exec sleep 1000")
    fetch = ["sh", "-c", "for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/index.html && exit 0; "
             "sleep 0.1; done; exit 1"]
    out.append("web fetches itself: " + exec_sync(rt, web, fetch))
    out.append("client fetches web: " + exec_sync(rt, client, fetch))
    out.append("missing page: " + exec_sync(rt, client, ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/nope"]))
    status = rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=TIMEOUT).status
    ip = status.network.ip
    out.append("pod has an ip: %s" % bool(ip))
    result = None
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            result = urllib.request.urlopen("http://%s:8080/index.html" % ip, timeout=2).read().decode().strip()
            break
        except OSError as e:
            result = "error %s" % getattr(e, "reason", e)
            time.sleep(0.1)
    out.append("node fetch: %s" % result)
    remove_pod(rt, pod)
    out.append("ids: " + " ".join([pod, web, client]))
    return out


def main():
    sock, handler, mode, arg = sys.argv[1:5]
    log_root = os.environ.get("CRI_LOG_ROOT", "/tmp")
    rt = connect(sock)
    rt.Version(api.VersionRequest(), timeout=TIMEOUT)
    if mode == "transcript":
        out = transcript(rt, handler, arg, os.path.join(log_root, arg))
    elif mode == "shared":
        out = shared_pids(rt, handler, arg, os.path.join(log_root, arg))
    elif mode == "sentries":
        out = sentries(rt, handler, arg, os.path.join(log_root, arg))
    elif mode == "http":
        out = http(rt, handler, arg, os.path.join(log_root, arg))
    elif mode == "parallel":
        out = parallel(rt, handler, int(arg), log_root)
    elif mode == "bench":
        out = bench(rt, handler, int(arg), log_root)
    else:
        sys.exit("unknown mode " + mode)
    print("\n".join(out))


if __name__ == "__main__":
    main()
