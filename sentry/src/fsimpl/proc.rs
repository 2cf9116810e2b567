//! /proc: generated from the sentry's own state, never the host's (except
//! /proc/cpuinfo, read once before confinement).

use std::any::Any;
use std::sync::Arc;

use nix::errno::Errno;

use super::simple::{next_ino, synthetic_stat, DirFile, GeneratedFile, StaticDir, Symlink};
use crate::kernel::pidns::PidNamespace;
use crate::kernel::{self, ipc, kernel, lock};
use crate::vfs::{DirEntry, FileOps, FileStat, FileType, Inode, VfsResult};

type LookupFn = dyn Fn(&[u8]) -> VfsResult<Arc<dyn Inode>> + Send + Sync;
type ListFn = dyn Fn() -> Vec<(Vec<u8>, FileType)> + Send + Sync;

/// A directory whose entries are computed on each lookup and listing.
pub struct FnDir {
    ino: u64,
    lookup: Box<LookupFn>,
    list: Box<ListFn>,
}

impl FnDir {
    fn new(
        lookup: impl Fn(&[u8]) -> VfsResult<Arc<dyn Inode>> + Send + Sync + 'static,
        list: impl Fn() -> Vec<(Vec<u8>, FileType)> + Send + Sync + 'static,
    ) -> FnDir {
        FnDir {
            ino: next_ino(),
            lookup: Box::new(lookup),
            list: Box::new(list),
        }
    }
}

impl Inode for FnDir {
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(synthetic_stat(self.ino, libc::S_IFDIR | 0o555, 0))
    }
    fn file_type(&self) -> FileType {
        FileType::Directory
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn lookup(&self, name: &[u8]) -> VfsResult<Arc<dyn Inode>> {
        (self.lookup)(name)
    }
    fn readdir(&self) -> VfsResult<Vec<DirEntry>> {
        Ok((self.list)()
            .into_iter()
            .map(|(name, ftype)| DirEntry {
                name,
                ino: next_ino(),
                ftype,
            })
            .collect())
    }
    fn open(&self, _flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        Ok(Arc::new(DirFile { stat: self.stat()? }))
    }
    fn read_only(&self) -> bool {
        true
    }
}

fn text(f: impl Fn() -> String + Send + Sync + 'static) -> Arc<dyn Inode> {
    Arc::new(GeneratedFile::new(move || Ok(f().into_bytes())))
}

/// The reading process's pid as the procfs's namespace names it (0 for
/// a reader outside it).
fn current_pid(ns: Option<&Arc<PidNamespace>>) -> i32 {
    match kernel::current() {
        Some(p) => lock(&kernel().tree).pid_in(ns, p.pid),
        None => 1,
    }
}

fn meminfo() -> String {
    let si = nix::sys::sysinfo::sysinfo();
    let (total, free) = si
        .map(|s| (s.ram_total() / 1024, s.ram_unused() / 1024))
        .unwrap_or((0, 0));
    format!(
        "MemTotal:       {total:>8} kB\nMemFree:        {free:>8} kB\nMemAvailable:   {free:>8} kB\nBuffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
    )
}

/// One line of /proc/mounts: where, what filesystem, read-only or not.
struct MountLine {
    path: String,
    fstype: &'static str,
    read_only: bool,
}

/// The reader's mount namespace (its container's), the root first, in
/// mount-point order.
fn mount_lines() -> Vec<MountLine> {
    let vfs = match crate::kernel::current() {
        Some(p) => lock(&p.fs).root.ns().clone(),
        None => kernel().vfs.clone(),
    };
    let mut lines = vec![MountLine {
        path: "/".into(),
        fstype: "rootfs",
        read_only: vfs.root().inode().read_only(),
    }];
    for p in vfs.mount_points() {
        let Some(fs) = vfs.mount_at(&p) else {
            continue;
        };
        let path = String::from_utf8_lossy(&p).into_owned();
        let (fstype, read_only) = if fs.as_any().is::<super::gofer::GoferInode>() {
            // A bind mount served by a gofer, named as gVisor names them.
            ("9p", fs.read_only())
        } else {
            let magic = fs.statfs().map(|st| st.fs_type);
            let fstype = if magic == Some(super::cgroupfs::CGROUP2_SUPER_MAGIC) {
                "cgroup2"
            } else {
                match path.as_str() {
                    "/proc" => "proc",
                    "/sys" => "sysfs",
                    "/dev/pts" => "devpts",
                    "/dev/mqueue" => "mqueue",
                    _ => "tmpfs",
                }
            };
            // A read-only remount or view made inside the sandbox.
            (fstype, fs.as_any().is::<super::readonly::ReadOnlyView>())
        };
        lines.push(MountLine {
            path,
            fstype,
            read_only,
        });
    }
    lines
}

