//! Processes, the process tree, signals and credentials (gVisor's
//! `pkg/sentry/kernel`). One sentry OS thread runs each application task
//! (see `task.rs`); shared state lives here behind locks.

pub mod epoll;
pub mod fd_table;
pub mod ipc;
pub mod pidns;
pub mod seccomp;
pub mod sigframe;
pub mod signals;
pub mod stub_control;
pub mod task;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use fd_table::FdTable;
use signals::{default_action, sig_bit, DefaultAction, SignalState, SIG_IGN};

use crate::platform::stub_image::StubImage;
use crate::vfs::{Location, Vfs};

/// Host signal used to interrupt a sentry thread blocked in a host call
/// (a pipe read, a sleep) when its process must die.
pub const INTERRUPT_SIGNAL: i32 = crate::platform::INTERRUPT_SIGNAL;

/// Emulated credentials (the spec's user).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub ruid: u32,
    pub euid: u32,
    pub suid: u32,
    pub rgid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub groups: Vec<u32>,
    pub caps: Capabilities,
}

/// Capability numbers (linux/capability.h) the sentry checks.
pub mod cap {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    pub const DAC_READ_SEARCH: u32 = 2;
    pub const FOWNER: u32 = 3;
    pub const FSETID: u32 = 4;
    pub const KILL: u32 = 5;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const NET_BIND_SERVICE: u32 = 10;
    pub const NET_ADMIN: u32 = 12;
    pub const NET_RAW: u32 = 13;
    pub const IPC_LOCK: u32 = 14;
    pub const IPC_OWNER: u32 = 15;
    pub const SYS_CHROOT: u32 = 18;
    pub const SYS_PTRACE: u32 = 19;
    pub const SYS_ADMIN: u32 = 21;
    pub const SYS_NICE: u32 = 23;
    pub const SYS_RESOURCE: u32 = 24;
    pub const MKNOD: u32 = 27;
}

impl Credentials {
    /// Whether the effective set holds `cap`: Linux's capable(), the one
    /// privilege test (uid 0 alone grants nothing once a container's spec
    /// drops capabilities).
    pub fn has_cap(&self, cap: u32) -> bool {
        cap < 64 && self.caps.effective & (1u64 << cap) != 0
    }
}

/// Linux's default timer slack.
pub const DEFAULT_TIMER_SLACK_NS: u64 = 50_000;

/// Highest capability number Linux 6.x knows (CAP_CHECKPOINT_RESTORE).
pub const CAP_LAST_CAP: u32 = 40;
pub const ALL_CAPS: u64 = (1 << (CAP_LAST_CAP + 1)) - 1;

/// A process's capability sets, kept with Linux's transition rules
/// (capset, set*uid, execve); permission checks ask
/// [`Credentials::has_cap`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Capabilities {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
    /// PR_SET_KEEPCAPS.
    pub keep_caps: bool,
    /// PR_SET_NO_NEW_PRIVS (kept across fork and execve).
    pub no_new_privs: bool,
}

impl Capabilities {
    /// What a process running as `uid` starts with.
    pub fn for_uid(uid: u32) -> Capabilities {
        let all = if uid == 0 { ALL_CAPS } else { 0 };
        Capabilities {
            effective: all,
            permitted: all,
            inheritable: 0,
            bounding: ALL_CAPS,
            ambient: 0,
            keep_caps: false,
            no_new_privs: false,
        }
    }

    /// Linux's cap_emulate_setxuid: leaving uid 0 drops capabilities.
    pub fn after_setuid(&mut self, old: [u32; 3], new: [u32; 3]) {
        let had_root = old.contains(&0);
        let has_root = new.contains(&0);
        if had_root && !has_root && !self.keep_caps {
            self.permitted = 0;
            self.effective = 0;
            self.ambient = 0;
        }
        if old[1] == 0 && new[1] != 0 {
            self.effective = 0;
        }
        if old[1] != 0 && new[1] == 0 {
            self.effective = self.permitted;
        }
    }

    /// execve: root gets its bounding set; others keep only ambient.
    pub fn after_exec(&mut self, euid: u32, ruid: u32) {
        if euid == 0 || ruid == 0 {
            self.permitted = (self.inheritable | self.bounding) & self.bounding;
            self.effective = self.permitted;
            self.ambient = 0;
        } else {
            self.permitted = self.ambient;
            self.effective = self.ambient;
        }
        self.keep_caps = false;
    }
}

/// Working directory, root and umask (CLONE_FS state).
#[derive(Clone)]
pub struct FsContext {
    pub root: Location,
    pub cwd: Location,
    pub umask: u32,
}

/// What /proc shows about a process's program.
#[derive(Clone, Default)]
pub struct ExeInfo {
    pub path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub comm: Vec<u8>,
    /// The program file, busy while this image runs (ETXTBSY to writers).
    pub running: Option<Arc<crate::vfs::text::Running>>,
}

/// Host identities of a process's stub and the sentry thread driving it.
#[derive(Clone, Copy, Default)]
pub struct HostIds {
    pub stub_pid: i32,
    pub tracer_tid: i32,
}

pub const RLIM_NLIMITS: usize = 16;

/// An interval timer: when it next fires and how often after that. The
/// generation changes at every re-arm, so a stale timer thread stops.
#[derive(Clone, Copy, Debug, Default)]
pub struct ITimer {
    pub deadline: Option<Instant>,
    pub interval: std::time::Duration,
    pub generation: u64,
}

