//! The fast syscall path of the ptrace platform: seccomp user
//! notifications.
//!
//! A stub thread that runs with the filter below never stops in ptrace for
//! most system calls: the host kernel suspends the thread and hands the
//! call (number, arguments, instruction pointer) to the sentry over a
//! per-thread listener fd; the sentry emulates it and sends back the result,
//! which becomes the call's return value. The host never executes the call.
//! On this machine a round trip costs ~2 µs instead of ~9 µs for a ptrace
//! stop (see docs/benchmarks.md), as the kernel hands the CPU straight to
//! the woken side (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`).
//!
//! The thread stays ptrace-attached, so everything else works as before:
//! faults and kicks still arrive as ptrace stops, and calls whose emulation
//! needs the thread's full registers or injected host calls (memory
//! management, clone, execve, sigreturn, ...) are sent to the tracer as
//! `SECCOMP_RET_TRACE` stops instead. So are calls made from the stub's own
//! code, which is how the sentry's injected calls still run (the filter is
//! the stub's, and an application jumping into the stub gains nothing: its
//! calls there stop in the tracer like any other).
//!
//! A tracer waiting for a notification must also notice ptrace stops; the
//! kernel reports those only to waitpid and as SIGCHLD to the sentry
//! process. A watcher thread takes SIGCHLD (blocked everywhere else) and
//! wakes every tracer that is waiting, which then checks its own tracee
//! with `WNOHANG`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nix::errno::Errno;

use super::bpf::{
    fprog_image, jump, stmt, AUDIT_ARCH_X86_64, DATA_ARCH, DATA_IP_HI, DATA_IP_LO, DATA_NR, JEQ_K,
    JGE_K, LD_W_ABS, RET_K, SECCOMP_RET_ALLOW, SECCOMP_RET_TRACE, SECCOMP_RET_USER_NOTIF,
    X32_SYSCALL_BIT,
};

const SECCOMP_SET_MODE_FILTER: u64 = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: u64 = 1 << 3;

// ioctls on the listener (linux/seccomp.h: _IOWR('!', 0, struct
// seccomp_notif) and so on; the sizes are asserted below).
const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xC050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xC018_2101;
const SECCOMP_IOCTL_NOTIF_SET_FLAGS: u64 = 0x4008_2104;
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const _: () = assert!(std::mem::size_of::<SeccompNotif>() == 0x50);
const _: () = assert!(std::mem::size_of::<SeccompNotifResp>() == 0x18);

/// System calls whose emulation always needs the stopped thread's full
/// registers (they change rip or rsp, or read them): they take the ptrace
/// path. Others that turn out to need the thread stopped (memory
/// management injects host calls) are notified and then finished through a
/// stop, which measured cheaper than sending them to the tracer directly.
const TRACED_SYSCALLS: &[i64] = &[
    libc::SYS_rt_sigreturn,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_arch_prctl,
    libc::SYS_sigaltstack,
];

/// The stub's code page (see `stub_image`): calls made from there are the
/// sentry's injections (or an application imitating them). As the high
/// and low halves of the instruction pointer the filter compares: the
/// page is 64 KiB aligned, so it never straddles a 4 GiB boundary.
fn stub_code_page() -> (u32, u32, u32) {
    let base = super::stub_image::stub_base();
    let lo = base as u32;
    ((base >> 32) as u32, lo, lo + STUB_CODE_PAGE)
}

/// The stub's code page's size.
const STUB_CODE_PAGE: u32 = 0x1000;

/// The filter each stub thread installs for itself.
pub fn filter() -> Vec<libc::sock_filter> {
    let (code_hi, code_lo, code_end) = stub_code_page();
    let mut f = vec![
        // Another ABI (int $0x80, x32): the tracer sees it as it does today.
        stmt(LD_W_ABS, DATA_ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, SECCOMP_RET_TRACE),
        stmt(LD_W_ABS, DATA_NR),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, SECCOMP_RET_TRACE),
        // From the stub's code: pause (where new threads and forked stubs
        // park until their tracer attaches) runs; anything else stops in
        // ptrace. The whole instruction pointer is checked: the program's
        // own code (its libc) may lie in the same 4 GiB as the stub, and
        // its pause must not run on the host.
        stmt(LD_W_ABS, DATA_IP_HI),
        jump(JEQ_K, code_hi, 0, 7),
        stmt(LD_W_ABS, DATA_IP_LO),
        jump(JGE_K, code_lo, 0, 5),
        jump(JGE_K, code_end, 4, 0),
        stmt(LD_W_ABS, DATA_NR),
        jump(JEQ_K, libc::SYS_pause as u32, 0, 1),
        stmt(RET_K, SECCOMP_RET_ALLOW),
        stmt(RET_K, SECCOMP_RET_TRACE),
        // The application's calls.
        stmt(LD_W_ABS, DATA_NR),
    ];
    let n = TRACED_SYSCALLS.len();
    for (i, nr) in TRACED_SYSCALLS.iter().enumerate() {
        // Jump to the TRACE return after the list on a match.
        let to_trace = (n - i) as u8;
        f.push(jump(JEQ_K, *nr as u32, to_trace, 0));
    }
    f.push(stmt(RET_K, SECCOMP_RET_USER_NOTIF));
    f.push(stmt(RET_K, SECCOMP_RET_TRACE));
    f
}

