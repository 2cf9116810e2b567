//! The systrap platform (gVisor's `pkg/sentry/platform/systrap`): every
//! application thread runs untraced under a seccomp filter whose default
//! action is `SECCOMP_RET_TRAP`. Each system call (and each fault) becomes
//! a signal whose handler, in the stub's code, hands the thread over to its
//! sentry thread through a futex word in memory both share, and waits; the
//! sentry reads and rewrites the registers in the signal frame directly,
//! and the handler returns through it. No ptrace stop is involved, so a
//! round trip costs two futex hand-overs instead of a ptrace stop's four
//! context switches.
//!
//! What ptrace does on the other platform moves to one *syscall thread*
//! per stub process: it runs the memory-management calls the sentry
//! validated, and clones the process's threads and forks. It never runs
//! application code and takes its requests from a page the stub can only
//! read. ptrace is still used, briefly, to set up a new stub process (its
//! first thread after exec, or a forked child) before it runs application
//! code.
//!
//! See `layout` for the shared memory, `stub_code` for the stub's side and
//! `filter` for the application filter; README.md beside `platform/`
//! has the design and its measurements.

pub mod filter;
pub mod layout;
pub mod sites;
pub mod stub_code;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use layout::*;
use sites::{Shape, Site, Sites};

use super::stub_image::{stub_scratch, systrap_code_addr, StubImage};
use super::{PlatformError, Regs, StopEvent, Stub};

/// Whether systrap is the platform (set once at boot).
static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// How long (µs) each side polls the hand-over word before it sleeps on
/// it; 0, the default, sleeps at once, with both sides on one CPU.
/// Polling only pays when the other side runs on another CPU.
static SPIN: AtomicU32 = AtomicU32::new(0);
/// `SPIN` in iterations of the stub's polling loop (one `pause` each).
static SPIN_POLLS: AtomicU32 = AtomicU32::new(0);

/// How many `pause` instructions take `us` microseconds on this CPU (from
/// ~10 ns to ~140 ns each, by model). Measured once per sentry, briefly:
/// it delays every sandbox's start.
fn polls_for(us: u32) -> u32 {
    static PER_POLL_PS: OnceLock<u64> = OnceLock::new();
    let per_poll_ps = *PER_POLL_PS.get_or_init(|| {
        const N: u64 = 5_000;
        let t = Instant::now();
        for _ in 0..N {
            std::hint::spin_loop();
        }
        (t.elapsed().as_nanos() as u64 * 1000 / N).max(1)
    });
    (us as u64 * 1_000_000 / per_poll_ps).min(u32::MAX as u64) as u32
}

/// Whether hot system call sites are patched to enter the fast path
/// (see `sites`): set at boot when the CPU's XSAVE state fits a slot.
static PATCHING: AtomicBool = AtomicBool::new(false);
/// The XSAVE features the fast path saves (XCR0 without AMX tile data,
/// which Linux enables per process and leaves out of signal frames).
static XMASK: AtomicU64 = AtomicU64::new(0);
/// Size of the standard-format XSAVE area for `XMASK`.
static XSIZE: AtomicU32 = AtomicU32::new(0);

/// XCR0 and the XSAVE area size its features need, from cpuid.
fn xsave_layout() -> Option<(u64, u32)> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: cpuid is always available on x86_64.
    let leaf1 = __cpuid(1);
    const OSXSAVE: u32 = 1 << 27;
    if leaf1.ecx & OSXSAVE == 0 {
        return None;
    }
    // SAFETY: xgetbv(0) is allowed in user mode once OSXSAVE is set.
    let xcr0 = unsafe { std::arch::x86_64::_xgetbv(0) };
    const TILE: u64 = (1 << 17) | (1 << 18);
    let mask = xcr0 & !TILE;
    let mut size = 576u32;
    for i in 2..63u32 {
        if mask & (1 << i) != 0 {
            // SAFETY: as above; leaf 0xD sub-leaf i describes component i.
            let c = __cpuid_count(0xd, i);
            size = size.max(c.ebx + c.eax);
        }
    }
    Some((mask, size))
}

/// CPUs the sandbox may use (counted at boot, before any thread is
/// pinned and before the sentry loses /sys).
static CPUS: AtomicU32 = AtomicU32::new(1);

const HWCAP2_FSGSBASE: u64 = 1 << 1;

/// Makes systrap the platform, polling `spin` µs before each sleep (see
/// `SPIN`): checks the CPU lets user code save and load
/// the fs and gs bases (the handler must, as they are not in a signal
/// frame), blocks SIGCHLD in the calling thread (call it before the sentry
/// starts other threads, which inherit the mask) and starts the watcher
/// that notices stub processes dying.
pub fn enable(spin: u32, patch: bool, adaptive: bool) -> Result<(), String> {
    // SAFETY: getauxval only reads the process's auxiliary vector.
    let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
    if hwcap2 & HWCAP2_FSGSBASE == 0 {
        return Err("the CPU or kernel does not allow FSGSBASE instructions".into());
    }
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGCHLD);
    set.thread_block().map_err(|e| e.to_string())?;
    let sfd =
        nix::sys::signalfd::SignalFd::with_flags(&set, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
            .map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("stub-watcher".into())
        .spawn(move || watch_sigchld(sfd))
        .map_err(|e| e.to_string())?;
    SPIN.store(spin, Ordering::Relaxed);
    SPIN_POLLS.store(polls_for(spin), Ordering::Relaxed);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    CPUS.store(cpus as u32, Ordering::Relaxed);
    ADAPTIVE.store(adaptive && spin == 0 && cpus > 1, Ordering::Relaxed);
    HOT_POLLS.store(polls_for(HOT_SPIN_US), Ordering::Relaxed);
    if let Some((mask, size)) = xsave_layout() {
        XMASK.store(mask, Ordering::Relaxed);
        XSIZE.store(size, Ordering::Relaxed);
        PATCHING.store(patch && size as u64 <= FAST_XSAVE_MAX, Ordering::Relaxed);
    }
    ENABLED.store(true, Ordering::Relaxed);
    Ok(())
}

// ---- the shared region ------------------------------------------------------

/// A stub process's region, as the sentry maps it.
struct Region {
    base: *mut u8,
}

// SAFETY: the mapping is shared memory accessed only through volatile and
// atomic operations; the pointer itself is never mutated.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// Maps the region the stub made (`make_region`), whose memfd the
    /// sentry took a copy of.
    fn from_fd(fd: OwnedFd) -> Result<Region, Errno> {
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        if st.st_size as u64 != REGION_SIZE {
            return Err(Errno::EINVAL);
        }
        // Its size can never change again: a shrink would make the
        // sentry's accesses fault.
        let seals = nix::fcntl::SealFlag::F_SEAL_SHRINK
            | nix::fcntl::SealFlag::F_SEAL_GROW
            | nix::fcntl::SealFlag::F_SEAL_SEAL;
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_ADD_SEALS(seals))?;
        Ok(Region {
            base: map_shared(&fd, REGION_SIZE)?,
        })
    }

    /// The 32-bit word at `off` (4-byte aligned, inside the region).
    fn word(&self, off: u64) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= REGION_SIZE);
        // SAFETY: `off` is inside the mapping and aligned; the mapping lives
        // as long as `self`, and AtomicU32 has the layout of u32.
        unsafe { AtomicU32::from_ptr(self.base.add(off as usize).cast()) }
    }

    fn read_u64(&self, off: u64) -> u64 {
        debug_assert!(off + 8 <= REGION_SIZE);
        // SAFETY: inside the mapping; volatile, since the stub may write it
        // at any time (the value is then merely whatever it wrote).
        unsafe { std::ptr::read_volatile(self.base.add(off as usize).cast::<u64>()) }
    }

    fn write_u64(&self, off: u64, v: u64) {
        debug_assert!(off + 8 <= REGION_SIZE);
        // SAFETY: as in read_u64.
        unsafe { std::ptr::write_volatile(self.base.add(off as usize).cast::<u64>(), v) }
    }

    fn read_bytes(&self, off: u64, out: &mut [u8]) {
        debug_assert!(off + out.len() as u64 <= REGION_SIZE);
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: inside the mapping (checked by the callers).
            *b = unsafe { std::ptr::read_volatile(self.base.add(off as usize + i)) };
        }
    }

    fn write_bytes(&self, off: u64, data: &[u8]) {
        debug_assert!(off + data.len() as u64 <= REGION_SIZE);
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the mapping (checked by the callers).
            unsafe { std::ptr::write_volatile(self.base.add(off as usize + i), *b) };
        }
    }

    /// Zeroes a slot's context page before a new thread uses it.
    fn clear(&self, off: u64, len: u64) {
        self.write_bytes(off, &vec![0u8; len as usize]);
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping `from_fd` made, which nothing uses any more.
        unsafe { unmap_shared(self.base, REGION_SIZE) };
    }
}