/// One POSIX timer (see syscalls/timer.rs).
pub struct PosixTimer {
    /// Host clock the timer runs on (CPU clocks are the stub's).
    pub clock: libc::clockid_t,
    pub notify: i32,
    pub signo: i32,
    pub value: u64,
    pub tid: i32,
    /// Next expiry on `clock`; None while disarmed.
    pub deadline: Option<std::time::Duration>,
    pub interval: std::time::Duration,
    /// Expiries not signalled yet because the signal was still pending.
    pub overrun_pending: u64,
    /// What timer_getoverrun reports: overruns of the last signal.
    pub overrun_last: u64,
    /// Bumped by every timer_settime so old timer threads quit.
    pub generation: u64,
}

#[derive(Default)]
pub struct PosixTimers {
    pub next_id: i32,
    pub timers: BTreeMap<i32, PosixTimer>,
}

/// Signal state private to one thread.
#[derive(Clone)]
pub struct ThreadSignals {
    pub mask: u64,
    /// Signals sent to this thread (tkill, tgkill, faults).
    pub pending: u64,
    pub info: Vec<signals::SigInfo>,
    /// (ss_sp, ss_flags, ss_size).
    pub altstack: (u64, i32, u64),
}

impl Default for ThreadSignals {
    fn default() -> Self {
        ThreadSignals {
            mask: 0,
            pending: 0,
            info: vec![[0u8; 128]; signals::NSIG],
            altstack: (0, libc::SS_DISABLE, 0),
        }
    }
}

/// One application thread, as other threads see it (its `Task` is owned by
/// its sentry thread).
pub struct Thread {
    pub tid: i32,
    pub sig: Mutex<ThreadSignals>,
    /// The host thread of the stub running it, and the sentry thread tracing it.
    pub host: Mutex<HostIds>,
    /// Exited or exiting: no longer takes signals or counts as live.
    pub gone: std::sync::atomic::AtomicBool,
    /// Torn down by another thread's execve: leave without process exit.
    pub quiet: std::sync::atomic::AtomicBool,
    /// Inside a syscall in the sentry (what /proc shows as sleeping).
    pub in_syscall: std::sync::atomic::AtomicBool,
}

impl Thread {
    pub fn new(tid: i32, sig: ThreadSignals) -> Arc<Thread> {
        Arc::new(Thread {
            tid,
            sig: Mutex::new(sig),
            host: Mutex::new(HostIds::default()),
            gone: Default::default(),
            quiet: Default::default(),
            in_syscall: Default::default(),
        })
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }
}

/// A thread group. Every process has exactly one task in this version.
pub struct Process {
    pub pid: i32,
    /// The container of the sandbox this process belongs to (0: the first
    /// one, the pod's sandbox container); inherited across fork.
    pub container: u32,
    /// The init of its container: like a pid namespace's init, it only
    /// gets the signals it handles, and its container's orphans go to it.
    pub container_init: bool,
    /// Its container's pid namespace, when that container has one of its
    /// own (None: the sandbox's numbering); inherited across fork.
    pub pidns: Option<Arc<pidns::PidNamespace>>,
    pub fds: Mutex<FdTable>,
    pub fs: Mutex<FsContext>,
    pub sig: Mutex<SignalState>,
    pub creds: Mutex<Credentials>,
    pub rlimits: Mutex<[libc::rlimit64; RLIM_NLIMITS]>,
    pub exe: Mutex<ExeInfo>,
    /// Live threads; the first is the thread-group leader.
    pub threads: Mutex<Vec<Arc<Thread>>>,
    /// Host pid (thread-group id) of the stub process running the threads.
    pub stub_tgid: AtomicI32,
    /// A vfork child still running on a thread of its parent's stub (the
    /// memory is the parent's until it execs or exits): the host process
    /// at `stub_tgid` is not its own to kill.
    pub vm_guest: std::sync::atomic::AtomicBool,
    /// The address space's bookkeeping (mappings, program break), shared
    /// by its threads, and by a vfork child while it runs on this memory.
    address_space: Mutex<Arc<Mutex<crate::mm::MemoryManager>>>,
    /// The stub process's control thread on the fast syscall path (see
    /// `stub_control`): forks and new threads come from it.
    control: Mutex<Option<Arc<stub_control::StubControl>>>,
    /// exit_group's wait status, once a thread called it.
    pub group_exit: Mutex<Option<i32>>,
    /// Stopped by a job-control signal until SIGCONT.
    pub job_stopped: (Mutex<bool>, Condvar),
    /// ITIMER_VIRTUAL and ITIMER_PROF as (expiry, interval) in ns of the
    /// process's CPU time; 0 expiry = disarmed.
    pub cpu_timers: Mutex<[(u64, u64); 2]>,
    /// Seconds of CPU time at which RLIMIT_CPU last sent SIGXCPU.
    pub cpu_limit_sent: AtomicU64,
    /// ITIMER_REAL (alarm, setitimer): deadline, interval, generation.
    pub itimer_real: (Mutex<ITimer>, Condvar),
    /// Set when the process must die with this signal.
    pub fatal_signal: AtomicI32,
    /// vfork: set when the child execs or exits.
    pub vfork_done: (Mutex<bool>, Condvar),
    pub start: Instant,
    /// Usage of the process's earlier images (before execve) and, once it
    /// exited, of its whole life.
    pub rusage_self: Mutex<Rusage>,
    /// Usage of reaped children (RUSAGE_CHILDREN).
    pub rusage_children: Mutex<Rusage>,
    /// POSIX timers (timer_create), and the condition variable their
    /// threads sleep on.
    pub posix_timers: (Mutex<PosixTimers>, Condvar),
    /// The process's signalfds, refreshed when a signal is queued.
    pub signalfds: Mutex<Vec<std::sync::Weak<crate::syscalls::SignalFd>>>,
    /// PR_SET_PDEATHSIG: the signal this process gets when its parent dies.
    pub pdeathsig: AtomicI32,
    /// PR_SET_CHILD_SUBREAPER: orphaned descendants are reparented here
    /// instead of to init.
    pub child_subreaper: AtomicBool,
    /// PR_SET_TIMERSLACK, in nanoseconds (recorded; the host decides).
    pub timer_slack_ns: AtomicU64,
    /// Nice value (-20..=19), emulated: it only shows in getpriority and
    /// /proc; the host schedules all stubs alike.
    pub nice: AtomicI32,
}