fn rw(read_only: bool) -> &'static str {
    if read_only {
        "ro"
    } else {
        "rw"
    }
}

fn mounts() -> String {
    mount_lines()
        .iter()
        .map(|m| format!("none {} {} {} 0 0\n", m.path, m.fstype, rw(m.read_only)))
        .collect()
}

/// /proc/PID/mountinfo: the same mounts with ids, each naming the mount
/// it sits on (the nearest enclosing mount point).
fn mountinfo() -> String {
    let lines = mount_lines();
    let inside = |path: &str, dir: &str| {
        dir == "/" || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
    };
    let mut out = String::new();
    for (i, m) in lines.iter().enumerate() {
        let id = i + 1;
        let parent = lines[..i]
            .iter()
            .enumerate()
            .filter(|(_, p)| p.path != m.path && inside(&m.path, &p.path))
            .max_by_key(|(_, p)| p.path.len())
            .map_or(id, |(j, _)| j + 1);
        out.push_str(&format!(
            "{id} {parent} 0:{id} / {} {},relatime - {} none {}\n",
            m.path,
            rw(m.read_only),
            m.fstype,
            rw(m.read_only)
        ));
    }
    out
}

/// The process's state letter, Z for a zombie.
fn state_of(proc: &crate::kernel::Process) -> char {
    let zombie = lock(&kernel().tree)
        .procs
        .get(&proc.pid)
        .is_some_and(|e| e.zombie.is_some());
    if zombie {
        'Z'
    } else {
        proc.state_letter()
    }
}

/// The process behind a /proc/PID entry that shows its insides, if the
/// caller may see them.
fn inspected(
    p: &std::sync::Weak<crate::kernel::Process>,
) -> VfsResult<Arc<crate::kernel::Process>> {
    let proc = p.upgrade().ok_or(Errno::ESRCH)?;
    if !crate::kernel::may_inspect(&proc) {
        return Err(Errno::EACCES);
    }
    Ok(proc)
}