/// Maps `len` bytes of memfd `fd` read-write and shared into the sentry
/// (memory the sentry shares with stubs: a region, a site table).
pub(crate) fn map_shared(fd: &OwnedFd, len: u64) -> Result<*mut u8, Errno> {
    // SAFETY: a fresh shared mapping of a memfd we hold; nothing else in
    // the sentry refers to the range the kernel picks.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    Ok(base.cast())
}

/// Unmaps what [`map_shared`] mapped.
///
/// # Safety
/// `base` and `len` are a `map_shared` mapping nothing refers to any more.
pub(crate) unsafe fn unmap_shared(base: *mut u8, len: u64) {
    // SAFETY: as the caller promises.
    unsafe { libc::munmap(base.cast(), len as usize) };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a word of our shared mapping (shared futex:
    // the stub waits on the same memfd page).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        )
    };
}

/// Sleeps while `word` holds `val`, at most `timeout`.
fn futex_wait(word: &AtomicU32, val: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT on a word of our shared mapping, with a timeout
    // we own; it returns on a wake, a change, a signal or the timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            &ts as *const libc::timespec,
            0usize,
            0u32,
        )
    };
}

/// Waits until `ready` holds: polls briefly, then sleeps on `word` (whose
/// `waiting` flag tells the other side to wake us) in slices, giving up
/// when `dead` says the other side is gone.
fn wait_for(
    word: &AtomicU32,
    waiting: &AtomicU32,
    ready: impl Fn(u32) -> bool,
    dead: impl Fn() -> bool,
    spin: u32,
) -> Option<u32> {
    if spin > 0 {
        let until = Instant::now() + Duration::from_micros(spin as u64);
        loop {
            let v = word.load(Ordering::SeqCst);
            if ready(v) {
                return Some(v);
            }
            if Instant::now() >= until {
                break;
            }
            std::hint::spin_loop();
        }
    }
    loop {
        waiting.store(1, Ordering::SeqCst);
        let v = word.load(Ordering::SeqCst);
        if ready(v) {
            waiting.store(0, Ordering::SeqCst);
            return Some(v);
        }
        futex_wait(word, v, Duration::from_millis(500));
        waiting.store(0, Ordering::SeqCst);
        let v = word.load(Ordering::SeqCst);
        if ready(v) {
            return Some(v);
        }
        if dead() {
            return None;
        }
    }
}

// ---- a stub process ---------------------------------------------------------

/// One stub process: its region and its syscall thread.
pub struct Space {
    /// The process's id (its syscall thread leads it).
    tgid: i32,
    region: Region,
    /// Serialises requests to the syscall thread; the last sequence number.
    requests: Mutex<u32>,
    /// Which slots hold a thread.
    slots: Mutex<Vec<bool>>,
    /// The process is gone (killed, or died): nothing waits on it any more.
    dead: AtomicBool,
    /// Reaped (only the first `kill` reaps).
    reaped: AtomicBool,
    /// Its patched system call sites (shared with forks; see `sites`).
    sites: Arc<Sites>,
    /// The site table is mapped in this process (a fork inherits it).
    sites_mapped: AtomicBool,
    /// Whether this process can be patched (the table mapped, membarrier
    /// registered): 0 not known yet, 1 yes, 2 no.
    patch_ready: AtomicU8,
    /// One patch at a time.
    patching: Mutex<()>,
}

/// Every live space, for the watcher.
fn spaces() -> &'static Mutex<Vec<Weak<Space>>> {
    static SPACES: OnceLock<Mutex<Vec<Weak<Space>>>> = OnceLock::new();
    SPACES.get_or_init(|| Mutex::new(Vec::new()))
}

/// A cloned thread's process and slot.
type PendingThread = (Arc<Space>, usize);

/// Forked processes not yet adopted, by pid: their parent's sites (the
/// fork inherited the table's mapping and the patched code).
fn pending_forks() -> &'static Mutex<HashMap<i32, Arc<Sites>>> {
    static PENDING: OnceLock<Mutex<HashMap<i32, Arc<Sites>>>> = OnceLock::new();
    PENDING.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Threads cloned but not yet adopted by their sentry thread, by host tid.
fn pending_threads() -> &'static Mutex<HashMap<i32, PendingThread>> {
    static PENDING: OnceLock<Mutex<HashMap<i32, PendingThread>>> = OnceLock::new();
    PENDING.get_or_init(|| Mutex::new(HashMap::new()))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Space {
    fn new(tgid: i32, region: Region, sites: Arc<Sites>, sites_mapped: bool) -> Arc<Space> {
        // The syscall thread shares its CPU with the sentry thread that
        // asks (see `pin_here`): polling would only delay it.
        region.word(RESP_SPIN).store(0, Ordering::Relaxed);
        let space = Arc::new(Space {
            tgid,
            region,
            requests: Mutex::new(0),
            slots: Mutex::new(vec![false; MAX_THREADS]),
            dead: AtomicBool::new(false),
            reaped: AtomicBool::new(false),
            sites,
            sites_mapped: AtomicBool::new(sites_mapped),
            patch_ready: AtomicU8::new(0),
            patching: Mutex::new(()),
        });
        let mut all = lock(spaces());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&space));
        space
    }

    /// Whether the process has exited (without reaping it).
    fn check_dead(&self) -> bool {
        if self.dead.load(Ordering::SeqCst) {
            return true;
        }
        // SAFETY: siginfo_t is plain old data; all-zero is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child, filling a siginfo we own; WNOWAIT
        // leaves it for `kill` to reap.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.tgid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid for the child states waitid reports.
        let gone = r != 0 || unsafe { info.si_pid() } != 0;
        if gone {
            self.mark_dead();
        }
        gone
    }

    /// Wakes everything that waits on this process.
    fn mark_dead(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let slots = lock(&self.slots);
        for (i, used) in slots.iter().enumerate() {
            if *used {
                let w = self.region.word(slot_offset(i) + CTX_STATE);
                w.store(STATE_GONE, Ordering::SeqCst);
                futex_wake(w);
            }
        }
        futex_wake(self.region.word(RESP_SEQ));
    }

    /// Kills the process and reaps it (once).
    pub fn kill(&self) {
        if !self.reaped.swap(true, Ordering::SeqCst) {
            // SAFETY: kill(2) of our own stub process.
            unsafe { libc::kill(self.tgid, libc::SIGKILL) };
            loop {
                let mut status = 0;
                // SAFETY: waitpid on our own child.
                let r = unsafe { libc::waitpid(self.tgid, &mut status, libc::__WALL) };
                if r >= 0 || Errno::last() != Errno::EINTR {
                    break;
                }
            }
        }
        self.mark_dead();
    }

    /// Runs one system call in the syscall thread and returns its raw
    /// result (a negative errno on failure). Callers validated it.
    fn request(&self, kind: u32, nr: u64, args: [u64; 6]) -> Result<i64, PlatformError> {
        let gone = || PlatformError::Gone { pid: self.tgid };
        let mut last = lock(&self.requests);
        if self.dead.load(Ordering::SeqCst) {
            return Err(gone());
        }
        let seq = last.wrapping_add(1).max(1);
        *last = seq;
        let r = &self.region;
        r.word(REQ_KIND).store(kind, Ordering::Relaxed);
        r.write_u64(REQ_NR, nr);
        for (i, a) in args.iter().enumerate() {
            r.write_u64(REQ_ARGS + 8 * i as u64, *a);
        }
        let req = r.word(REQ_SEQ);
        req.store(seq, Ordering::SeqCst);
        futex_wake(req);
        let answered = wait_for(
            r.word(RESP_SEQ),
            r.word(RESP_SENTRY_WAITING),
            |v| v == seq,
            || self.check_dead(),
            // The syscall thread runs on this thread's CPU (see
            // `pin_here`): sleep at once and let it.
            0,
        );
        if answered.is_none() {
            return Err(gone());
        }
        Ok(r.read_u64(RESP_RESULT) as i64)
    }

    /// Takes a free slot and readies its context for a new thread.
    fn alloc_slot(&self) -> Option<usize> {
        let mut slots = lock(&self.slots);
        let i = slots.iter().position(|used| !used)?;
        slots[i] = true;
        let off = slot_offset(i);
        self.region.clear(off, CTX_GREGS + 8 * 18);
        self.region
            .write_u64(off + CTX_XMASK, XMASK.load(Ordering::Relaxed));
        self.region
            .word(off + CTX_SPIN)
            .store(SPIN_POLLS.load(Ordering::Relaxed), Ordering::Relaxed);
        self.region
            .word(off + CTX_STATE)
            .store(STATE_RESUME, Ordering::SeqCst);
        Some(i)
    }

    /// Application threads the process has.
    fn threads(&self) -> usize {
        lock(&self.slots).iter().filter(|used| **used).count()
    }

    fn free_slot(&self, i: usize) {
        if let Some(s) = lock(&self.slots).get_mut(i) {
            *s = false;
        }
    }

    /// Clones a new application thread; it waits in its first trap until
    /// [`adopt_thread`] takes it over. Returns its host tid.
    fn clone_thread(self: &Arc<Self>) -> Result<i64, PlatformError> {
        let Some(slot) = self.alloc_slot() else {
            return Ok(-(libc::EAGAIN as i64));
        };
        let flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_CHILD_CLEARTID) as u64;
        let base = slot_addr(slot);
        let tid = self.request(
            KIND_THREAD,
            libc::SYS_clone as u64,
            [flags, base + STARTUP_STACK_TOP, 0, base + CTX_STATE, 0, 0],
        );
        match tid {
            Ok(tid) if tid > 0 => {
                lock(pending_threads()).insert(tid as i32, (self.clone(), slot));
                Ok(tid)
            }
            other => {
                self.free_slot(slot);
                other
            }
        }
    }

    /// Forks the process (the child is a copy of the syscall thread, which
    /// parks until [`adopt_process`]). Returns the child's pid.
    fn fork(&self) -> Result<i64, PlatformError> {
        let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as u64;
        let pid = self.request(KIND_FORK, libc::SYS_clone as u64, [flags, 0, 0, 0, 0, 0])?;
        if pid > 0 && self.sites_mapped.load(Ordering::SeqCst) {
            lock(pending_forks()).insert(pid as i32, self.sites.clone());
        }
        Ok(pid)
    }
}