/// Resource usage in the units of struct rusage.
#[derive(Clone, Copy, Default, Debug)]
pub struct Rusage {
    pub utime_us: i64,
    pub stime_us: i64,
    pub maxrss_kb: i64,
    pub minflt: i64,
    pub majflt: i64,
    pub nvcsw: i64,
    pub nivcsw: i64,
}

impl Rusage {
    pub fn from_host(r: &libc::rusage) -> Rusage {
        Rusage {
            utime_us: r.ru_utime.tv_sec * 1_000_000 + r.ru_utime.tv_usec,
            stime_us: r.ru_stime.tv_sec * 1_000_000 + r.ru_stime.tv_usec,
            maxrss_kb: r.ru_maxrss,
            minflt: r.ru_minflt,
            majflt: r.ru_majflt,
            nvcsw: r.ru_nvcsw,
            nivcsw: r.ru_nivcsw,
        }
    }

    pub fn add(&mut self, o: &Rusage) {
        self.utime_us += o.utime_us;
        self.stime_us += o.stime_us;
        self.maxrss_kb = self.maxrss_kb.max(o.maxrss_kb);
        self.minflt += o.minflt;
        self.majflt += o.majflt;
        self.nvcsw += o.nvcsw;
        self.nivcsw += o.nivcsw;
    }

    pub fn to_host(self) -> libc::rusage {
        // SAFETY: rusage is plain old data; all-zero is valid.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        r.ru_utime = libc::timeval {
            tv_sec: self.utime_us / 1_000_000,
            tv_usec: self.utime_us % 1_000_000,
        };
        r.ru_stime = libc::timeval {
            tv_sec: self.stime_us / 1_000_000,
            tv_usec: self.stime_us % 1_000_000,
        };
        r.ru_maxrss = self.maxrss_kb;
        r.ru_minflt = self.minflt;
        r.ru_majflt = self.majflt;
        r.ru_nvcsw = self.nvcsw;
        r.ru_nivcsw = self.nivcsw;
        r
    }
}

/// What a new process starts with; everything else starts empty.
pub struct ProcessParts {
    pub pid: i32,
    pub container: u32,
    pub container_init: bool,
    pub pidns: Option<Arc<pidns::PidNamespace>>,
    pub fds: FdTable,
    pub fs: FsContext,
    pub sig: SignalState,
    pub creds: Credentials,
    pub rlimits: [libc::rlimit64; RLIM_NLIMITS],
    pub exe: ExeInfo,
    pub thread: Arc<Thread>,
    pub stub_tgid: i32,
    pub mm: crate::mm::MemoryManager,
}

impl Process {
    /// The address space's bookkeeping; lock it for the shortest time.
    pub fn mm(&self) -> Arc<Mutex<crate::mm::MemoryManager>> {
        lock(&self.address_space).clone()
    }

    /// The stub process's control thread, if it has one.
    pub fn control(&self) -> Option<Arc<stub_control::StubControl>> {
        lock(&self.control).clone()
    }

    /// Sets (execve, fork) or drops (exit) the control thread handle.
    pub fn set_control(&self, c: Option<Arc<stub_control::StubControl>>) {
        *lock(&self.control) = c;
    }

    /// Gives the process a new address space (execve) or another's (a
    /// vfork child borrowing its parent's).
    pub fn set_mm(&self, mm: Arc<Mutex<crate::mm::MemoryManager>>) {
        *lock(&self.address_space) = mm;
    }