/// /proc/PID for the task whose sandbox-wide id is `pid`, its ids shown
/// as namespace `ns` (the procfs's) names them.
fn pid_dir(pid: i32, ns: Option<Arc<PidNamespace>>) -> VfsResult<Arc<dyn Inode>> {
    // A thread's id names its process's directory too (not listed, but
    // reachable, as on Linux).
    // Zombies keep their directory (state Z) until reaped.
    let proc = kernel()
        .process_or_zombie(pid)
        .map(|(p, _)| p)
        .or_else(|| {
            lock(&kernel().tree)
                .threads
                .get(&pid)
                .map(|(p, _)| p.clone())
        })
        .ok_or(Errno::ENOENT)?;
    let p = Arc::downgrade(&proc);
    let exe = {
        let p = p.clone();
        Symlink::dynamic(move || Ok(lock(&inspected(&p)?.exe).path.clone())).magic()
    };
    let cwd = {
        let p = p.clone();
        Symlink::dynamic(move || Ok(lock(&inspected(&p)?.fs).cwd.path())).magic()
    };
    let cmdline = {
        let p = p.clone();
        GeneratedFile::new(move || {
            let proc = p.upgrade().ok_or(Errno::ESRCH)?;
            let mut out = Vec::new();
            for a in lock(&proc.exe).argv.iter() {
                out.extend_from_slice(a);
                out.push(0);
            }
            Ok(out)
        })
    };
    let comm = {
        let p = p.clone();
        GeneratedFile::new(move || {
            let mut c = lock(&p.upgrade().ok_or(Errno::ESRCH)?.exe).comm.clone();
            c.push(b'\n');
            Ok(c)
        })
    };
    let status = {
        let p = p.clone();
        let ns = ns.clone();
        GeneratedFile::new(move || {
            let proc = p.upgrade().ok_or(Errno::ESRCH)?;
            let name = String::from_utf8_lossy(&lock(&proc.exe).comm).into_owned();
            let (pid, ppid) = {
                let tree = lock(&kernel().tree);
                let ppid = tree.procs.get(&proc.pid).map_or(0, |e| e.ppid);
                (
                    tree.pid_in(ns.as_ref(), proc.pid),
                    tree.pid_in(ns.as_ref(), ppid),
                )
            };
            let c = lock(&proc.creds).clone();
            let threads = lock(&proc.threads).iter().filter(|t| !t.is_gone()).count();
            let groups: Vec<String> = c.groups.iter().map(|g| g.to_string()).collect();
            let caps = format!(
                "CapInh:\t{:016x}\nCapPrm:\t{:016x}\nCapEff:\t{:016x}\nCapBnd:\t{:016x}\nCapAmb:\t{:016x}\n",
                c.caps.inheritable, c.caps.permitted, c.caps.effective, c.caps.bounding, c.caps.ambient
            );
            Ok(format!(
                "Name:\t{name}\nUmask:\t{umask:04o}\nState:\t{state}\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{ppid}\nUid:\t{r}\t{e}\t{s}\t{e}\nGid:\t{rg}\t{eg}\t{sg}\t{eg}\nGroups:\t{groups}\nThreads:\t{threads}\n{caps}NoNewPrivs:\t{nnp}\n",
                nnp = u8::from(c.caps.no_new_privs),
                umask = lock(&proc.fs).umask,
                groups = groups.join(" "),
                r = c.ruid,
                e = c.euid,
                s = c.suid,
                rg = c.rgid,
                eg = c.egid,
                sg = c.sgid,
                threads = threads,
                state = match state_of(&proc) {
                    'T' => "T (stopped)",
                    'S' => "S (sleeping)",
                    'Z' => "Z (zombie)",
                    _ => "R (running)",
                }
            )
            .into_bytes())
        })
    };
    let maps = {
        let p = p.clone();
        GeneratedFile::new(move || {
            let proc = inspected(&p)?;
            let text = lock(&proc.mm()).vmas.render();
            Ok(text.into_bytes())
        })
    };
    let stat = {
        let p = p.clone();
        let ns = ns.clone();
        GeneratedFile::new(move || {
            let proc = p.upgrade().ok_or(Errno::ESRCH)?;
            let comm = String::from_utf8_lossy(&lock(&proc.exe).comm).into_owned();
            let (pid, ppid, pgid, sid) = {
                let tree = lock(&kernel().tree);
                let (ppid, pgid, sid) = tree
                    .procs
                    .get(&proc.pid)
                    .map(|e| (e.ppid, e.pgid, e.sid))
                    .unwrap_or((0, 0, 0));
                let ns = ns.as_ref();
                (
                    tree.pid_in(ns, proc.pid),
                    tree.pid_in(ns, ppid),
                    crate::kernel::pidns::number_in(ns, pgid),
                    crate::kernel::pidns::number_in(ns, sid),
                )
            };
            let threads = lock(&proc.threads).iter().filter(|t| !t.is_gone()).count();
            // Start time in clock ticks since the sandbox booted.
            let start = proc
                .start
                .saturating_duration_since(kernel().boot)
                .as_millis()
                / 10;
            let mut fields = vec![
                format!("{pid}"),
                format!("({comm})"),
                state_of(&proc).to_string(),
                ppid.to_string(),
                pgid.to_string(),
                sid.to_string(),
                "0".into(),
                "-1".into(),
                "4194304".into(),
            ];
            // minflt cminflt majflt cmajflt, then utime stime (CPU time of
            // the stub, in clock ticks) and the children's.
            fields.extend(std::iter::repeat_n("0".to_string(), 4));
            let ticks = stub_cpu_ticks(&proc);
            fields.extend([ticks.to_string(), "0".into(), "0".into(), "0".into()]);
            fields.extend([
                "20".into(),
                "0".into(),
                threads.to_string(),
                "0".into(),
                start.to_string(),
            ]);
            fields.extend(std::iter::repeat_n("0".to_string(), 52 - fields.len()));
            Ok(format!("{}\n", fields.join(" ")).into_bytes())
        })
    };
    let fd_dir = {
        let p1 = p.clone();
        let p2 = p.clone();
        FnDir::new(
            move |name| {
                let proc = p1.upgrade().ok_or(Errno::ENOENT)?;
                if !crate::kernel::may_inspect(&proc) {
                    return Err(Errno::EACCES);
                }
                let fd: i32 = std::str::from_utf8(name)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(Errno::ENOENT)?;
                let file = lock(&proc.fds).get(fd).map_err(|_| Errno::ENOENT)?;
                let link = file.proc_link();
                let at = file.location.clone();
                Ok(
                    Arc::new(Symlink::dynamic(move || Ok(link.clone())).jumping(move || at.clone()))
                        as Arc<dyn Inode>,
                )
            },
            move || {
                p2.upgrade()
                    .map(|proc| {
                        lock(&proc.fds)
                            .fds()
                            .into_iter()
                            .map(|fd| (fd.to_string().into_bytes(), FileType::Symlink))
                            .collect()
                    })
                    .unwrap_or_default()
            },
        )
    };
    Ok(Arc::new(
        StaticDir::new(0o555)
            .with("exe", Arc::new(exe))
            .with("cwd", Arc::new(cwd))
            .with("root", Arc::new(Symlink::fixed("/").magic()))
            .with("cmdline", Arc::new(cmdline))
            .with("comm", Arc::new(comm))
            .with("status", Arc::new(status))
            .with("stat", Arc::new(stat))
            .with("fd", Arc::new(fd_dir))
            .with("mounts", text(mounts))
            .with("mountinfo", text(mountinfo))
            .with("cgroup", text(|| "0::/\n".into()))
            .with("maps", Arc::new(maps)),
    ))
}