/// The filter as it sits in the stub at `at` (see `bpf::fprog_image`).
pub fn filter_image(at: u64) -> Vec<u8> {
    fprog_image(&filter(), at)
}

/// The arguments of `seccomp(2)` that install the filter with a listener.
pub fn install_args(fprog_addr: u64) -> [u64; 6] {
    [
        SECCOMP_SET_MODE_FILTER,
        SECCOMP_FILTER_FLAG_NEW_LISTENER,
        fprog_addr,
        0,
        0,
        0,
    ]
}

/// One system call a stub thread is suspended in.
#[derive(Clone, Copy, Debug)]
pub struct Notification {
    pub id: u64,
    /// Host tid of the calling thread.
    pub tid: i32,
    pub nr: i64,
    pub ip: u64,
    pub args: [u64; 6],
}

/// A thread's listener: where its calls arrive and their results go.
pub struct Listener {
    fd: OwnedFd,
    waker: Arc<Waker>,
    /// The SIGCHLD generation of the last check for a stop.
    seen_generation: u64,
}

/// Counts the SIGCHLDs the watcher took: a waiter that saw the count
/// change since its last check looks for a stop before sleeping.
static SIGCHLD_GENERATION: AtomicU64 = AtomicU64::new(0);

impl Listener {
    /// Takes over the listener fd the stub's seccomp(2) returned (already
    /// copied into the sentry).
    pub fn new(fd: OwnedFd) -> Result<Listener, Errno> {
        // Best effort (Linux 6.6+): the woken side runs on the waker's CPU
        // at once instead of waiting for a cross-CPU wake-up.
        // SAFETY: an ioctl on our own listener fd with an integer argument.
        unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        };
        Ok(Listener {
            fd,
            waker: Waker::register()?,
            // Unlike any count: the first wait checks.
            seen_generation: u64::MAX,
        })
    }

    /// Waits until a notification is ready (`Ok(true)`), or until some
    /// ptrace stop may have happened (`Ok(false)`: the caller checks its
    /// tracee with WNOHANG and calls again). `stopped` checks for a stop
    /// that happened before the waker was armed; it runs only when a
    /// SIGCHLD came since its last run, so the fast path costs no extra
    /// system call.
    pub fn wait(&mut self, stopped: impl FnOnce() -> bool) -> Result<bool, Errno> {
        self.waker.armed.store(true, Ordering::SeqCst);
        let result = (|| {
            let generation = SIGCHLD_GENERATION.load(Ordering::SeqCst);
            if generation != self.seen_generation {
                self.seen_generation = generation;
                if stopped() {
                    return Ok(false);
                }
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.waker.event.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: poll on two fds we own, with a correctly sized array.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                let e = Errno::last();
                return if e == Errno::EINTR { Ok(false) } else { Err(e) };
            }
            if fds[1].revents != 0 {
                self.waker.drain();
                return Ok(false);
            }
            if fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                // The filter is gone (the thread died): a stop will tell.
                return Ok(false);
            }
            Ok(fds[0].revents & libc::POLLIN != 0)
        })();
        self.waker.armed.store(false, Ordering::SeqCst);
        result
    }

    /// Takes the ready notification (call after `wait` said so).
    pub fn receive(&self) -> Result<Notification, Errno> {
        let mut n = SeccompNotif::default();
        // SAFETY: RECV fills exactly one struct seccomp_notif, which we own
        // and which the kernel requires zeroed.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                SECCOMP_IOCTL_NOTIF_RECV as _,
                &mut n as *mut SeccompNotif,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(Notification {
            id: n.id,
            tid: n.pid as i32,
            nr: n.nr as i64,
            ip: n.instruction_pointer,
            args: n.args,
        })
    }

    /// Completes call `id` with `ret` (a negative errno for a failure).
    /// ENOENT: the call is no longer waiting (a signal interrupted it, and
    /// the thread is in, or about to be in, a ptrace stop).
    pub fn send(&self, id: u64, ret: i64) -> Result<(), Errno> {
        let (val, error) = if (-4095..0).contains(&ret) {
            (0, ret as i32)
        } else {
            (ret, 0)
        };
        let resp = SeccompNotifResp {
            id,
            val,
            error,
            flags: 0,
        };
        // SAFETY: SEND reads one struct seccomp_notif_resp, which we own.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                SECCOMP_IOCTL_NOTIF_SEND as _,
                &resp as *const SeccompNotifResp,
            )
        };
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.waker.unregister();
    }
}