impl Drop for Space {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Marks dead every space whose process exited (on each SIGCHLD).
fn watch_sigchld(sfd: nix::sys::signalfd::SignalFd) {
    let _ = nix::sys::signal::SigSet::all().thread_block();
    loop {
        match sfd.read_signal() {
            Ok(Some(_)) => {
                let all: Vec<Arc<Space>> =
                    lock(spaces()).iter().filter_map(Weak::upgrade).collect();
                for s in all {
                    s.check_dead();
                }
            }
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("stub watcher stopped: {e}");
                return;
            }
        }
    }
}

// ---- an application thread ------------------------------------------------

/// An application thread, stopped in its trap handler or running.
pub struct Thread {
    space: Arc<Space>,
    slot: usize,
    tid: i32,
    /// The trap it waits in (offsets of its frame in the region), when the
    /// sentry holds it.
    event: Option<Event>,
    alive: bool,
    /// Registers the fast path could not restore itself: it traps with
    /// `BOUNCE_NR`, and they go into that trap's frame (see `run`).
    bounce: Option<Regs>,
    /// Adaptive polling (see `adapt`): whether the thread is polling now,
    /// its run of quick calls, and of slow ones while it polls.
    hot: bool,
    streak: u32,
    slow: u32,
    /// When the sentry got the thread's last event (how long it served
    /// the call counts too).
    stopped_at: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    /// `KIND_FRAME` or one of the fast path's.
    kind: u32,
    signo: i32,
    siginfo: u64,
    ucontext: u64,
    /// A system call's number (a SIGSYS from the filter, or a call from a
    /// patched site).
    syscall: Option<u64>,
    /// The patched site the call came from, if it came from one: the
    /// thread resumes after its original `syscall`.
    site: Option<Site>,
}

// The kernel's `struct ucontext` and `siginfo_t`.
const UC_MCONTEXT: u64 = 40;
const UCONTEXT_SIZE: u64 = 304;
const UC_FPREGS: u64 = UC_MCONTEXT + 23 * 8;
const SIGINFO_SIZE: u64 = 128;
const SI_CODE: u64 = 8;
/// si_code of a trap the CPU raised (int3), not a signal someone sent.
const SI_KERNEL: i32 = 0x80;
/// si_code of an invalid opcode.
const ILL_ILLOPN: i32 = 2;
const SI_ADDR: u64 = 16;
const SI_ARCH: u64 = 0x1c;
const SYS_SECCOMP: i32 = 1;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

// gregs indices (REG_*).
const G_R8: u64 = 0;
const G_R9: u64 = 1;
const G_R10: u64 = 2;
const G_R11: u64 = 3;
const G_R12: u64 = 4;
const G_R13: u64 = 5;
const G_R14: u64 = 6;
const G_R15: u64 = 7;
const G_RDI: u64 = 8;
const G_RSI: u64 = 9;
const G_RBP: u64 = 10;
const G_RBX: u64 = 11;
const G_RDX: u64 = 12;
const G_RAX: u64 = 13;
const G_RCX: u64 = 14;
const G_RSP: u64 = 15;
const G_RIP: u64 = 16;
const G_EFL: u64 = 17;
const G_CSGSFS: u64 = 18;

fn canonical(addr: u64) -> bool {
    ((addr as i64) << 16 >> 16) as u64 == addr
}

impl Thread {
    /// The slot's offset in the region.
    fn slot_off(&self) -> u64 {
        slot_offset(self.slot)
    }

    fn state(&self) -> &AtomicU32 {
        self.space.region.word(self.slot_off() + CTX_STATE)
    }

    /// Translates a stub address the handler left in the context into a
    /// region offset, if `len` bytes there lie on this slot's alternate
    /// stack (the application can write the context: nothing else is
    /// trusted).
    fn on_altstack(&self, addr: u64, len: u64) -> Option<u64> {
        let lo = slot_addr(self.slot) + ALTSTACK;
        let hi = slot_addr(self.slot) + SLOT_SIZE;
        (addr >= lo && addr.checked_add(len)? <= hi).then(|| addr - region_base())
    }

    /// Waits for the thread's next trap.
    fn wait_event(&mut self) -> Result<Option<Event>, PlatformError> {
        let off = self.slot_off();
        let space = self.space.clone();
        let got = wait_for(
            self.state(),
            space.region.word(off + CTX_SENTRY_WAITING),
            |v| v != STATE_RESUME && v != STATE_BOUNCE,
            || space.check_dead(),
            if self.hot {
                HOT_SPIN_US
            } else {
                SPIN.load(Ordering::Relaxed)
            },
        );
        match got {
            None | Some(STATE_GONE) => {
                self.alive = false;
                Ok(None)
            }
            Some(STATE_EVENT) => self.read_event().map(Some),
            Some(other) => Err(PlatformError::Unexpected {
                pid: self.tid,
                what: format!("systrap state {other}"),
            }),
        }
    }

    /// Reads the event the thread posted.
    fn read_event(&self) -> Result<Event, PlatformError> {
        let off = self.slot_off();
        let r = &self.space.region;
        match r.word(off + CTX_KIND).load(Ordering::Relaxed) {
            KIND_FAST_SYSCALL => {
                let i = r.word(off + CTX_FAST_SITE).load(Ordering::Relaxed);
                let site = self.space.sites.by_index(i);
                return Ok(Event {
                    kind: KIND_FAST_SYSCALL,
                    // An index the sentry never gave out: the application
                    // wrote it, and gets a fault.
                    signo: if site.is_some() { 0 } else { libc::SIGSEGV },
                    siginfo: 0,
                    ucontext: 0,
                    syscall: site.map(|s| s.nr),
                    site,
                });
            }
            KIND_FAST_INTERRUPT => {
                return Ok(Event {
                    kind: KIND_FAST_INTERRUPT,
                    signo: super::INTERRUPT_SIGNAL,
                    siginfo: 0,
                    ucontext: 0,
                    syscall: None,
                    site: None,
                });
            }
            _ => {}
        }
        let signo = r.word(off + CTX_SIGNO).load(Ordering::Relaxed) as i32;
        let si = r.read_u64(off + CTX_SIGINFO);
        let uc = r.read_u64(off + CTX_UCONTEXT);
        let bad = |what: &str| PlatformError::Unexpected {
            pid: self.tid,
            what: format!("systrap context: {what}"),
        };
        let siginfo = self
            .on_altstack(si, SIGINFO_SIZE)
            .ok_or_else(|| bad("siginfo outside the alternate stack"))?;
        let ucontext = self
            .on_altstack(uc, UCONTEXT_SIZE)
            .ok_or_else(|| bad("ucontext outside the alternate stack"))?;
        let code = r.word(siginfo + SI_CODE).load(Ordering::Relaxed) as i32;
        let arch = r.word(siginfo + SI_ARCH).load(Ordering::Relaxed);
        let rip = self.greg(ucontext, G_RIP);
        let mut ev = Event {
            kind: KIND_FRAME,
            signo,
            siginfo,
            ucontext,
            syscall: None,
            site: None,
        };
        if signo == libc::SIGSYS && code == SYS_SECCOMP {
            let nr = self.greg(ucontext, G_RAX);
            // Another ABI (int $0x80): a number no table has.
            ev.syscall = Some(if arch == AUDIT_ARCH_X86_64 {
                nr
            } else {
                u64::MAX - 1
            });
            // A slow trampoline's call returns after its site.
            if arch == AUDIT_ARCH_X86_64 && (SITES_BASE..SITES_BASE + SITES_SIZE).contains(&rip) {
                ev.site = self.space.sites.by_slow_return(rip);
            }
        } else if let Some(site) = self.patched_site_trap(signo, code, rip, ucontext) {
            ev.syscall = Some(site.nr);
            ev.site = Some(site);
        }
        Ok(ev)
    }