    pub fn new(p: ProcessParts) -> Arc<Process> {
        Arc::new(Process {
            pid: p.pid,
            container: p.container,
            container_init: p.container_init,
            pidns: p.pidns,
            fds: Mutex::new(p.fds),
            fs: Mutex::new(p.fs),
            sig: Mutex::new(p.sig),
            creds: Mutex::new(p.creds),
            rlimits: Mutex::new(p.rlimits),
            exe: Mutex::new(p.exe),
            threads: Mutex::new(vec![p.thread]),
            stub_tgid: AtomicI32::new(p.stub_tgid),
            vm_guest: Default::default(),
            address_space: Mutex::new(Arc::new(Mutex::new(p.mm))),
            control: Mutex::new(None),
            group_exit: Mutex::new(None),
            cpu_timers: Default::default(),
            cpu_limit_sent: Default::default(),
            job_stopped: Default::default(),
            itimer_real: Default::default(),
            fatal_signal: Default::default(),
            vfork_done: (Mutex::new(false), Condvar::new()),
            start: Instant::now(),
            rusage_self: Default::default(),
            rusage_children: Default::default(),
            nice: Default::default(),
            signalfds: Default::default(),
            pdeathsig: Default::default(),
            child_subreaper: Default::default(),
            timer_slack_ns: AtomicU64::new(DEFAULT_TIMER_SLACK_NS),
            posix_timers: Default::default(),
        })
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it
/// (the sentry keeps serving the other tasks).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Process {
    /// CPU time the process's stub has used (all its threads), in ns.
    pub fn cpu_ns(&self) -> u64 {
        let tgid = self.stub_tgid.load(Ordering::SeqCst);
        if tgid <= 0 {
            return 0;
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: reads the CPU clock of our own stub process ((~pid << 3)
        // | 2 is CPUCLOCK_SCHED of a process) into a timespec we own.
        if unsafe { libc::clock_gettime(((!tgid) << 3) | 2, &mut ts) } < 0 {
            return 0;
        }
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    /// The state letter /proc shows: T stopped, S when every thread is in a
    /// syscall (blocked, as far as the application can tell), R otherwise.
    pub fn state_letter(&self) -> char {
        if *lock(&self.job_stopped.0) {
            return 'T';
        }
        let threads = lock(&self.threads);
        let live: Vec<_> = threads.iter().filter(|t| !t.is_gone()).collect();
        if !live.is_empty() && live.iter().all(|t| t.in_syscall.load(Ordering::Relaxed)) {
            'S'
        } else {
            'R'
        }
    }

    pub fn rlimit(&self, res: u32) -> libc::rlimit64 {
        lock(&self.rlimits)
            .get(res as usize)
            .copied()
            .unwrap_or(libc::rlimit64 {
                rlim_cur: libc::RLIM64_INFINITY,
                rlim_max: libc::RLIM64_INFINITY,
            })
    }

    pub fn nofile_limit(&self) -> u64 {
        self.rlimit(libc::RLIMIT_NOFILE).rlim_cur
    }

    pub fn signal_vfork_parent(&self) {
        let (m, cv) = &self.vfork_done;
        *lock(m) = true;
        cv.notify_all();
    }
}

/// One process's place in the tree.
pub struct ProcEntry {
    pub proc: Arc<Process>,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub children: BTreeSet<i32>,
    /// Wait status once the process has exited (a zombie).
    pub zombie: Option<i32>,
    /// A job-control stop not yet reported to a WUNTRACED wait: the signal.
    pub stop_report: Option<i32>,
    /// A continue not yet reported to a WCONTINUED wait.
    pub continue_report: bool,
}

#[derive(Default)]
pub struct ProcessTree {
    pub procs: BTreeMap<i32, ProcEntry>,
    /// Non-leader threads: tid -> (process, thread).
    pub threads: BTreeMap<i32, (Arc<Process>, Arc<Thread>)>,
    /// Processes started from outside (`rvisor exec`) have no parent in
    /// the sandbox; their wait status is kept here until the control
    /// socket's Wait collects it.
    pub exec_exits: BTreeMap<i32, Option<i32>>,
    /// The init of each container that joined the sandbox after the first
    /// (whose init is pid 1): where its orphans go.
    pub container_inits: BTreeMap<u32, i32>,
    next_pid: i32,
}

impl ProcessTree {
    pub fn alloc_pid(&mut self) -> i32 {
        loop {
            self.next_pid = if self.next_pid >= 4_194_304 || self.next_pid < 1 {
                1
            } else {
                self.next_pid + 1
            };
            if !self.procs.contains_key(&self.next_pid)
                && !self.threads.contains_key(&self.next_pid)
                && !self.exec_exits.contains_key(&self.next_pid)
            {
                return self.next_pid;
            }
        }
    }
}

pub struct KernelConfig {
    pub hostname: String,
    pub network: crate::NetworkMode,
    /// net.ipv4.ping_group_range (see `crate::NetSysctls`).
    pub ping_group_range: (u32, u32),
    pub strace: Option<Box<dyn Write + Send>>,
}

pub struct Kernel {
    /// The first container's mount namespace (others hang off their
    /// processes' root locations).
    pub vfs: Arc<Vfs>,
    pub hostname: Mutex<String>,
    /// What internet sockets are (`--network`).
    pub network: crate::NetworkMode,
    /// net.ipv4.ping_group_range: the groups that may open ping sockets.
    pub ping_group_range: (u32, u32),
    pub release: String,
    pub stub_image: StubImage,
    pub tree: Mutex<ProcessTree>,
    /// Signalled whenever a process exits (wait4) or the tree changes.
    pub tree_cv: Condvar,
    pub strace: Option<Mutex<Box<dyn Write + Send>>>,
    logged_unimplemented: Mutex<HashSet<u64>>,
    pub cpu_count: usize,
    /// The foreground process group each host terminal given to the
    /// sandbox has (by the terminal's device number): see
    /// [`Kernel::host_tty_foreground`].
    pub host_tty_pgrps: Mutex<HashMap<u64, i32>>,
    next_cpu: AtomicUsize,
    pub boot: Instant,
    /// Host text served as /proc/cpuinfo (read before confinement).
    pub cpuinfo: String,
}

static KERNEL: OnceLock<Arc<Kernel>> = OnceLock::new();

/// The sandbox's kernel (one per sentry process).
pub fn kernel() -> &'static Arc<Kernel> {
    KERNEL.get().expect("kernel used before boot")
}

thread_local! {
    static CURRENT: RefCell<Option<(Arc<Process>, Arc<Thread>)>> = const { RefCell::new(None) };
}

/// The process the calling sentry thread runs, if any.
/// Whether the current task may look into `target` through /proc (its fd
/// links, cwd, exe, root, maps): Linux's PTRACE_MODE_READ_FSCREDS check.
/// The caller's ids must match all of the target's (no fsuid here: the
/// effective ids stand in), or it needs CAP_SYS_PTRACE. The sentry's own
/// threads and a process looking at itself always may.
pub fn may_inspect(target: &Process) -> bool {
    let Some(me) = current() else {
        return true;
    };
    if std::ptr::eq(&*me, target) {
        return true;
    }
    let c = lock(&me.creds).clone();
    if c.has_cap(cap::SYS_PTRACE) {
        return true;
    }
    let t = lock(&target.creds).clone();
    [t.ruid, t.euid, t.suid].iter().all(|&u| u == c.euid)
        && [t.rgid, t.egid, t.sgid].iter().all(|&g| g == c.egid)
}

pub fn current() -> Option<Arc<Process>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|x| x.0.clone()))
}