/// CPU time the process's stub has used, in 100 Hz clock ticks.
fn stub_cpu_ticks(proc: &crate::kernel::Process) -> u64 {
    proc.cpu_ns() / 10_000_000
}

/// Builds a /proc root showing the processes of pid namespace `ns` (None:
/// the sandbox's, which holds every process).
pub fn new_procfs(ns: Option<Arc<PidNamespace>>) -> Arc<dyn Inode> {
    let inotify_limits = Arc::new(
        StaticDir::new(0o555)
            .with("max_queued_events", text(|| "16384\n".into()))
            .with("max_user_instances", text(|| "128\n".into()))
            .with("max_user_watches", text(|| "1048576\n".into())),
    );
    let sys = Arc::new(
        StaticDir::new(0o555)
            .with(
                "fs",
                Arc::new(
                    StaticDir::new(0o555)
                        .with("inotify", inotify_limits)
                        .with(
                            "pipe-max-size",
                            text(|| format!("{}\n", crate::fsimpl::pipe::PIPE_MAX_SIZE)),
                        )
                        .with("nr_open", text(|| "1048576\n".into())),
                ),
            )
            .with(
                "kernel",
                Arc::new(
                    StaticDir::new(0o555)
                        .with(
                            "hostname",
                            text(|| format!("{}\n", lock(&kernel().hostname))),
                        )
                        .with("osrelease", text(|| format!("{}\n", kernel().release)))
                        .with("ostype", text(|| "Linux\n".into()))
                        .with("pid_max", text(|| "4194304\n".into()))
                        .with("ngroups_max", text(|| "65536\n".into()))
                        // System V IPC limits (read-only here).
                        .with("msgmax", text(|| format!("{}\n", ipc::MSGMAX)))
                        .with("msgmnb", text(|| format!("{}\n", ipc::MSGMNB)))
                        .with("msgmni", text(|| format!("{}\n", ipc::MSGMNI)))
                        .with(
                            "sem",
                            text(|| {
                                format!(
                                    "{}\t{}\t{}\t{}\n",
                                    ipc::SEMMSL,
                                    1024000000,
                                    ipc::SEMOPM,
                                    ipc::SEMMNI
                                )
                            }),
                        )
                        .with("shmmax", text(|| format!("{}\n", ipc::SHMMAX)))
                        .with("shmall", text(|| format!("{}\n", ipc::SHMALL)))
                        .with("shmmni", text(|| format!("{}\n", ipc::SHMMNI))),
                ),
            ),
    );
    let mut net_dir = StaticDir::new(0o555);
    for name in crate::socket::procnet::FILES {
        net_dir = net_dir.with(name, text(move || crate::socket::procnet::contents(name)));
    }
    let net: Arc<dyn Inode> = Arc::new(net_dir);
    let sysvipc = Arc::new(
        StaticDir::new(0o555)
            .with("shm", text(ipc::proc_shm))
            .with("msg", text(ipc::proc_msg))
            .with("sem", text(ipc::proc_sem)),
    );
    let fixed: Vec<(&'static str, Arc<dyn Inode>)> = vec![
        (
            "self",
            Arc::new(Symlink::dynamic({
                let ns = ns.clone();
                move || Ok(current_pid(ns.as_ref()).to_string().into_bytes())
            })),
        ),
        (
            "thread-self",
            Arc::new(Symlink::dynamic({
                let ns = ns.clone();
                move || Ok(current_pid(ns.as_ref()).to_string().into_bytes())
            })),
        ),
        ("meminfo", text(meminfo)),
        ("cpuinfo", text(|| kernel().cpuinfo.clone())),
        (
            "uptime",
            text(|| {
                let up = kernel().boot.elapsed().as_secs_f64();
                format!("{up:.2} {up:.2}\n")
            }),
        ),
        (
            "version",
            text(|| format!("Linux version {} (rvisor)\n", kernel().release)),
        ),
        ("loadavg", text(|| "0.00 0.00 0.00 1/1 1\n".into())),
        ("mounts", text(mounts)),
        (
            "cgroups",
            text(|| {
                "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t0\t1\t1\nmemory\t0\t1\t1\npids\t0\t1\t1\n"
                    .into()
            }),
        ),
        (
            "filesystems",
            text(|| "nodev\tproc\nnodev\ttmpfs\nnodev\tsysfs\n".into()),
        ),
        ("sys", sys),
        ("sysvipc", sysvipc),
        ("net", net),
    ];
    let names: Vec<(Vec<u8>, FileType)> = fixed
        .iter()
        .map(|(n, i)| (n.as_bytes().to_vec(), i.file_type()))
        .collect();
    let table: std::collections::HashMap<Vec<u8>, Arc<dyn Inode>> = fixed
        .into_iter()
        .map(|(n, i)| (n.as_bytes().to_vec(), i))
        .collect();
    let lookup_ns = ns.clone();
    Arc::new(FnDir::new(
        move |name| {
            if let Some(i) = table.get(name) {
                return Ok(i.clone());
            }
            let local: i32 = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Errno::ENOENT)?;
            let pid = lock(&kernel().tree)
                .pid_from(lookup_ns.as_ref(), local)
                .ok_or(Errno::ENOENT)?;
            pid_dir(pid, lookup_ns.clone())
        },
        move || {
            let mut v = names.clone();
            let pids: Vec<i32> = {
                let tree = lock(&kernel().tree);
                let mut pids: Vec<i32> = tree
                    .procs
                    .iter()
                    .filter(|(_, e)| e.zombie.is_none())
                    .map(|(p, _)| tree.pid_in(ns.as_ref(), *p))
                    .filter(|p| *p > 0)
                    .collect();
                pids.sort_unstable();
                pids
            };
            v.extend(
                pids.into_iter()
                    .map(|p| (p.to_string().into_bytes(), FileType::Directory)),
            );
            v
        },
    ))
}