    /// A trap that is a system call at a site being patched: a SIGTRAP at
    /// the `int3` the patch starts with, or a SIGILL at the invalid
    /// opcode it leaves where `syscall` was (the thread ran the old `mov`
    /// before the patch).
    ///
    /// A read site has one more: a thread that had run its `xor` runs
    /// the patch's `and $imm32, %eax` (eax stays 0) into the `int3` at
    /// byte 7 (SIGTRAP after it, at byte 8). One that had made the call
    /// already traps where the `cmp` was: see [`Thread::read_site_tail`].
    fn patched_site_trap(&self, signo: i32, code: i32, rip: u64, uc: u64) -> Option<Site> {
        let sites = &self.space.sites;
        let (site, byte, want): (Site, u64, Vec<u8>) = match (signo, code) {
            // An int3 the CPU ran (not a SIGTRAP someone sent).
            (libc::SIGTRAP, SI_KERNEL) => match sites.by_addr(rip.checked_sub(1)?) {
                // The patch's own int3, its final byte, or (a patch that
                // failed and was undone) the original's.
                Some(site) => (site, site.addr, vec![0xcc, 0xff, site.first_byte()]),
                None => {
                    // A read site's `and $imm32, %eax` ran into byte 7. A
                    // jump into the middle of the site with another eax
                    // would become a read here; compiled code never does.
                    let site = sites
                        .by_addr(rip.checked_sub(8)?)
                        .filter(|s| matches!(s.shape, Shape::XorSyscallCmp(_)))?;
                    (site, rip - 1, vec![0xcc])
                }
            },
            (libc::SIGILL, ILL_ILLOPN) => {
                // The call is whatever rax says, as at a `syscall`: the
                // site's `mov`, or a restart's number (rip - 2 after a
                // call from the site lands here too).
                let site = sites
                    .by_addr(rip.checked_sub(5)?)
                    .filter(|s| s.shape == Shape::MovSyscall)?;
                let nr = self.greg(uc, G_RAX);
                (Site { nr, ..site }, rip, vec![FAULT_OPCODE])
            }
            _ => return None,
        };
        let mut b = [0u8; 1];
        (read_app(self.tid, byte, &mut b) && want.contains(&b[0])).then_some(site)
    }

    /// Where a thread that trapped with SIGILL where a read site's `cmp`
    /// was goes on: it made its call before the patch (the sentry had it
    /// when the site changed, or it stood after the `syscall`), so it
    /// runs the `cmp` in the site's trampoline and continues after it.
    fn read_site_tail(&self, ev: &Event) -> Option<u64> {
        if ev.kind != KIND_FRAME || ev.signo != libc::SIGILL {
            return None;
        }
        let code = self
            .space
            .region
            .word(ev.siginfo + SI_CODE)
            .load(Ordering::Relaxed) as i32;
        if code != ILL_ILLOPN {
            return None;
        }
        let rip = self.greg(ev.ucontext, G_RIP);
        let site = self
            .space
            .sites
            .by_addr(rip.checked_sub(4)?)
            .filter(|s| matches!(s.shape, Shape::XorSyscallCmp(_)))?;
        let mut b = [0u8; 1];
        (read_app(self.tid, rip, &mut b) && b[0] == FAULT_OPCODE).then_some(site.ret)
    }

    fn event(&self) -> Result<Event, PlatformError> {
        self.event.ok_or(PlatformError::Unexpected {
            pid: self.tid,
            what: "systrap thread is not stopped".into(),
        })
    }

    fn greg(&self, uc: u64, i: u64) -> u64 {
        self.space.region.read_u64(uc + UC_MCONTEXT + 8 * i)
    }

    fn set_greg(&self, uc: u64, i: u64, v: u64) {
        self.space.region.write_u64(uc + UC_MCONTEXT + 8 * i, v)
    }

    pub fn regs(&self) -> Result<Regs, PlatformError> {
        let ev = self.event()?;
        if ev.kind != KIND_FRAME {
            return Ok(self.fast_regs(&ev));
        }
        let uc = ev.ucontext;
        let g = |i| self.greg(uc, i);
        let csgsfs = g(G_CSGSFS);
        let off = self.slot_off();
        // SAFETY: user_regs_struct is plain old data; all-zero is valid.
        let mut r: Regs = unsafe { std::mem::zeroed() };
        r.r8 = g(G_R8);
        r.r9 = g(G_R9);
        r.r10 = g(G_R10);
        r.r11 = g(G_R11);
        r.r12 = g(G_R12);
        r.r13 = g(G_R13);
        r.r14 = g(G_R14);
        r.r15 = g(G_R15);
        r.rdi = g(G_RDI);
        r.rsi = g(G_RSI);
        r.rbp = g(G_RBP);
        r.rbx = g(G_RBX);
        r.rdx = g(G_RDX);
        r.rax = g(G_RAX);
        r.rcx = g(G_RCX);
        r.rsp = g(G_RSP);
        r.rip = g(G_RIP);
        r.eflags = g(G_EFL);
        r.cs = csgsfs & 0xffff;
        r.gs = (csgsfs >> 16) & 0xffff;
        r.fs = (csgsfs >> 32) & 0xffff;
        r.ss = (csgsfs >> 48) & 0xffff;
        r.fs_base = self.space.region.read_u64(off + CTX_FSBASE);
        r.gs_base = self.app_gs_base(self.space.region.read_u64(off + CTX_GSBASE));
        if let Some(site) = ev.site {
            // As the original `syscall` would have left them.
            r.rip = site.ret;
            r.rcx = site.ret;
            r.r11 = r.eflags;
        }
        match ev.syscall {
            // As a ptrace syscall stop shows it.
            Some(nr) => {
                r.orig_rax = nr;
                r.rax = -(libc::ENOSYS as i64) as u64;
            }
            None => r.orig_rax = u64::MAX,
        }
        Ok(r)
    }

    /// The gs base as the application knows it: the thread's host gs base
    /// is its slot (the fast path finds it there) unless the application
    /// set one of its own; Linux starts threads at 0.
    fn app_gs_base(&self, host: u64) -> u64 {
        if host == slot_addr(self.slot) {
            0
        } else {
            host
        }
    }

    /// The registers the fast path saved (see `stub_code`).
    fn fast_regs(&self, ev: &Event) -> Regs {
        let r = &self.space.region;
        let off = self.slot_off();
        let g = |i: u64| r.read_u64(off + CTX_GREGS + 8 * i);
        // SAFETY: user_regs_struct is plain old data; all-zero is valid.
        let mut x: Regs = unsafe { std::mem::zeroed() };
        x.r8 = g(G_R8);
        x.r9 = g(G_R9);
        x.r10 = g(G_R10);
        x.r11 = g(G_R11);
        x.r12 = g(G_R12);
        x.r13 = g(G_R13);
        x.r14 = g(G_R14);
        x.r15 = g(G_R15);
        x.rdi = g(G_RDI);
        x.rsi = g(G_RSI);
        x.rbp = g(G_RBP);
        x.rbx = g(G_RBX);
        x.rdx = g(G_RDX);
        x.rax = g(G_RAX);
        x.rcx = g(G_RCX);
        x.rsp = g(G_RSP);
        x.rip = g(G_RIP);
        x.eflags = g(G_EFL);
        x.cs = 0x33;
        x.ss = 0x2b;
        x.fs_base = r.read_u64(off + CTX_FSBASE);
        x.gs_base = 0;
        x.orig_rax = u64::MAX;
        if ev.kind == KIND_FAST_SYSCALL {
            match ev.site {
                Some(site) => {
                    x.rip = site.ret;
                    x.rcx = site.ret;
                    x.r11 = x.eflags;
                    x.orig_rax = site.nr;
                    x.rax = -(libc::ENOSYS as i64) as u64;
                }
                None => x.rip = 0,
            }
        }
        x
    }