/// The application thread the calling sentry thread runs, if any.
pub fn current_thread() -> Option<Arc<Thread>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|x| x.1.clone()))
}

pub fn set_current(p: Option<(Arc<Process>, Arc<Thread>)>) {
    CURRENT.with(|c| *c.borrow_mut() = p);
}

/// Whether the calling thread's process must stop what it is doing: a
/// fatal signal, or a signal it can take now, is pending. Blocking calls
/// give up with EINTR then (and may be restarted after the handler).
/// Whether the current task is being torn down (a fatal signal, an
/// exit_group, an execve by another thread): waits that only such events
/// may end check this.
pub fn dying() -> bool {
    current()
        .zip(current_thread())
        .map(|(p, t)| {
            p.fatal_signal.load(Ordering::Relaxed) != 0
                || lock(&p.group_exit).is_some()
                || t.quiet.load(Ordering::SeqCst)
        })
        .unwrap_or(false)
}

pub fn interrupted() -> bool {
    dying()
        || current()
            .zip(current_thread())
            .is_some_and(|(p, t)| signal_deliverable(&p, &t))
}

/// Whether a signal pending for `t` (its own or its process's) is not
/// blocked by its mask.
pub fn signal_deliverable(p: &Process, t: &Thread) -> bool {
    let proc_pending = lock(&p.sig).pending;
    let ts = lock(&t.sig);
    (proc_pending | ts.pending) & !ts.mask != 0
}

extern "C" fn on_interrupt(_: libc::c_int) {}