/// Wakes one waiting tracer when a ptrace stop may concern it.
struct Waker {
    event: OwnedFd,
    /// In `Listener::wait`: the watcher's wake-ups are only for these.
    armed: AtomicBool,
}

fn wakers() -> &'static Mutex<Vec<Arc<Waker>>> {
    static WAKERS: OnceLock<Mutex<Vec<Arc<Waker>>>> = OnceLock::new();
    WAKERS.get_or_init(|| Mutex::new(Vec::new()))
}

impl Waker {
    fn register() -> Result<Arc<Waker>, Errno> {
        // SAFETY: eventfd(2) with constant flags; we own the result.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(Errno::last());
        }
        let w = Arc::new(Waker {
            // SAFETY: eventfd just returned this fd.
            event: unsafe { OwnedFd::from_raw_fd(fd) },
            armed: AtomicBool::new(false),
        });
        wakers()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(w.clone());
        Ok(w)
    }

    fn unregister(self: &Arc<Self>) {
        wakers()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|w| !Arc::ptr_eq(w, self));
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: an 8-byte write to our own eventfd.
        unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: an 8-byte read from our own non-blocking eventfd.
        unsafe { libc::read(self.event.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// Whether the fast path is on (set once at boot, before any stub runs).
static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns the fast path on: blocks SIGCHLD in the calling thread (call it
/// before the sentry starts other threads, which inherit the mask) and
/// starts the watcher that turns SIGCHLD into wake-ups.
pub fn enable() -> Result<(), Errno> {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGCHLD);
    set.thread_block()?;
    let sfd =
        nix::sys::signalfd::SignalFd::with_flags(&set, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)?;
    std::thread::Builder::new()
        .name("sigchld-watcher".into())
        .spawn(move || watch_sigchld(sfd))
        .map_err(|_| Errno::EAGAIN)?;
    ENABLED.store(true, Ordering::Relaxed);
    Ok(())
}

fn watch_sigchld(sfd: nix::sys::signalfd::SignalFd) {
    // This thread exists before the sentry routes host signals (a
    // terminal's SIGINT to a thread that takes them with sigtimedwait):
    // none of them may land here.
    let _ = nix::sys::signal::SigSet::all().thread_block();
    loop {
        match sfd.read_signal() {
            Ok(Some(_)) => {
                SIGCHLD_GENERATION.fetch_add(1, Ordering::SeqCst);
                let all = wakers()
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                for w in all.iter().filter(|w| w.armed.load(Ordering::SeqCst)) {
                    w.wake();
                }
            }
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("SIGCHLD watcher stopped: {e}");
                return;
            }
        }
    }
}

/// Copies fd `target_fd` of process `pid` into the sentry.
pub fn take_fd(pid: i32, target_fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open of our own traced stub; we own the result.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: pidfd_open just returned this fd.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: pidfd_getfd on that pidfd; we own the result.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: pidfd_getfd just returned this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_jumps_stay_inside_the_program() {
        let f = filter();
        for (i, ins) in f.iter().enumerate() {
            if ins.code & 0x07 == libc::BPF_JMP as u16 {
                assert!(i + 1 + (ins.jt as usize) < f.len(), "insn {i}");
                assert!(i + 1 + (ins.jf as usize) < f.len(), "insn {i}");
            }
        }
        assert!(f.len() < 255, "jump offsets are u8");
    }

    /// Only calls made from the stub's code page may run pause on the
    /// host; the same call from anywhere else, even an address sharing
    /// the page's upper 32 bits (a libc mapped in the same 4 GiB, which
    /// let a program's pause run on the host), is the sentry's.
    #[test]
    fn only_the_stub_code_page_runs_pause() {
        let f = filter();
        let x86 = AUDIT_ARCH_X86_64;
        let pause = libc::SYS_pause as u32;
        let base = crate::platform::stub_image::stub_base();
        let run = |nr: u32, ip: u64| crate::platform::bpf::run(&f, nr, x86, ip, 0);
        assert_eq!(run(pause, base + 0x80), SECCOMP_RET_ALLOW);
        assert_eq!(run(pause, base + 0xfff), SECCOMP_RET_ALLOW);
        assert_eq!(run(libc::SYS_read as u32, base + 0x80), SECCOMP_RET_TRACE);
        for elsewhere in [
            base + 0x1000,
            base - 1,
            base + 0x1_0000,
            (base & !0xffff_ffff) + 0x1234,
        ] {
            if elsewhere >> 12 == base >> 12 {
                continue;
            }
            assert_eq!(
                run(pause, elsewhere),
                SECCOMP_RET_USER_NOTIF,
                "{elsewhere:#x}"
            );
            assert_eq!(
                run(libc::SYS_read as u32, elsewhere),
                SECCOMP_RET_USER_NOTIF
            );
            assert_eq!(run(libc::SYS_clone as u32, elsewhere), SECCOMP_RET_TRACE);
        }
    }
}