    pub fn set_regs(&self, r: &Regs) -> Result<(), PlatformError> {
        let ev = self.event()?;
        if r.gs_base != 0 && canonical(r.gs_base) {
            // The application's own gs base: the fast path can no longer
            // find the slot through it, in this process or any sharing
            // its sites.
            self.space.sites.go_slow();
        }
        if ev.kind != KIND_FRAME {
            self.set_fast_regs(r);
            return Ok(());
        }
        let uc = ev.ucontext;
        let s = |i, v| self.set_greg(uc, i, v);
        s(G_R8, r.r8);
        s(G_R9, r.r9);
        s(G_R10, r.r10);
        s(G_R11, r.r11);
        s(G_R12, r.r12);
        s(G_R13, r.r13);
        s(G_R14, r.r14);
        s(G_R15, r.r15);
        s(G_RDI, r.rdi);
        s(G_RSI, r.rsi);
        s(G_RBP, r.rbp);
        s(G_RBX, r.rbx);
        s(G_RDX, r.rdx);
        s(G_RAX, r.rax);
        s(G_RCX, r.rcx);
        s(G_RSP, r.rsp);
        s(G_RIP, r.rip);
        // rt_sigreturn keeps only the flags a program may change.
        s(G_EFL, r.eflags);
        let off = self.slot_off();
        // A non-canonical base would fault in the handler and kill the
        // whole process; keep the thread's own instead.
        if canonical(r.fs_base) {
            self.space.region.write_u64(off + CTX_FSBASE, r.fs_base);
        }
        if canonical(r.gs_base) {
            let host = if r.gs_base == 0 {
                slot_addr(self.slot)
            } else {
                r.gs_base
            };
            self.space.region.write_u64(off + CTX_GSBASE, host);
        }
        Ok(())
    }

    fn set_fast_regs(&self, x: &Regs) {
        let r = &self.space.region;
        let off = self.slot_off();
        let s = |i: u64, v: u64| r.write_u64(off + CTX_GREGS + 8 * i, v);
        s(G_R8, x.r8);
        s(G_R9, x.r9);
        s(G_R10, x.r10);
        s(G_R11, x.r11);
        s(G_R12, x.r12);
        s(G_R13, x.r13);
        s(G_R14, x.r14);
        s(G_R15, x.r15);
        s(G_RDI, x.rdi);
        s(G_RSI, x.rsi);
        s(G_RBP, x.rbp);
        s(G_RBX, x.rbx);
        s(G_RDX, x.rdx);
        s(G_RAX, x.rax);
        s(G_RCX, x.rcx);
        s(G_RSP, x.rsp);
        s(G_RIP, x.rip);
        // popfq in user mode changes only the flags a program may.
        s(G_EFL, x.eflags);
        if canonical(x.fs_base) {
            r.write_u64(off + CTX_FSBASE, x.fs_base);
        }
    }

    /// Whether the fast path can resume the thread at `r` by itself: it
    /// jumps through rcx (equal to rip after a `syscall`) and leaves the
    /// gs base at the slot.
    fn fast_resumable(r: &Regs) -> bool {
        r.rcx == r.rip && r.gs_base == 0 && canonical(r.rip) && canonical(r.fs_base)
    }

    /// Lets the thread go on with `regs` and waits for its next trap.
    pub fn run(&mut self, regs: &Regs) -> Result<StopEvent, PlatformError> {
        if !self.alive {
            return Ok(StopEvent::Gone);
        }
        self.set_regs(regs)?;
        let fast = self.event()?.kind != KIND_FRAME;
        if fast && !Self::fast_resumable(regs) {
            self.bounce = Some(*regs);
            self.resume(STATE_BOUNCE);
        } else {
            self.resume(STATE_RESUME);
        }
        // Only adaptive polling needs the clock (see `adapt`).
        let resumed = ADAPTIVE.load(Ordering::Relaxed).then(Instant::now);
        let ev = loop {
            let Some(ev) = self.wait_event()? else {
                return Ok(StopEvent::Gone);
            };
            self.event = Some(ev);
            if let Some(tail) = self.read_site_tail(&ev) {
                self.set_greg(ev.ucontext, G_RIP, tail);
                self.resume(STATE_RESUME);
                continue;
            }
            let Some(regs) = self.bounce.take() else {
                break ev;
            };
            if !self.is_bounce(&ev) {
                // The fast path reported an interrupt first (its registers
                // are the ones it was to resume with) or the application
                // broke the protocol: either way, a stop as it is.
                break ev;
            }
            self.finish_bounce(&regs)?;
            let pending = self.space.region.word(self.slot_off() + CTX_FAST_PENDING);
            if pending.swap(0, Ordering::SeqCst) != 0 {
                // An interrupt came while it bounced: stop here, at the
                // registers it was to resume with.
                return Ok(interrupt_event());
            }
            self.resume(STATE_RESUME);
        };
        if let Some(resumed) = resumed {
            let now = Instant::now();
            // How long the sentry held the thread, and how long it ran.
            let served = self
                .stopped_at
                .map_or(Duration::ZERO, |t| resumed.saturating_duration_since(t));
            self.stopped_at = Some(now);
            self.adapt(now - resumed, served, ev.syscall);
        }
        if ev.syscall.is_some() {
            return Ok(StopEvent::Syscall);
        }
        match ev.kind {
            KIND_FAST_INTERRUPT => return Ok(interrupt_event()),
            KIND_FAST_SYSCALL => {
                return Ok(StopEvent::Signal {
                    signo: libc::SIGSEGV,
                    si_code: 1, // SEGV_MAPERR
                    addr: 0,
                });
            }
            _ => {}
        }
        let r = &self.space.region;
        let si_code = r.word(ev.siginfo + SI_CODE).load(Ordering::Relaxed) as i32;
        let addr = r.read_u64(ev.siginfo + SI_ADDR);
        Ok(StopEvent::Signal {
            signo: ev.signo,
            si_code,
            addr,
        })
    }

    /// Adaptive polling. A sleeping hand-over on one CPU costs two context
    /// switches per call (~2-5 µs here); polling across CPUs costs a few
    /// cache-line transfers, but keeps two CPUs busy and makes every
    /// munmap or mprotect shoot down the polling CPU's TLB. So a thread
    /// polls only while its calls are quick and come quickly one after
    /// another: after `HOT_STREAK` calls each served within `HOT_SERVE` and
    /// made within `HOT_GAP` of the last resume (a blocking call, such as
    /// a futex wait, is not quick: polling through it only burns a CPU),
    /// and while no more than one thread per two CPUs polls, it moves
    /// to another CPU and both sides poll (`HOT_SPIN_US`). `COLD_STREAK`
    /// slower calls in a row, a gap of `COLD_GAP`, a fault or a call that
    /// changes the address space or the process (mmap, clone, execve...)
    /// end it, and it goes back beside its sentry thread.
    fn adapt(&mut self, gap: Duration, served: Duration, syscall: Option<u64>) {
        let ends = syscall.is_none_or(ends_polling) || gap >= COLD_GAP;
        if !ends && gap < HOT_GAP && served < HOT_SERVE {
            self.slow = 0;
            self.streak = self.streak.saturating_add(1);
            if !self.hot && self.streak >= HOT_STREAK {
                self.set_hot(true);
            }
            return;
        }
        self.streak = 0;
        self.slow = self.slow.saturating_add(1);
        if self.hot && (ends || self.slow >= COLD_STREAK) {
            self.set_hot(false);
        }
    }

    fn set_hot(&mut self, hot: bool) {
        if hot {
            // Only a process's only thread, and at most one polling thread
            // per two CPUs (each keeps two busy): otherwise threads that
            // talk to each other (a futex ping-pong) only take CPU from
            // each other, 2-4x slower here.
            let max = (CPUS.load(Ordering::Relaxed) / 2).max(1);
            if !admit_hot(self.space.threads(), &HOT_THREADS, max) {
                self.streak = 0;
                return;
            }
        } else if self.hot {
            HOT_THREADS.fetch_sub(1, Ordering::SeqCst);
        } else {
            return;
        }
        self.hot = hot;
        let polls = if hot {
            HOT_POLLS.load(Ordering::Relaxed)
        } else {
            0
        };
        self.space
            .region
            .word(self.slot_off() + CTX_SPIN)
            .store(polls, Ordering::Relaxed);
        if hot {
            pin_elsewhere(self.tid);
        } else {
            pin_here(self.tid);
        }
    }