impl Kernel {
    pub fn install(
        vfs: Arc<Vfs>,
        stub_image: StubImage,
        cfg: KernelConfig,
        cpuinfo: String,
    ) -> &'static Arc<Kernel> {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "6.1.0".into());
        let k = Arc::new(Kernel {
            vfs,
            hostname: Mutex::new(cfg.hostname),
            network: cfg.network,
            ping_group_range: cfg.ping_group_range,
            release,
            stub_image,
            tree: Mutex::new(ProcessTree::default()),
            tree_cv: Condvar::new(),
            strace: cfg.strace.map(Mutex::new),
            logged_unimplemented: Mutex::new(HashSet::new()),
            cpu_count: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            host_tty_pgrps: Mutex::new(HashMap::new()),
            next_cpu: AtomicUsize::new(0),
            boot: Instant::now(),
            cpuinfo,
        });
        // SAFETY: installing a handler that does nothing, without SA_RESTART,
        // so blocking host calls of sentry threads return EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_interrupt as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(INTERRUPT_SIGNAL, &sa, std::ptr::null_mut());
        }
        let _ = KERNEL.set(k);
        kernel()
    }

    /// Logs an unimplemented syscall the first time it is seen.
    pub fn log_unimplemented(&self, nr: u64, name: &str) {
        if lock(&self.logged_unimplemented).insert(nr) {
            tracing::warn!("unimplemented syscall {name} ({nr})");
        }
    }

    /// CPU for a new task: round robin. A task's sentry thread and its stub
    /// share one CPU, where a ptrace round trip is several times cheaper.
    pub fn pick_cpu(&self) -> usize {
        self.next_cpu.fetch_add(1, Ordering::Relaxed) % self.cpu_count.max(1)
    }

    /// A process by pid, zombies included (they can still be signalled).
    pub fn process_or_zombie(&self, pid: i32) -> Option<(Arc<Process>, bool)> {
        lock(&self.tree)
            .procs
            .get(&pid)
            .map(|e| (e.proc.clone(), e.zombie.is_some()))
    }

    /// The sandbox's live (not zombie) processes, by ascending pid.
    pub fn live_processes(&self) -> Vec<Arc<Process>> {
        lock(&self.tree)
            .procs
            .values()
            .filter(|e| e.zombie.is_none())
            .map(|e| e.proc.clone())
            .collect()
    }

    pub fn process(&self, pid: i32) -> Option<Arc<Process>> {
        lock(&self.tree)
            .procs
            .get(&pid)
            .filter(|e| e.zombie.is_none())
            .map(|e| e.proc.clone())
    }

    pub fn strace_line(&self, line: &str) {
        if let Some(s) = &self.strace {
            let mut w = lock(s);
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
    }

    /// Sends `sig` to a process, following Linux's rules: ignored signals
    /// are dropped, a default action of "terminate" kills the process, and
    /// everything else (a handler, or a blocked signal) becomes pending and
    /// is delivered by a thread that does not block it, before that thread
    /// next runs (see `sigframe.rs`); that thread is woken.
    pub fn send_signal(&self, target: &Arc<Process>, sig: i32, info: signals::SigInfo) {
        self.send(target, None, sig, info)
    }

    /// A signal from outside the sandbox (`rvisor kill`): like a signal
    /// from an ancestor pid namespace, SIGKILL and SIGSTOP reach even the
    /// container's init, which ignores other signals it does not handle.
    pub fn send_signal_from_host(&self, target: &Arc<Process>, sig: i32, info: signals::SigInfo) {
        match sig {
            libc::SIGKILL => self.kill_process(target, sig),
            libc::SIGSTOP => self.stop_process(target, sig),
            _ => self.send(target, None, sig, info),
        }
    }

    /// Sends `sig` to one thread (tkill, tgkill, SIGPIPE).
    pub fn send_signal_thread(
        &self,
        target: &Arc<Process>,
        thread: &Arc<Thread>,
        sig: i32,
        info: signals::SigInfo,
    ) {
        self.send(target, Some(thread), sig, info)
    }

    fn send(
        &self,
        target: &Arc<Process>,
        thread: Option<&Arc<Thread>>,
        sig: i32,
        info: signals::SigInfo,
    ) {
        if !(1..signals::NSIG as i32).contains(&sig) {
            return;
        }
        let threads: Vec<Arc<Thread>> = match thread {
            Some(t) => vec![t.clone()],
            None => lock(&target.threads)
                .iter()
                .filter(|t| !t.is_gone())
                .cloned()
                .collect(),
        };
        // The thread that will take it: the first that does not block it.
        let taker = threads
            .iter()
            .find(|t| lock(&t.sig).mask & sig_bit(sig) == 0)
            .cloned();
        let blocked = taker.is_none() && sig != libc::SIGKILL;
        if sig == libc::SIGCONT {
            // SIGCONT resumes a stopped process whatever its disposition,
            // and cancels pending stop signals.
            self.continue_process(target);
        }
        let fatal = {
            let mut ss = lock(&target.sig);
            let act = ss.action(sig);
            if target.container_init && act.handler == signals::SIG_DFL && !blocked {
                // The container's init, like any pid namespace's init, only
                // gets signals it handles (or has blocked, to handle later).
                return;
            }
            let default_fatal = act.handler == signals::SIG_DFL
                && matches!(
                    default_action(sig),
                    DefaultAction::Terminate | DefaultAction::CoreDump
                );
            if sig == libc::SIGKILL || (!blocked && default_fatal) {
                true
            } else if !blocked && (act.handler == SIG_IGN || act.handler == signals::SIG_DFL) {
                if act.handler == signals::SIG_DFL
                    && default_action(sig) == DefaultAction::Stop
                    && !target.container_init
                {
                    drop(ss);
                    self.stop_process(target, sig);
                }
                false
            } else {
                match thread {
                    Some(t) => {
                        let mut ts = lock(&t.sig);
                        ts.pending |= sig_bit(sig);
                        ts.info[sig as usize] = info;
                    }
                    None => {
                        ss.pending |= sig_bit(sig);
                        ss.info[sig as usize] = info;
                    }
                }
                false
            }
        };
        if fatal {
            self.kill_process(target, sig);
        } else {
            crate::syscalls::signalfd_notify(target);
            if let Some(t) = taker {
                self.kick(target, &t);
            }
        }
    }

    /// Job-control stop: the process's threads park before they next run
    /// application code; the parent can see it with WUNTRACED and gets
    /// SIGCHLD (CLD_STOPPED) unless it asked for SA_NOCLDSTOP.
    pub fn stop_process(&self, target: &Arc<Process>, sig: i32) {
        {
            let mut stopped = lock(&target.job_stopped.0);
            if *stopped {
                return;
            }
            *stopped = true;
        }
        {
            let mut ss = lock(&target.sig);
            ss.pending &= !sig_bit(libc::SIGCONT);
        }
        let Some(parent) = self.record_job_event(target, Some(sig)) else {
            return;
        };
        for th in lock(&target.threads).iter().filter(|t| !t.is_gone()) {
            self.kick(target, th);
        }
        self.notify_parent(target, parent, 5 /* CLD_STOPPED */, sig);
    }

    /// SIGCONT: wakes a stopped process and reports it (WCONTINUED, SIGCHLD
    /// with CLD_CONTINUED).
    pub fn continue_process(&self, target: &Arc<Process>) {
        {
            let mut ss = lock(&target.sig);
            for s in [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
                ss.pending &= !sig_bit(s);
            }
        }
        {
            let mut stopped = lock(&target.job_stopped.0);
            if !*stopped {
                return;
            }
            *stopped = false;
            target.job_stopped.1.notify_all();
        }
        let Some(parent) = self.record_job_event(target, None) else {
            return;
        };
        self.notify_parent(target, parent, 6 /* CLD_CONTINUED */, libc::SIGCONT);
    }

    /// Records a stop (Some(signal)) or a continue (None) for the parent's
    /// wait and wakes waiters. Returns None when the process is gone, else
    /// its live parent if any.
    fn record_job_event(
        &self,
        target: &Arc<Process>,
        stop: Option<i32>,
    ) -> Option<Option<Arc<Process>>> {
        let mut tree = lock(&self.tree);
        let e = tree.procs.get_mut(&target.pid)?;
        e.stop_report = stop;
        e.continue_report = stop.is_none();
        let ppid = e.ppid;
        self.tree_cv.notify_all();
        Some(
            tree.procs
                .get(&ppid)
                .filter(|p| p.zombie.is_none())
                .map(|p| p.proc.clone()),
        )
    }

    fn notify_parent(
        &self,
        child: &Arc<Process>,
        parent: Option<Arc<Process>>,
        code: i32,
        status: i32,
    ) {
        let Some(parent) = parent else { return };
        let act = lock(&parent.sig).action(libc::SIGCHLD);
        if act.flags & libc::SA_NOCLDSTOP as u64 != 0 {
            return;
        }
        let uid = lock(&child.creds).ruid;
        let from = pidns::number_in(parent.pidns.as_ref(), child.pid);
        let mut info = signals::info_sender(libc::SIGCHLD, code, from, uid);
        info[24..28].copy_from_slice(&status.to_le_bytes());
        self.send_signal(&parent, libc::SIGCHLD, info);
    }

    /// Sends `sig` from the kernel (SI_KERNEL) to every live process of
    /// process group `pgid` (terminal signals: ^C, ^Z, SIGWINCH, hangup).
    pub fn signal_process_group(&self, pgid: i32, sig: i32) {
        let targets: Vec<Arc<Process>> = lock(&self.tree)
            .procs
            .values()
            .filter(|e| e.pgid == pgid && e.zombie.is_none())
            .map(|e| e.proc.clone())
            .collect();
        for p in targets {
            self.send_signal(&p, sig, signals::info_sender(sig, 0x80, 0, 0));
        }
    }

    /// The foreground process group of host terminal `tty` (its device
    /// number), as TIOCSPGRP on it last set it, while that group has a
    /// live process. The host only knows the sentry (or the waiter that
    /// stands for a process), which forward the terminal's signals here.
    pub fn host_tty_foreground(&self, tty: u64) -> Option<i32> {
        let pg = *lock(&self.host_tty_pgrps).get(&tty)?;
        let alive = lock(&self.tree)
            .procs
            .values()
            .any(|e| e.pgid == pg && e.zombie.is_none());
        alive.then_some(pg)
    }

    /// Records `pgid` as host terminal `tty`'s foreground group.
    pub fn set_host_tty_foreground(&self, tty: u64, pgid: i32) {
        lock(&self.host_tty_pgrps).insert(tty, pgid);
    }

    /// Makes a thread notice a pending signal: its stub thread is stopped
    /// (the tracer sees a stray stop and delivers), and its sentry thread is
    /// interrupted if it is blocked in a host call or a wait.
    pub fn kick(&self, proc: &Arc<Process>, target: &Arc<Thread>) {
        if current_thread()
            .map(|c| Arc::ptr_eq(&c, target))
            .unwrap_or(false)
            || target.is_gone()
        {
            return; // delivered when the current syscall returns
        }
        let ids = *lock(&target.host);
        let tgid = proc.stub_tgid.load(Ordering::SeqCst);
        if ids.stub_pid > 0 && tgid > 0 {
            // SAFETY: tgkill of a traced stub thread: it only causes a ptrace stop.
            unsafe { libc::syscall(libc::SYS_tgkill, tgid, ids.stub_pid, INTERRUPT_SIGNAL) };
        }
        if ids.tracer_tid > 0 {
            // SAFETY: tgkill of one of the sentry's own threads.
            unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    nix::unistd::getpid().as_raw(),
                    ids.tracer_tid,
                    INTERRUPT_SIGNAL,
                )
            };
        }
        let _guard = lock(&self.tree);
        self.tree_cv.notify_all();
    }

    /// Makes `target` die of `sig`: kills its stub (every thread) and wakes
    /// its sentry threads wherever they wait.
    pub fn kill_process(&self, target: &Arc<Process>, sig: i32) {
        if target
            .fatal_signal
            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        self.stop_all_threads(target);
    }

    /// SIGKILLs the stub process and interrupts every tracer of `target`.
    pub fn stop_all_threads(&self, target: &Arc<Process>) {
        let tgid = target.stub_tgid.load(Ordering::SeqCst);
        // A vfork child on its parent's stub ends through its tracer (an
        // injected exit of its thread), never by a signal to the process.
        if tgid > 0 && !target.vm_guest.load(Ordering::SeqCst) {
            // SAFETY: plain kill(2) of our own traced stub process.
            unsafe { libc::kill(tgid, libc::SIGKILL) };
        } else if tgid > 0 {
            // Stop each lent thread (a ptrace stop, harmless to the
            // lender), so its tracer sees the fatal signal even while the
            // child spins without making system calls.
            for t in lock(&target.threads).iter() {
                let stub_tid = lock(&t.host).stub_pid;
                if stub_tid > 0 {
                    // SAFETY: tgkill of a traced stub thread: it only
                    // causes a ptrace stop.
                    unsafe { libc::syscall(libc::SYS_tgkill, tgid, stub_tid, INTERRUPT_SIGNAL) };
                }
            }
        }
        let me = nix::unistd::gettid().as_raw();
        for t in lock(&target.threads).iter() {
            let tracer = lock(&t.host).tracer_tid;
            if tracer > 0 && tracer != me {
                // SAFETY: tgkill of one of the sentry's own threads.
                unsafe {
                    libc::syscall(
                        libc::SYS_tgkill,
                        nix::unistd::getpid().as_raw(),
                        tracer,
                        INTERRUPT_SIGNAL,
                    )
                };
            }
        }
        let _guard = lock(&self.tree);
        self.tree_cv.notify_all();
    }

    /// Records that `pid` exited with wait status `status`: it becomes a
    /// zombie for its parent, its children go to init.
    pub fn exit_process(&self, proc: &Arc<Process>, status: i32) {
        // Close files first so pipe readers see EOF; locks go too.
        let files = lock(&proc.fds).take_all();
        drop(files);
        // Its program may be written again (Linux lets go with the mm).
        let running = lock(&proc.exe).running.take();
        drop(running);
        // Its control thread dies with the stub process; the handle goes.
        proc.set_control(None);
        crate::vfs::lock::release(None, crate::vfs::lock::Owner::Process(proc.pid));
        // SysV: detach segments, apply SEM_UNDO adjustments.
        // (A vfork child's attachments are its parent's.)
        if !proc.vm_guest.load(Ordering::SeqCst) {
            let attachments = std::mem::take(&mut lock(&proc.mm()).shm);
            drop(attachments);
        }
        ipc::process_exited(proc.pid);
        proc.signal_vfork_parent();
        let mut tree = lock(&self.tree);
        let pid = proc.pid;
        let mut pdeath: Vec<(Arc<Process>, i32)> = Vec::new();
        let mut orphan_notice: Option<Arc<Process>> = None;
        let (ppid, children) = match tree.procs.get_mut(&pid) {
            Some(e) if e.zombie.is_some() => return,
            Some(e) => {
                e.zombie = Some(status);
                (e.ppid, std::mem::take(&mut e.children))
            }
            None => return,
        };
        // Children that asked for it learn of their parent's death.
        for c in &children {
            if let Some(ce) = tree.procs.get(c) {
                let sig = ce.proc.pdeathsig.load(Ordering::Relaxed);
                if sig != 0 && ce.zombie.is_none() {
                    pdeath.push((ce.proc.clone(), sig));
                }
            }
        }
        // Orphans go to the nearest live ancestor that is a child subreaper,
        // else to their container's init (pid 1 for the first container);
        // zombies among them stay reapable there.
        if pid != 1 {
            // Where its children go: the nearest live child subreaper, else
            // the init of its container (pid 1 for the first container, or
            // a pod sharing the sandbox's pid namespace). A joined
            // container whose init is this process, or is gone, has no one
            // to take them (its processes are being killed): they are
            // left parentless, reaped as they exit.
            let init = if proc.container_init {
                0
            } else {
                match tree.container_inits.get(&proc.container) {
                    Some(i) if tree.procs.get(i).is_some_and(|e| e.zombie.is_none()) => *i,
                    Some(_) => 0,
                    None => 1,
                }
            };
            let mut reaper = init;
            let mut cur = ppid;
            let mut hops = 0;
            while init != 0 && cur > 1 && cur != init && hops < 4096 {
                match tree.procs.get(&cur) {
                    Some(e)
                        if e.zombie.is_none() && e.proc.child_subreaper.load(Ordering::Relaxed) =>
                    {
                        reaper = cur;
                        break;
                    }
                    Some(e) => cur = e.ppid,
                    None => break,
                }
                hops += 1;
            }
            if reaper == 0 {
                for c in &children {
                    let zombie = tree.procs.get(c).is_some_and(|e| e.zombie.is_some());
                    if zombie {
                        if let Some(status) = tree.procs.remove(c).and_then(|e| e.zombie) {
                            if let Some(slot) = tree.exec_exits.get_mut(c) {
                                *slot = Some(status);
                            }
                        }
                    } else if let Some(ce) = tree.procs.get_mut(c) {
                        ce.ppid = 0;
                    }
                }
            } else {
                for c in &children {
                    if let Some(ce) = tree.procs.get_mut(c) {
                        ce.ppid = reaper;
                    }
                }
                if let Some(r) = tree.procs.get_mut(&reaper) {
                    r.children.extend(children.iter().copied());
                }
                // A reaper other than pid 1 hears of zombies it inherits.
                if reaper != 1 {
                    let zombies = children
                        .iter()
                        .filter(|c| tree.procs.get(c).is_some_and(|e| e.zombie.is_some()))
                        .count();
                    if zombies > 0 {
                        if let Some(r) = tree.procs.get(&reaper) {
                            orphan_notice = Some(r.proc.clone());
                        }
                    }
                }
            }
        }
        // A parent that ignores SIGCHLD never sees zombies.
        let autoreap = match tree.procs.get(&ppid) {
            Some(parent) => {
                let a = lock(&parent.proc.sig).action(libc::SIGCHLD);
                a.handler == SIG_IGN || a.flags & libc::SA_NOCLDWAIT as u64 != 0
            }
            None => pid != 1,
        };
        let parent = tree
            .procs
            .get(&ppid)
            .filter(|p| p.zombie.is_none())
            .map(|p| p.proc.clone());
        // The parent's SIGCHLD is pending before anyone can see the zombie
        // (Linux raises it in exit_notify under tasklist_lock): a parent
        // whose wait returns has its handler run before its next
        // instruction, not some time later.
        let sigchld_taker = parent.as_ref().and_then(|p| {
            let uid = lock(&proc.creds).ruid;
            let from = pidns::number_in(p.pidns.as_ref(), pid);
            self.queue_child_signal(p, signals::info_child(from, uid, status))
        });
        if autoreap && pid != 1 {
            if let Some(slot) = tree.exec_exits.get_mut(&pid) {
                *slot = Some(status);
            }
            tree.procs.remove(&pid);
            if let Some(parent) = tree.procs.get_mut(&ppid) {
                parent.children.remove(&pid);
            }
        }
        self.tree_cv.notify_all();
        drop(tree);
        if let Some(r) = orphan_notice {
            self.send_signal(
                &r,
                libc::SIGCHLD,
                signals::info_sender(libc::SIGCHLD, 0x80, 0, 0),
            );
        }
        for (child, sig) in pdeath {
            self.send_signal(
                &child,
                sig,
                signals::info_sender(
                    sig,
                    signals::SI_USER,
                    pidns::number_in(child.pidns.as_ref(), pid),
                    0,
                ),
            );
        }
        if let (Some(parent), Some(taker)) = (parent, sigchld_taker) {
            crate::syscalls::signalfd_notify(&parent);
            if let Some(t) = taker {
                self.kick(&parent, &t);
            }
        }
    }

    /// Makes SIGCHLD pending on `parent` if it would be delivered (handled,
    /// or blocked everywhere), without waking anyone: the caller holds the
    /// process tree and kicks the returned thread once it lets go.
    /// Returns None when the signal is dropped, else the thread to kick
    /// (None when every thread blocks it: it stays pending for sigwait,
    /// signalfd or a later unblock, as `send` leaves it).
    fn queue_child_signal(
        &self,
        parent: &Arc<Process>,
        info: signals::SigInfo,
    ) -> Option<Option<Arc<Thread>>> {
        let sig = libc::SIGCHLD;
        let threads: Vec<Arc<Thread>> = lock(&parent.threads)
            .iter()
            .filter(|t| !t.is_gone())
            .cloned()
            .collect();
        let taker = threads
            .iter()
            .find(|t| lock(&t.sig).mask & sig_bit(sig) == 0)
            .cloned();
        let mut ss = lock(&parent.sig);
        let act = ss.action(sig);
        // SIGCHLD's default is to ignore it; an ignored signal that no
        // thread blocks is dropped.
        if taker.is_some() && (act.handler == SIG_IGN || act.handler == signals::SIG_DFL) {
            return None;
        }
        ss.pending |= sig_bit(sig);
        ss.info[sig as usize] = info;
        Some(taker)
    }
}