    /// Whether `ev` is the fast path's bounce trap.
    fn is_bounce(&self, ev: &Event) -> bool {
        let (start, end) = code_range();
        let rip = self.greg(ev.ucontext, G_RIP);
        ev.kind == KIND_FRAME
            && ev.signo == libc::SIGSYS
            && ev.syscall == Some(BOUNCE_NR)
            && (start..end).contains(&rip)
    }

    /// Puts the registers (and FP state, if the sentry changed it) the
    /// fast path could not restore into its bounce trap's frame.
    fn finish_bounce(&self, regs: &Regs) -> Result<(), PlatformError> {
        self.set_regs(regs)?;
        let off = self.slot_off();
        let r = &self.space.region;
        if r.word(off + CTX_FP_CHANGED).load(Ordering::SeqCst) != 0 {
            let mut area = vec![0u8; XSIZE.load(Ordering::Relaxed) as usize];
            r.read_bytes(off + FAST_XSAVE, &mut area);
            self.set_xstate(&area)?;
            r.word(off + CTX_FP_CHANGED).store(0, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Hands the thread back to its handler with `state`.
    fn resume(&mut self, state: u32) {
        self.event = None;
        let off = self.slot_off();
        self.state().swap(state, Ordering::SeqCst);
        if self
            .space
            .region
            .word(off + CTX_STUB_WAITING)
            .load(Ordering::SeqCst)
            != 0
        {
            futex_wake(self.state());
        }
    }

    /// The frame's XSAVE area: (region offset, length).
    fn fpstate(&self) -> Result<(u64, u64), PlatformError> {
        let uc = self.event()?.ucontext;
        let r = &self.space.region;
        let bad = |what: &str| PlatformError::Unexpected {
            pid: self.tid,
            what: format!("systrap frame: {what}"),
        };
        let fp_addr = r.read_u64(uc + UC_FPREGS);
        let fp = self
            .on_altstack(fp_addr, 512)
            .ok_or_else(|| bad("FP state outside the alternate stack"))?;
        let magic = r.word(fp + 464).load(Ordering::Relaxed);
        let size = r.word(fp + 480).load(Ordering::Relaxed) as u64;
        let len = if magic == FP_XSTATE_MAGIC1 && size >= 576 {
            size
        } else {
            512
        };
        self.on_altstack(fp_addr, len)
            .ok_or_else(|| bad("FP state runs off the alternate stack"))?;
        Ok((fp, len))
    }

    pub fn get_xstate(&self) -> Result<Vec<u8>, PlatformError> {
        if self.event()?.kind != KIND_FRAME {
            let mut v = vec![0u8; XSIZE.load(Ordering::Relaxed) as usize];
            self.space
                .region
                .read_bytes(self.slot_off() + FAST_XSAVE, &mut v);
            return Ok(v);
        }
        let (fp, len) = self.fpstate()?;
        let mut v = vec![0u8; len as usize];
        self.space.region.read_bytes(fp, &mut v);
        Ok(v)
    }

    /// Loads `data` (standard XSAVE format) as the FP state the thread
    /// returns to. The kernel validates it at rt_sigreturn; the parts it
    /// would refuse (feature bits the frame lacks, the software-reserved
    /// bytes that describe the frame) are kept as the kernel made them.
    pub fn set_xstate(&self, data: &[u8]) -> Result<(), PlatformError> {
        if self.event()?.kind != KIND_FRAME {
            return self.set_fast_xstate(data);
        }
        let (fp, len) = self.fpstate()?;
        let r = &self.space.region;
        let n = (len as usize).min(data.len());
        let mut area = vec![0u8; len as usize];
        r.read_bytes(fp, &mut area);
        let keep_sw: Vec<u8> = area[464..512].to_vec();
        area[..n].copy_from_slice(&data[..n]);
        area[464..512].copy_from_slice(&keep_sw);
        if len >= 576 {
            let xfeatures = u64::from_le_bytes(keep_sw[8..16].try_into().unwrap_or([0; 8]));
            let bv = u64::from_le_bytes(area[512..520].try_into().unwrap_or([0; 8])) & xfeatures;
            area[512..520].copy_from_slice(&bv.to_le_bytes());
            // XCOMP_BV and the reserved header bytes must be zero.
            area[520..576].fill(0);
        }
        // MXCSR's reserved bits must be zero.
        let mxcsr = u32::from_le_bytes(area[24..28].try_into().unwrap_or([0; 4])) & 0xffff;
        area[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        r.write_bytes(fp, &area);
        Ok(())
    }

    /// Loads `data` as the FP state the fast path restores (with `xrstor`,
    /// which faults on what it refuses: so the header is made valid here,
    /// as `set_xstate` does for a frame).
    fn set_fast_xstate(&self, data: &[u8]) -> Result<(), PlatformError> {
        let len = XSIZE.load(Ordering::Relaxed) as usize;
        let mask = XMASK.load(Ordering::Relaxed);
        let mut area = vec![0u8; len];
        let n = len.min(data.len());
        area[..n].copy_from_slice(&data[..n]);
        if len >= 576 {
            let bv = u64::from_le_bytes(area[512..520].try_into().unwrap_or([0; 8])) & mask;
            area[512..520].copy_from_slice(&bv.to_le_bytes());
            area[520..576].fill(0);
        }
        let mxcsr = u32::from_le_bytes(area[24..28].try_into().unwrap_or([0; 4])) & 0xffff;
        area[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        let off = self.slot_off();
        let r = &self.space.region;
        r.write_bytes(off + FAST_XSAVE, &area);
        r.write_u64(off + CTX_XMASK, mask);
        r.word(off + CTX_FP_CHANGED).store(1, Ordering::SeqCst);
        Ok(())
    }

    /// Ends this host thread alone (the application thread called exit).
    pub fn exit(&mut self) {
        self.set_hot(false);
        if !self.alive {
            return;
        }
        if self.event.is_some() {
            self.resume(STATE_EXIT);
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.state().load(Ordering::SeqCst) != STATE_GONE
                && !self.space.dead.load(Ordering::SeqCst)
                && Instant::now() < deadline
            {
                futex_wait(self.state(), STATE_EXIT, Duration::from_millis(100));
            }
            if self.state().load(Ordering::SeqCst) == STATE_GONE {
                self.space.free_slot(self.slot);
            }
        }
        self.alive = false;
    }

    pub fn kill(&mut self) {
        self.set_hot(false);
        self.alive = false;
        self.space.kill();
    }

    pub fn forget(&mut self) {
        self.alive = false;
    }

    pub fn tid(&self) -> i32 {
        self.tid
    }

    pub fn tgid(&self) -> i32 {
        self.space.tgid
    }

    pub fn space(&self) -> &Arc<Space> {
        &self.space
    }
}

/// The stop the fast path reports for an interrupt it postponed (as the
/// handler reports the interrupt signal, sent with tgkill).
fn interrupt_event() -> StopEvent {
    StopEvent::Signal {
        signo: super::INTERRUPT_SIGNAL,
        si_code: libc::SI_TKILL,
        addr: 0,
    }
}

/// The stub addresses of systrap's code.
fn code_range() -> (u64, u64) {
    let (code, _) = stub_code::code();
    (systrap_code_addr(), systrap_code_addr() + code.len() as u64)
}

/// Reads application memory of the process `tid` belongs to.
fn read_app(tid: i32, addr: u64, buf: &mut [u8]) -> bool {
    super::ptrace::read_process_mem(nix::unistd::Pid::from_raw(tid), addr, buf).is_ok()
}

/// Takes over a thread [`Space::clone_thread`] made: waits for its first
/// trap (the start-up call) and returns it stopped there.
fn adopt_thread(space: Arc<Space>, slot: usize, tid: i32) -> Result<Thread, PlatformError> {
    let mut t = Thread {
        space,
        slot,
        tid,
        event: None,
        alive: true,
        bounce: None,
        hot: false,
        streak: 0,
        slow: 0,
        stopped_at: None,
    };
    let unexpected = |what: String| PlatformError::Unexpected { pid: tid, what };
    match t.wait_event()? {
        None => Err(PlatformError::Gone { pid: tid }),
        Some(ev) if ev.syscall == Some(START_NR) => {
            t.event = Some(ev);
            place(tid);
            Ok(t)
        }
        Some(ev) => Err(unexpected(format!(
            "new thread's first trap was signal {} ({:?})",
            ev.signo, ev.syscall
        ))),
    }
}

impl Space {
    /// Adds an application thread to the process and takes it over.
    fn new_thread(self: &Arc<Self>) -> Result<Thread, PlatformError> {
        let tid = self.clone_thread()?;
        if tid < 0 {
            return Err(PlatformError::Spawn(Errno::from_raw(-tid as i32)));
        }
        let taken = lock(pending_threads()).remove(&(tid as i32));
        let (space, slot) = taken.ok_or(PlatformError::Gone { pid: tid as i32 })?;
        adopt_thread(space, slot, tid as i32)
    }
}

/// Adaptive polling (see `Thread::adapt`): on unless polling is fixed
/// (`SPIN`) or there is one CPU.
static ADAPTIVE: AtomicBool = AtomicBool::new(false);
/// `HOT_SPIN_US` in the stub's polls.
static HOT_POLLS: AtomicU32 = AtomicU32::new(0);
const HOT_STREAK: u32 = 16;
const HOT_GAP: Duration = Duration::from_micros(20);
const COLD_STREAK: u32 = 8;
/// Longer than this in the sentry, and the call is not worth polling
/// through (it blocked, or did real work): the stub would only spin.
const HOT_SERVE: Duration = Duration::from_micros(20);
/// Threads polling now (see `Thread::set_hot`).
static HOT_THREADS: AtomicU32 = AtomicU32::new(0);
const COLD_GAP: Duration = Duration::from_millis(1);
const HOT_SPIN_US: u32 = 20;

/// Whether a thread of a process with `threads` threads may start
/// polling, with `hot` threads polling already and room for `max`; counts
/// it in `hot` if so. (It once took one off `hot` for a thread of a
/// multi-threaded process it had not counted: the counter wrapped, and no
/// thread of the sandbox polled again, every call then costing two context
/// switches, ~5 µs instead of ~0.45.)
fn admit_hot(threads: usize, hot: &AtomicU32, max: u32) -> bool {
    if threads != 1 {
        return false;
    }
    if hot.fetch_add(1, Ordering::SeqCst) >= max {
        hot.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    true
}

/// Calls after which a thread stops polling: they change its address
/// space (whose TLB shootdowns would hit the polling CPU) or its process.
fn ends_polling(nr: u64) -> bool {
    [
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ]
    .contains(&(nr as i64))
}

/// Lets host thread `tid` run on every CPU but the calling sentry
/// thread's, so both can poll at once.
fn pin_elsewhere(tid: i32) {
    // SAFETY: sched_getcpu has no arguments.
    let me = unsafe { libc::sched_getcpu() };
    allow_cpus(tid, Some(me));
}

/// Where a new application thread runs. Without polling, on its sentry
/// thread's CPU: a futex hand-over on one CPU costs ~1.7 µs, a wake-up
/// across CPUs 10-80 µs here. With polling, on any CPU, so it runs beside
/// its polling sentry thread (it inherited the pinning of the sentry
/// thread that made its process). See README.md beside `platform/`.
fn place(tid: i32) {
    if SPIN.load(Ordering::Relaxed) == 0 {
        pin_here(tid);
    } else {
        allow_cpus(tid, None);
    }
}

/// Lets host thread `tid` run on every CPU of the sandbox but `except`.
fn allow_cpus(tid: i32, except: Option<i32>) {
    let mut set = nix::sched::CpuSet::new();
    for c in 0..CPUS.load(Ordering::Relaxed).max(1) as usize {
        if Some(c as i32) != except {
            let _ = set.set(c);
        }
    }
    let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set);
}

/// Pins host thread `tid` to the calling sentry thread's CPU (sentry
/// threads are pinned). For a process's syscall thread, pinned beside the
/// sentry thread that drives the process's first thread, a request then
/// costs two switches on one CPU, as a ptrace stop does, instead of a
/// wake-up across CPUs (~10-80 µs here).
fn pin_here(tid: i32) {
    // SAFETY: sched_getcpu has no arguments.
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 {
        return;
    }
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu as usize).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set);
    }
}

// ---- creating stub processes -----------------------------------------------

/// Stub addresses of the code's entry points.
fn entry(offset: fn(&stub_code::Entries) -> u64) -> u64 {
    let (_, entries) = stub_code::code();
    systrap_code_addr() + offset(&entries)
}

/// Has a stub stopped under ptrace make and map its region itself (over
/// whatever is there: a forked child's copy of its parent's), and maps it
/// in the sentry too. Returns it and the stub's own fd for it.
fn make_region(stub: &mut Stub) -> Result<(Region, i32), PlatformError> {
    let pid = stub.pid();
    let fd = stub.inject_at(
        entry(|e| e.make_region),
        entry(|e| e.make_region_trap),
        0,
        [0; 6],
    )?;
    if fd < 0 {
        return Err(PlatformError::Spawn(Errno::from_raw(-fd as i32)));
    }
    let fd = fd as i32;
    let ours = super::notif::take_fd(pid, fd).map_err(PlatformError::Spawn)?;
    let region = Region::from_fd(ours).map_err(PlatformError::Spawn)?;
    Ok((region, fd))
}

/// Sends a stopped, ptrace-attached leader to the syscall loop and lets it
/// go; a fresh process's installs the syscall thread's filter first (a
/// forked one inherited it).
fn start_syscall_thread(stub: Stub, fresh: bool, region_fd: i32) -> Result<(), PlatformError> {
    let mut r = stub.initial_regs;
    r.rip = entry(|e| e.syscall_thread);
    r.rsp = region_base() + SYSCALL_THREAD_STACK_TOP;
    r.r15 = region_base();
    r.r14 = fresh as u64;
    r.r13 = region_fd as u64;
    r.r12 = 0;
    r.orig_rax = u64::MAX;
    stub.set_regs(&r)?;
    stub.detach();
    Ok(())
}

/// Sets the signal mask of a stub thread stopped under ptrace.
///
/// Every injection ends in an `int3`, whose SIGTRAP the kernel would find
/// blocked if the mask blocked it, and then reset SIGTRAP's (process-wide)
/// handler to the default: so injections only ever run unblocked, and the
/// syscall thread blocks its signals itself once it runs.
fn set_mask(stub: &mut Stub, mask: u64) -> Result<(), PlatformError> {
    let pid = stub.pid();
    stub.write_mem(stub_scratch(), &mask.to_le_bytes())
        .map_err(|errno| PlatformError::Ptrace {
            op: "write sigmask",
            pid,
            errno,
        })?;
    let got = stub.inject(
        libc::SYS_rt_sigprocmask as u64,
        [libc::SIG_SETMASK as u64, stub_scratch(), 0, 8, 0, 0],
    )?;
    if got != 0 {
        return Err(PlatformError::Unexpected {
            pid,
            what: format!("rt_sigprocmask gave {got}"),
        });
    }
    Ok(())
}

/// Creates a stub process on systrap: the exec'd stub becomes the syscall
/// thread, and its first application thread is returned, stopped in its
/// start-up trap.
pub fn spawn(image: &StubImage) -> Result<Stub, PlatformError> {
    let mut leader = Stub::spawn_traced(image)?;
    // The syscall thread installs the handlers and seals the code page
    // itself as it starts (see stub_code).
    let (region, region_fd) = make_region(&mut leader)?;
    let (vdso_base, initial_sp, initial_regs) =
        (leader.vdso_base, leader.initial_sp, leader.initial_regs);
    let tgid = leader.pid();
    start_syscall_thread(leader, true, region_fd)?;
    pin_here(tgid);
    let sites = Sites::new(entry(|e| e.fast_entry)).map_err(PlatformError::Spawn)?;
    let space = Space::new(tgid, region, Arc::new(sites), false);
    let thread = space.new_thread()?;
    Ok(Stub::from_systrap(
        thread,
        vdso_base,
        initial_sp,
        initial_regs,
    ))
}

/// Takes over a host id `Stub::inject_clone_thread` or `inject_fork`
/// returned: a new thread of a process, or a forked process (which gets
/// its own region and syscall thread, and a first application thread).
pub fn attach(pid: i32) -> Result<Stub, PlatformError> {
    let pending = lock(pending_threads()).remove(&pid);
    if let Some((space, slot)) = pending {
        let thread = adopt_thread(space, slot, pid)?;
        return Ok(Stub::from_systrap(thread, 0, 0, zeroed_regs()));
    }
    let mut leader = Stub::attach_traced(pid)?;
    // A copy of the parent's syscall thread: unblock its signals before
    // anything else (see `set_mask`), then give it a region of its own.
    let prepared = set_mask(&mut leader, 0).and_then(|()| make_region(&mut leader));
    let (region, region_fd) = match prepared {
        Ok(r) => r,
        Err(e) => {
            leader.kill();
            return Err(e);
        }
    };
    let initial_regs = leader.initial_regs;
    start_syscall_thread(leader, false, region_fd)?;
    pin_here(pid);
    let inherited = lock(pending_forks()).remove(&pid);
    let mapped = inherited.is_some();
    let sites = match inherited {
        Some(s) => s,
        None => Arc::new(Sites::new(entry(|e| e.fast_entry)).map_err(PlatformError::Spawn)?),
    };
    let space = Space::new(pid, region, sites, mapped);
    let thread = space.new_thread()?;
    Ok(Stub::from_systrap(
        thread,
        0,
        initial_regs.rsp,
        initial_regs,
    ))
}

fn zeroed_regs() -> Regs {
    // SAFETY: user_regs_struct is plain old data; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

// ---- patching system call sites ---------------------------------------------

/// membarrier(2)'s command (`make_region` registered the process for it).
const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: u64 = 1 << 5;

impl Thread {
    /// The site of the system call the thread stopped at, once it is
    /// worth patching (see `sites::PATCH_AFTER`): a trap through the
    /// handler from `mov $nr, %eax; syscall`.
    pub fn hot_site(&self) -> Option<Site> {
        if !PATCHING.load(Ordering::Relaxed) || self.space.patch_ready.load(Ordering::Relaxed) == 2
        {
            return None;
        }
        let ev = self.event?;
        let nr = ev.syscall?;
        if ev.kind != KIND_FRAME || ev.site.is_some() || ev.signo != libc::SIGSYS {
            return None;
        }
        let ret = self.greg(ev.ucontext, G_RIP);
        if !self.space.sites.hit(ret) {
            return None;
        }
        let mut before = [0u8; 7];
        if !read_app(self.tid, ret.checked_sub(7)?, &mut before) {
            return None;
        }
        let mut after = [0u8; 6];
        let after = (nr == 0 && read_app(self.tid, ret, &mut after)).then_some(&after);
        sites::patchable(ret, &before, after, nr)
    }
}

/// Patches `site` (in private memory the application maps with `prot`,
/// which includes PROT_EXEC) so its calls take the fast path.
///
/// The seven bytes change while other threads may run them, so the order
/// matters (Linux's text_poke_bp does the same): an `int3` first, then the
/// rest, then the first byte; every thread serialises its instruction
/// stream in between (membarrier SYNC_CORE). A thread reaching the site
/// meanwhile traps at the `int3` or, if it ran the old `mov`, at the
/// invalid opcode where `syscall` was; the sentry runs its call either
/// way (`patched_site_trap`).
pub fn patch_site(stub: &mut Stub, site: Site, prot: i32) -> Result<(), PlatformError> {
    let Some(space) = stub.systrap_thread().map(|t| t.space.clone()) else {
        return Ok(());
    };
    let _one = lock(&space.patching);
    if !space.ready_to_patch(stub)? {
        return Ok(());
    }
    let a = site.addr;
    let len = site.byte_len() as usize;
    let mut original = [0u8; 10];
    // The bytes must still be the shape the trap found (another thread
    // may have remapped the code since).
    if stub.read_mem(a, &mut original[..len]).is_err() || !site.matches(&original[..len]) {
        return Ok(());
    }
    let Some((_, patch)) = space.sites.add(site) else {
        return Ok(());
    };
    let p = &patch.bytes;
    let start = a & !0xfff;
    let end = (a + len as u64 + 0xfff) & !0xfff;
    let writable = prot | libc::PROT_READ | libc::PROT_WRITE;
    let mprotect = |p: i32| {
        space.request(
            KIND_PLAIN,
            libc::SYS_mprotect as u64,
            [start, end - start, p as u64, 0, 0, 0],
        )
    };
    if mprotect(writable)? != 0 {
        return Ok(());
    }
    let sync = || {
        space.request(
            KIND_PLAIN,
            libc::SYS_membarrier as u64,
            [MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0, 0, 0, 0],
        )
    };
    // (offset, bytes, serialise every thread after): each step leaves
    // code that any thread, wherever it stands in the site, either runs
    // as before or traps in (see `patched_site_trap`, `read_site_tail`).
    let steps: Vec<(usize, &[u8], bool)> = match site.shape {
        Shape::MovSyscall => vec![
            (0, &[0xcc], true),
            (1, &p[1..5], false),
            (5, &p[5..6], false),
            (6, &p[6..7], true),
        ],
        // The `cmp`'s first byte becomes 0x06 before the rest of it
        // changes; the `syscall`'s first byte becomes the `and` before its
        // second does.
        Shape::XorSyscallCmp(_) => vec![
            (0, &[0xcc], true),
            (4, &p[4..5], true),
            (5, &p[5..10], true),
            (2, &p[2..3], true),
            (3, &p[3..4], false),
            (1, &p[1..2], true),
        ],
    };
    let mut done = true;
    for (at, bytes, serialise) in steps {
        if stub.write_mem(a + at as u64, bytes).is_err() {
            done = false;
            break;
        }
        if serialise {
            sync()?;
        }
    }
    // The first byte last, with no serialisation after it: a thread that
    // still sees the int3 traps, and the sentry runs its call.
    if !(done && stub.write_mem(a, &p[..1]).is_ok()) {
        // The memory changed under us (unmapped, say): put the original
        // back where we can, behind an int3 and in the reverse order, so
        // that each step is again one a thread anywhere in the site
        // survives; a thread at the int3 meanwhile still runs its call
        // through the sentry (which accepts the original first byte too).
        let o = &original;
        let undo: Vec<(usize, &[u8])> = match site.shape {
            Shape::MovSyscall => vec![(0, &[0xcc]), (1, &o[1..5]), (6, &o[6..7]), (5, &o[5..6])],
            Shape::XorSyscallCmp(_) => vec![
                (0, &[0xcc]),
                (1, &o[1..2]),
                (3, &o[3..4]),
                (2, &o[2..3]),
                (5, &o[5..10]),
                (4, &o[4..5]),
            ],
        };
        for (at, bytes) in undo {
            let _ = stub.write_mem(a + at as u64, bytes);
            let _ = sync();
        }
        let _ = stub.write_mem(a, &o[..1]);
        let _ = sync();
    }
    mprotect(prot)?;
    Ok(())
}

impl Space {
    /// Maps the site table and registers for membarrier, once per process;
    /// false if either cannot be done here.
    fn ready_to_patch(&self, stub: &mut Stub) -> Result<bool, PlatformError> {
        match self.patch_ready.load(Ordering::SeqCst) {
            1 => return Ok(true),
            2 => return Ok(false),
            _ => {}
        }
        // `make_region` registered the process for SYNC_CORE; without it
        // the call fails with EPERM.
        let registered = self.request(
            KIND_PLAIN,
            libc::SYS_membarrier as u64,
            [MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0, 0, 0, 0],
        )? == 0;
        let mapped = registered
            && (self.sites_mapped.load(Ordering::SeqCst)
                || stub.map_host_fd(
                    self.sites.memfd().as_raw_fd(),
                    SITES_BASE,
                    SITES_SIZE,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
                    0,
                )? == SITES_BASE as i64);
        if mapped {
            self.sites_mapped.store(true, Ordering::SeqCst);
        } else {
            tracing::debug!(
                "pid {}: no system call patching (membarrier or the site table)",
                self.tgid
            );
        }
        self.patch_ready
            .store(if mapped { 1 } else { 2 }, Ordering::SeqCst);
        Ok(mapped)
    }
}

// ---- the Stub operations on systrap ----------------------------------------

impl Thread {
    /// Runs a validated memory-management call in the process.
    pub fn inject(&self, nr: u64, args: [u64; 6]) -> Result<i64, PlatformError> {
        self.space.request(KIND_PLAIN, nr, args)
    }

    pub fn inject_fork(&self) -> Result<i64, PlatformError> {
        self.space.fork()
    }

    pub fn inject_clone_thread(&self) -> Result<i64, PlatformError> {
        self.space.clone_thread()
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        if self.hot {
            HOT_THREADS.fetch_sub(1, Ordering::SeqCst);
        }
        // A slot is reused only once its thread is known to be gone.
        if self.state().load(Ordering::SeqCst) == STATE_GONE {
            self.space.free_slot(self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_admission_counts_only_the_threads_it_admits() {
        let hot = AtomicU32::new(0);
        // A multi-threaded process's thread is refused, the count untouched.
        assert!(!admit_hot(2, &hot, 1));
        assert_eq!(hot.load(Ordering::SeqCst), 0);
        assert!(admit_hot(1, &hot, 1));
        assert_eq!(hot.load(Ordering::SeqCst), 1);
        // Full: refused, still one.
        assert!(!admit_hot(1, &hot, 1));
        assert_eq!(hot.load(Ordering::SeqCst), 1);
        hot.fetch_sub(1, Ordering::SeqCst);
        assert!(admit_hot(1, &hot, 1));
    }
}
