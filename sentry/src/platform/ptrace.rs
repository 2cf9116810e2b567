//! The ptrace platform: one stub process per application address space, one
//! sentry OS thread driving it (only the thread that attached may issue
//! ptrace requests for a tracee).

use std::ffi::CString;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::fd_channel::STUB_CHANNEL_FD;
use super::stub_image::{
    fork_trap_rip, inject_fork, inject_syscall, inject_trap_rip, stub_base, stub_scratch,
    StubImage, STUB_SIZE,
};
use super::{PlatformError, Regs, INTERRUPT_SIGNAL};

/// Why a stub stopped.
#[derive(Debug, Clone, Copy)]
pub enum StopEvent {
    /// The application made a system call (registers hold it).
    Syscall,
    /// The application made a system call that arrived as a seccomp
    /// notification: the thread waits in the host kernel, and only these
    /// registers are known (the call's number in `orig_rax` and `rax`,
    /// its arguments, and `rip`; the rest read as zero). The next `run`
    /// completes the call with `rax`; anything that needs the real
    /// registers first calls [`Stub::take_real_regs`].
    NotifSyscall(Regs),
    /// A signal arrived: either a fault of the application's own code
    /// (SIGSEGV, SIGTRAP from int3, ...) or a stray host signal.
    Signal { signo: i32, si_code: i32, addr: u64 },
    /// The stub is gone: it exited or was killed (by the sentry, or by the
    /// host, e.g. the OOM killer).
    Gone,
}

/// A stopped-or-running stub process traced by the calling thread.
pub struct Stub {
    pid: Pid,
    /// Address of the stub's vDSO, as the kernel told it in its auxv.
    pub vdso_base: u64,
    /// Stack pointer at exec; the kernel's stack VMA around it becomes the
    /// application's stack.
    pub initial_sp: u64,
    /// Registers captured at creation, a template for segment registers.
    pub initial_regs: Regs,
    alive: bool,
    /// A thread lent by another process's stub (a vfork child sharing its
    /// parent's memory): ending it must end this thread only.
    borrowed: bool,
    /// The seccomp-notification fast path, once installed (see `notif`).
    notif: Option<NotifState>,
    /// On the systrap platform, the application thread this is (untraced;
    /// every operation goes through `systrap`).
    systrap: Option<super::systrap::Thread>,
}

/// A thread's fast path: its listener, and the call it is suspended in.
struct NotifState {
    listener: super::notif::Listener,
    pending: Option<PendingCall>,
}

/// A notified call not yet completed.
struct PendingCall {
    id: u64,
    /// The registers [`StopEvent::NotifSyscall`] reported.
    known: Regs,
    /// The thread's real registers, once it was brought to a ptrace stop
    /// (interrupting the call) because something needed it stopped.
    stopped: Option<Regs>,
}

fn ptrace_err(op: &'static str, pid: Pid) -> impl Fn(Errno) -> PlatformError {
    move |errno| PlatformError::Ptrace {
        op,
        pid: pid.as_raw(),
        errno,
    }
}

const PTRACE_OPTIONS: ptrace::Options = ptrace::Options::PTRACE_O_EXITKILL
    .union(ptrace::Options::PTRACE_O_TRACESYSGOOD)
    .union(ptrace::Options::PTRACE_O_TRACESECCOMP);

impl Stub {
    /// Creates a fresh stub process for a new address space, stopped
    /// before its first instruction of application code.
    pub fn spawn(image: &StubImage) -> Result<Stub, PlatformError> {
        if super::systrap::enabled() {
            return super::systrap::spawn(image);
        }
        Stub::spawn_traced(image)
    }

    /// Takes over a host thread or process `inject_clone_thread` or
    /// `inject_fork` made.
    pub fn attach_forked(pid: i32) -> Result<Stub, PlatformError> {
        if super::systrap::enabled() {
            return super::systrap::attach(pid);
        }
        Stub::attach_traced(pid)
    }

    /// A stub for a systrap application thread.
    pub(super) fn from_systrap(
        thread: super::systrap::Thread,
        vdso_base: u64,
        initial_sp: u64,
        initial_regs: Regs,
    ) -> Stub {
        Stub {
            pid: Pid::from_raw(thread.tid()),
            vdso_base,
            initial_sp,
            initial_regs,
            alive: true,
            borrowed: false,
            notif: None,
            systrap: Some(thread),
        }
    }

    pub(super) fn systrap_thread(&self) -> Option<&super::systrap::Thread> {
        self.systrap.as_ref()
    }

    /// On systrap: the site of the system call the thread stopped at,
    /// once it is hot enough to patch.
    pub fn hot_syscall_site(&self) -> Option<super::systrap::sites::Site> {
        self.systrap.as_ref()?.hot_site()
    }

    /// On systrap: patches the site `hot_syscall_site` gave, in private
    /// executable memory the application maps with `prot`, so its calls
    /// skip the signal (see `systrap::sites`). Best effort: a site that
    /// cannot be patched keeps working through the trap.
    pub fn patch_syscall_site(&mut self, site: super::systrap::sites::Site, prot: i32) {
        if self.systrap.is_none() {
            return;
        }
        if let Err(e) = super::systrap::patch_site(self, site, prot) {
            tracing::debug!("pid {}: patching {:#x}: {e}", self.pid, site.addr);
        }
    }

    /// The host process the thread belongs to.
    pub fn tgid(&self) -> i32 {
        match &self.systrap {
            Some(t) => t.tgid(),
            None => self.pid.as_raw(),
        }
    }

    /// Creates a fresh stub by `execveat`ing the stub image in a child that
    /// asked to be traced by the calling thread.
    pub(super) fn spawn_traced(image: &StubImage) -> Result<Stub, PlatformError> {
        let argv0 = CString::new("rvisor-stub").map_err(|_| PlatformError::Spawn(Errno::EINVAL))?;
        let argv: [*const libc::c_char; 2] = [argv0.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let empty = c"";
        let image_fd = image.fd().as_raw_fd();
        let channel_fd = image.channel_fd();
        let args = StubChildArgs {
            image_fd,
            channel_fd,
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            empty: empty.as_ptr(),
        };
        // The child shares the sentry's memory until it execs (CLONE_VM |
        // CLONE_VFORK, as posix_spawn does), so the sentry's page tables
        // are not copied for every new stub (~120 µs with fork). It runs
        // on a stack of its own, and this thread waits until it has
        // exec'd or died.
        let mut stack = vec![0u8; 64 * 1024];
        // SAFETY: the stack is ours and outlives the child's use of it
        // (CLONE_VFORK returns only after the exec); the top is 16-byte
        // aligned as the ABI wants.
        let top = unsafe { stack.as_mut_ptr().add(stack.len()) } as usize & !15;
        // SAFETY: clone(2) with a fresh stack; the child only runs
        // `stub_child_entry`, which makes raw system calls on memory
        // prepared before the call (no allocation, no locks) and never
        // returns; the sentry's memory is untouched until the exec, and
        // this thread is suspended meanwhile.
        let pid = unsafe {
            libc::clone(
                stub_child_entry,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                &args as *const StubChildArgs as *mut libc::c_void,
            )
        };
        drop(stack);
        if pid < 0 {
            return Err(PlatformError::Spawn(Errno::last()));
        }
        let pid = Pid::from_raw(pid);
        let mut stub = Stub {
            pid,
            vdso_base: 0,
            initial_sp: 0,
            // SAFETY: user_regs_struct is plain old data; all-zero is valid.
            initial_regs: unsafe { std::mem::zeroed() },
            alive: true,
            borrowed: false,
            notif: None,
            systrap: None,
        };
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => {}
            Ok(other) => {
                stub.alive = !matches!(other, WaitStatus::Exited(..) | WaitStatus::Signaled(..));
                return Err(PlatformError::Unexpected {
                    pid: pid.as_raw(),
                    what: format!("{other:?} at exec"),
                });
            }
            Err(e) => return Err(PlatformError::Spawn(e)),
        }
        ptrace::setoptions(pid, PTRACE_OPTIONS).map_err(ptrace_err("SETOPTIONS", pid))?;
        stub.initial_regs = stub.get_regs()?;
        stub.initial_sp = stub.initial_regs.rsp;
        stub.vdso_base = stub.find_vdso()?;
        // The image's second segment holds the rest of the stub's range
        // (see stub_image): a read-write scratch page, then nothing the
        // application could use (systrap maps its region over that).
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED) as u64;
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let got = stub.inject(
            libc::SYS_mmap as u64,
            [stub_scratch(), 0x1000, rw, flags, u64::MAX, 0],
        )?;
        if got as u64 != stub_scratch() {
            return Err(PlatformError::Unexpected {
                pid: pid.as_raw(),
                what: format!("scratch page mmap gave {got:#x}"),
            });
        }
        let rest = stub_scratch() + 0x1000;
        let reserve = flags | libc::MAP_NORESERVE as u64;
        let none = libc::PROT_NONE as u64;
        let len = stub_base() + STUB_SIZE - rest;
        let got = stub.inject(
            libc::SYS_mmap as u64,
            [rest, len, none, reserve, u64::MAX, 0],
        )?;
        if got as u64 != rest {
            return Err(PlatformError::Unexpected {
                pid: pid.as_raw(),
                what: format!("reserving the stub's range gave {got:#x}"),
            });
        }
        Ok(stub)
    }

    /// Takes over a stub that another stub just forked (it parks in `pause()`).
    pub(super) fn attach_traced(pid: i32) -> Result<Stub, PlatformError> {
        let pid = Pid::from_raw(pid);
        ptrace::seize(pid, PTRACE_OPTIONS).map_err(ptrace_err("SEIZE", pid))?;
        ptrace::interrupt(pid).map_err(ptrace_err("INTERRUPT", pid))?;
        loop {
            match waitpid(pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_STOP)) => break,
                // Parked in a traced call of the stub (an inherited
                // fast-path filter): stopped all the same.
                Ok(WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_SECCOMP)) => break,
                // A signal raced with the attach: swallow it and wait again.
                Ok(WaitStatus::Stopped(_, _)) => {
                    ptrace::cont(pid, None).map_err(ptrace_err("CONT", pid))?;
                    ptrace::interrupt(pid).map_err(ptrace_err("INTERRUPT", pid))?;
                }
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => {
                    return Err(PlatformError::Gone { pid: pid.as_raw() })
                }
                Ok(other) => {
                    return Err(PlatformError::Unexpected {
                        pid: pid.as_raw(),
                        what: format!("{other:?} at attach"),
                    })
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(PlatformError::Spawn(e)),
            }
        }
        let regs = ptrace::getregs(pid).map_err(ptrace_err("GETREGS", pid))?;
        Ok(Stub {
            pid,
            vdso_base: 0,
            initial_sp: regs.rsp,
            initial_regs: regs,
            alive: true,
            borrowed: false,
            notif: None,
            systrap: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// The thread's registers (stopping it first if it waits in a
    /// notified call; see [`StopEvent::NotifSyscall`]).
    pub fn get_regs(&mut self) -> Result<Regs, PlatformError> {
        if let Some(t) = &self.systrap {
            return t.regs();
        }
        self.ensure_stopped()?;
        ptrace::getregs(self.pid).map_err(ptrace_err("GETREGS", self.pid))
    }

    pub fn set_regs(&self, regs: &Regs) -> Result<(), PlatformError> {
        if let Some(t) = &self.systrap {
            return t.set_regs(regs);
        }
        ptrace::setregs(self.pid, *regs).map_err(ptrace_err("SETREGS", self.pid))
    }

    /// Runs the application with `regs` until its next syscall, fault or exit.
    pub fn run(&mut self, regs: &Regs) -> Result<StopEvent, PlatformError> {
        if let Some(t) = &mut self.systrap {
            return t.run(regs);
        }
        let pending = self.notif.as_mut().and_then(|n| n.pending.take());
        let mut r = *regs;
        if let Some(call) = pending {
            // A caller that changes more than the result takes the real
            // registers first (take_real_regs), which ends the call.
            if !same_but_rax(regs, &call.known) {
                tracing::error!(
                    "stub {}: registers of a notified call changed without the real ones",
                    self.pid
                );
            }
            match call.stopped {
                None => return self.complete_notified(call.id, regs.rax),
                // Stopped meanwhile: the real registers, with the result.
                Some(real) => {
                    r = Regs {
                        rax: regs.rax,
                        ..real
                    }
                }
            }
        }
        // Never let the host restart a "syscall" on our behalf.
        r.orig_rax = u64::MAX;
        if ptrace::setregs(self.pid, r).is_err() {
            return self.wait_gone();
        }
        if self.resume().is_err() {
            return self.wait_gone();
        }
        self.wait_event()
    }

    /// Completes a notified call with `result` and waits for the next event.
    fn complete_notified(&mut self, id: u64, result: u64) -> Result<StopEvent, PlatformError> {
        let sent = match &self.notif {
            Some(n) => n.listener.send(id, result as i64),
            None => Err(Errno::ENOENT),
        };
        match sent {
            Ok(()) => self.wait_event(),
            Err(_) => {
                // A signal interrupted the call before it was completed:
                // the thread is (or is about to be) in a ptrace stop with
                // the kernel's -ERESTARTSYS. It returns our result instead.
                let event = self.wait_ptrace()?;
                if !matches!(event, StopEvent::Gone) {
                    let mut real = self.get_regs()?;
                    real.rax = result;
                    real.orig_rax = u64::MAX;
                    self.set_regs(&real)?;
                }
                Ok(event)
            }
        }
    }

    /// Brings a thread that waits in a notified call to a ptrace stop (a
    /// signal interrupts the call), so it can be injected into or have its
    /// registers read; remembers its real registers for `run`.
    fn ensure_stopped(&mut self) -> Result<(), PlatformError> {
        let needs_stop = self
            .notif
            .as_ref()
            .and_then(|n| n.pending.as_ref())
            .is_some_and(|c| c.stopped.is_none());
        if !needs_stop {
            return Ok(());
        }
        // SAFETY: tgkill of our own traced stub thread: it only interrupts
        // the call and causes a ptrace stop, whose signal we suppress.
        unsafe { libc::syscall(libc::SYS_tkill, self.pid.as_raw(), INTERRUPT_SIGNAL) };
        let event = self.wait_ptrace()?;
        if matches!(event, StopEvent::Gone) {
            return Err(PlatformError::Gone {
                pid: self.pid.as_raw(),
            });
        }
        let real = ptrace::getregs(self.pid).map_err(ptrace_err("GETREGS", self.pid))?;
        if let Some(c) = self.notif.as_mut().and_then(|n| n.pending.as_mut()) {
            c.stopped = Some(real);
        }
        Ok(())
    }

    /// Whether the thread waits in a notified call whose real registers
    /// the caller has not taken: its registers are only those
    /// [`StopEvent::NotifSyscall`] reported.
    pub fn in_notified_call(&self) -> bool {
        self.notif.as_ref().is_some_and(|n| n.pending.is_some())
    }

    /// The real registers of a thread reported by
    /// [`StopEvent::NotifSyscall`] (stopping it), with `rax` and `orig_rax`
    /// from `known` (the call's result and number, for restart and signal
    /// delivery). The caller then owns the registers: `run` sets them
    /// as given.
    pub fn take_real_regs(&mut self, known: &Regs) -> Result<Regs, PlatformError> {
        self.ensure_stopped()?;
        let call = self.notif.as_mut().and_then(|n| n.pending.take());
        let real = match call.and_then(|c| c.stopped) {
            Some(real) => real,
            None => return Ok(*known),
        };
        Ok(Regs {
            rax: known.rax,
            orig_rax: known.orig_rax,
            ..real
        })
    }

    fn wait_gone(&mut self) -> Result<StopEvent, PlatformError> {
        // The tracee died under us (killed by the sentry); reap it.
        self.kill();
        Ok(StopEvent::Gone)
    }

    /// Waits for the next event: a ptrace stop, or (on the fast path) a
    /// notified system call.
    fn wait_event(&mut self) -> Result<StopEvent, PlatformError> {
        loop {
            let pid = self.pid.as_raw();
            let Some(n) = self.notif.as_mut() else {
                return self.wait_ptrace();
            };
            match n.listener.wait(|| stop_waiting(pid)) {
                Ok(true) => {}
                Ok(false) | Err(Errno::EINTR) => {
                    if let Some(event) = self.poll_ptrace(false)? {
                        self.restart_cancelled_call(&event)?;
                        return Ok(event);
                    }
                    continue;
                }
                Err(e) => return Err(ptrace_err("NOTIF_WAIT", self.pid)(e)),
            }
            let call = match n.listener.receive() {
                Ok(c) => c,
                Err(Errno::EINTR) | Err(Errno::ENOENT) => continue,
                Err(e) => return Err(ptrace_err("NOTIF_RECV", self.pid)(e)),
            };
            if call.tid != pid {
                // Not this thread's call (a filter inherited by a thread not
                // yet running its own): never expected; refuse it.
                let _ = n.listener.send(call.id, -(libc::ENOSYS as i64));
                tracing::warn!("stub {pid}: a notification from thread {}", call.tid);
                continue;
            }
            // SAFETY: user_regs_struct is plain old data; all-zero is valid.
            let mut regs: Regs = unsafe { std::mem::zeroed() };
            regs.orig_rax = call.nr as u64;
            regs.rax = -(libc::ENOSYS as i64) as u64;
            regs.rdi = call.args[0];
            regs.rsi = call.args[1];
            regs.rdx = call.args[2];
            regs.r10 = call.args[3];
            regs.r8 = call.args[4];
            regs.r9 = call.args[5];
            regs.rip = call.ip;
            n.pending = Some(PendingCall {
                id: call.id,
                known: regs,
                stopped: None,
            });
            return Ok(StopEvent::NotifSyscall(regs));
        }
    }

    /// A signal that stopped the thread while its call waited to be
    /// received cancelled the notification: the sentry never saw that call,
    /// and the kernel left -ERESTART* in rax. The call is made again when
    /// the thread resumes (rip back on the `syscall` instruction), as Linux
    /// restarts a call no handler interrupted; a handler run in between
    /// returns to it the same way.
    fn restart_cancelled_call(&mut self, event: &StopEvent) -> Result<(), PlatformError> {
        if !matches!(event, StopEvent::Signal { .. }) {
            return Ok(());
        }
        let mut r = ptrace::getregs(self.pid).map_err(ptrace_err("GETREGS", self.pid))?;
        let restart_codes = [-512i64, -513, -514, -516];
        if (r.orig_rax as i64) >= 0 && restart_codes.contains(&(r.rax as i64)) {
            r.rax = r.orig_rax;
            r.rip -= 2;
            r.orig_rax = u64::MAX;
            self.set_regs(&r)?;
        }
        Ok(())
    }

    /// Waits for the next ptrace stop.
    fn wait_ptrace(&mut self) -> Result<StopEvent, PlatformError> {
        loop {
            if let Some(event) = self.poll_ptrace(true)? {
                return Ok(event);
            }
        }
    }

    /// One waitpid for this tracee (WNOHANG unless `block`): the event, or
    /// None when there is none yet.
    fn poll_ptrace(&mut self, block: bool) -> Result<Option<StopEvent>, PlatformError> {
        let mut flags = WaitPidFlag::__WALL;
        if !block {
            flags |= WaitPidFlag::WNOHANG;
        }
        loop {
            match waitpid(self.pid, Some(flags)) {
                Ok(WaitStatus::StillAlive) => return Ok(None),
                Ok(WaitStatus::PtraceSyscall(_)) => return Ok(Some(StopEvent::Syscall)),
                // A system call the fast path's filter sends to the tracer.
                Ok(WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_SECCOMP)) => {
                    return Ok(Some(StopEvent::Syscall))
                }
                Ok(WaitStatus::Stopped(_, sig)) => {
                    let (si_code, addr) = match ptrace::getsiginfo(self.pid) {
                        // SAFETY: reading the union field that holds si_addr for faults.
                        Ok(info) => (info.si_code, unsafe { info.si_addr() } as u64),
                        Err(_) => (0, 0),
                    };
                    return Ok(Some(StopEvent::Signal {
                        signo: sig as i32,
                        si_code,
                        addr,
                    }));
                }
                Ok(WaitStatus::PtraceEvent(..)) => {
                    // Group-stop or similar; resume.
                    if self.resume().is_err() {
                        return self.wait_gone().map(Some);
                    }
                    if !block {
                        return Ok(None);
                    }
                }
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => {
                    self.alive = false;
                    return Ok(Some(StopEvent::Gone));
                }
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => {
                    self.alive = false;
                    return Ok(Some(StopEvent::Gone));
                }
                Err(e) => return Err(ptrace_err("WAIT", self.pid)(e)),
            }
        }
    }

    /// Resumes the application after a stop it should not notice.
    fn resume(&self) -> nix::Result<()> {
        if self.notif.is_some() {
            ptrace::cont(self.pid, None)
        } else {
            ptrace::sysemu(self.pid, None)
        }
    }

    /// Executes one host system call inside the stub and returns its raw
    /// result (negative errno on failure). Callers validate the arguments:
    /// this is only ever used for memory management and stub control.
    pub fn inject(&mut self, nr: u64, args: [u64; 6]) -> Result<i64, PlatformError> {
        if let Some(t) = &self.systrap {
            return t.inject(nr, args);
        }
        self.inject_at(inject_syscall(), inject_trap_rip(), nr, args)
    }

    /// Forks the stub (host copy-on-write of the whole address space). The
    /// child parks in `pause()`; the caller hands its pid to a new sentry
    /// thread, which calls [`Stub::attach_forked`].
    pub fn inject_fork(&mut self) -> Result<i64, PlatformError> {
        if let Some(t) = &self.systrap {
            return t.inject_fork();
        }
        let flags = (libc::CLONE_PARENT as u64) | (libc::SIGCHLD as u64);
        self.inject_at(
            inject_fork(),
            fork_trap_rip(),
            libc::SYS_clone as u64,
            [flags, 0, 0, 0, 0, 0],
        )
    }

    /// Runs the stub's code at `entry` (registers: `nr` in rax, `args` as
    /// a system call's) until the `int3` that ends at `trap_rip`; returns
    /// rax there.
    pub(super) fn inject_at(
        &mut self,
        entry: u64,
        trap_rip: u64,
        nr: u64,
        args: [u64; 6],
    ) -> Result<i64, PlatformError> {
        self.ensure_stopped()?;
        let mut r = self.initial_regs;
        r.rip = entry;
        r.rax = nr;
        r.orig_rax = u64::MAX;
        r.rdi = args[0];
        r.rsi = args[1];
        r.rdx = args[2];
        r.r10 = args[3];
        r.r8 = args[4];
        r.r9 = args[5];
        // The stub runs on whatever stack the application has; injected calls
        // never touch the stack, so that is harmless.
        self.set_regs(&r)?;
        ptrace::cont(self.pid, None).map_err(ptrace_err("CONT", self.pid))?;
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => break,
                Ok(WaitStatus::Stopped(_, _)) | Ok(WaitStatus::PtraceEvent(..)) => {
                    // A stray signal while the stub ran our sequence: drop it.
                    ptrace::cont(self.pid, None).map_err(ptrace_err("CONT", self.pid))?;
                }
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => {
                    self.alive = false;
                    return Err(PlatformError::Gone {
                        pid: self.pid.as_raw(),
                    });
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(ptrace_err("WAIT", self.pid)(e)),
            }
        }
        let out = self.get_regs()?;
        if out.rip != trap_rip {
            return Err(PlatformError::Unexpected {
                pid: self.pid.as_raw(),
                what: format!("injected syscall trapped at {:#x}", out.rip),
            });
        }
        Ok(out.rax as i64)
    }

    /// The stub's own resource usage (its CPU times and peak RSS are the
    /// application's), via an injected getrusage(RUSAGE_SELF) into the
    /// scratch page.
    pub fn rusage(&mut self) -> Result<libc::rusage, PlatformError> {
        let raw = self.inject(
            libc::SYS_getrusage as u64,
            [libc::RUSAGE_SELF as u64, stub_scratch(), 0, 0, 0, 0],
        )?;
        if raw != 0 {
            return Err(PlatformError::Unexpected {
                pid: self.pid.as_raw(),
                what: format!("getrusage gave {raw}"),
            });
        }
        // SAFETY: rusage is plain old data; all-zero is valid.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: we fill exactly the bytes of `ru`.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                (&mut ru as *mut libc::rusage).cast::<u8>(),
                std::mem::size_of::<libc::rusage>(),
            )
        };
        self.read_mem(stub_scratch(), bytes)
            .map_err(|e| PlatformError::Ptrace {
                op: "read rusage",
                pid: self.pid.as_raw(),
                errno: e,
            })?;
        Ok(ru)
    }

    /// Reads application memory. Short reads (unmapped pages) give EFAULT.
    pub fn read_mem(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        read_process_mem(self.pid, addr, buf)
    }

    /// Reads up to `buf.len()` bytes, stopping at the first unreadable page.
    pub fn read_mem_partial(&self, addr: u64, buf: &mut [u8]) -> usize {
        let mut done = 0;
        while done < buf.len() {
            // Never cross a page boundary in one read so a fault stops us at
            // the exact page.
            let cur = addr.wrapping_add(done as u64);
            let page_left = 4096 - (cur % 4096) as usize;
            let n = page_left.min(buf.len() - done);
            if self.read_mem(cur, &mut buf[done..done + n]).is_err() {
                break;
            }
            done += n;
        }
        done
    }

    /// Writes application memory (the pages must be writable by the app).
    pub fn write_mem(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let mut done = 0;
        while done < data.len() {
            let remote = [RemoteIoVec {
                base: (addr as usize).wrapping_add(done),
                len: data.len() - done,
            }];
            let local = [std::io::IoSlice::new(&data[done..])];
            match process_vm_writev(self.pid, &local, &remote) {
                Ok(0) | Err(Errno::EFAULT) => return Err(Errno::EFAULT),
                Ok(n) => done += n,
                Err(Errno::EINTR) => continue,
                Err(_) => return Err(Errno::EFAULT),
            }
        }
        Ok(())
    }

    /// Finds AT_SYSINFO_EHDR in the auxv the kernel put on the stub's stack.
    fn find_vdso(&self) -> Result<u64, PlatformError> {
        let mut sp = self.initial_sp;
        let mut word = [0u8; 8];
        let mut read = |addr: u64| -> Result<u64, PlatformError> {
            self.read_mem(addr, &mut word)
                .map_err(|_| PlatformError::Unexpected {
                    pid: self.pid.as_raw(),
                    what: "unreadable stack".into(),
                })?;
            Ok(u64::from_le_bytes(word))
        };
        let argc = read(sp)?;
        sp += 8 * (argc + 2); // argc, argv..., NULL
        while read(sp)? != 0 {
            sp += 8; // envp
        }
        sp += 8;
        for _ in 0..64 {
            let key = read(sp)?;
            let val = read(sp + 8)?;
            if key == libc::AT_SYSINFO_EHDR {
                return Ok(val);
            }
            if key == libc::AT_NULL {
                break;
            }
            sp += 16;
        }
        Ok(0)
    }

    /// Marks this stub as a thread lent by another process (see
    /// [`Stub::borrowed`]).
    pub fn mark_borrowed(&mut self) {
        self.borrowed = true;
    }

    pub fn is_borrowed(&self) -> bool {
        self.borrowed
    }

    /// Kills the stub and reaps it; a borrowed thread ends alone, since a
    /// signal would take the lender's whole process with it.
    pub fn kill(&mut self) {
        if !self.alive {
            return;
        }
        if self.borrowed {
            self.exit_thread();
            return;
        }
        if let Some(t) = &mut self.systrap {
            t.kill();
            self.alive = false;
            return;
        }
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(Errno::ECHILD) => {
                    break
                }
                Err(Errno::EINTR) | Ok(_) => continue,
                Err(_) => break,
            }
        }
        self.alive = false;
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What [`stub_child_entry`] needs, prepared before the clone.
struct StubChildArgs {
    image_fd: i32,
    channel_fd: i32,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    empty: *const libc::c_char,
}

/// The clone child's entry point (see [`Stub::spawn_traced`]).
extern "C" fn stub_child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the parent's StubChildArgs, alive while the
    // parent is suspended in clone (CLONE_VFORK); stub_child makes only
    // raw system calls and never returns.
    unsafe {
        let a = &*(arg as *const StubChildArgs);
        stub_child(a.image_fd, a.channel_fd, a.argv, a.envp, a.empty)
    }
}

/// The child side of [`Stub::spawn`].
///
/// # Safety
/// Must only be called in the child of `fork()`; uses only raw syscalls.
unsafe fn stub_child(
    image_fd: i32,
    channel_fd: i32,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    empty: *const libc::c_char,
) -> ! {
    libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    );
    // Out of the terminal's process group: host job-control signals must
    // never reach application code directly.
    libc::setsid();
    // No capabilities after exec (an emptied bounding set leaves root's
    // exec nothing to gain) and no way to gain privileges.
    for cap in 0..64 {
        libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
    }
    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0);
    // Default dispositions and an empty mask; SIG_IGN would survive exec.
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let mut empty_set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty_set);
    libc::sigprocmask(libc::SIG_SETMASK, &empty_set, std::ptr::null_mut());
    // Keep only the image, as fd 3 with close-on-exec, and the fd channel
    // as fd 4: the stub runs with no other host fd. Move both out of the
    // way first so neither dup2 clobbers the other.
    let image = libc::fcntl(image_fd, libc::F_DUPFD_CLOEXEC, 16);
    let channel = libc::fcntl(channel_fd, libc::F_DUPFD_CLOEXEC, 16);
    if image < 0
        || channel < 0
        || libc::dup3(image, 3, libc::O_CLOEXEC) != 3
        || libc::dup2(channel, STUB_CHANNEL_FD) != STUB_CHANNEL_FD
    {
        libc::_exit(126);
    }
    libc::syscall(libc::SYS_close_range, 0u32, 2u32, 0u32);
    libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32);
    if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
        libc::_exit(125);
    }
    libc::syscall(
        libc::SYS_execveat,
        3,
        empty,
        argv,
        envp,
        libc::AT_EMPTY_PATH,
    );
    libc::_exit(127);
}

const NT_X86_XSTATE: libc::c_int = 0x202;
/// Largest XSAVE area we accept (AMX tiles make it ~11 KiB).
const MAX_XSTATE: usize = 16 * 1024;

impl Stub {
    /// The thread's full extended FP state, in XSAVE format.
    pub fn get_xstate(&mut self) -> Result<Vec<u8>, PlatformError> {
        if let Some(t) = &self.systrap {
            return t.get_xstate();
        }
        self.ensure_stopped()?;
        let mut buf = vec![0u8; MAX_XSTATE];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: GETREGSET writes at most iov_len bytes into our buffer and
        // updates iov_len.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETREGSET,
                self.pid.as_raw(),
                NT_X86_XSTATE,
                &mut iov as *mut libc::iovec,
            )
        };
        if r < 0 {
            return Err(ptrace_err("GETREGSET", self.pid)(Errno::last()));
        }
        buf.truncate(iov.iov_len);
        Ok(buf)
    }

    /// Loads extended FP state; the kernel validates it (EINVAL on bad
    /// content), so application-controlled bytes are safe to pass.
    pub fn set_xstate(&mut self, data: &[u8]) -> Result<(), PlatformError> {
        if let Some(t) = &self.systrap {
            return t.set_xstate(data);
        }
        self.ensure_stopped()?;
        let mut copy = data.to_vec();
        let mut iov = libc::iovec {
            iov_base: copy.as_mut_ptr().cast(),
            iov_len: copy.len(),
        };
        // SAFETY: SETREGSET reads iov_len bytes from our buffer.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_SETREGSET,
                self.pid.as_raw(),
                NT_X86_XSTATE,
                &mut iov as *mut libc::iovec,
            )
        };
        if r < 0 {
            return Err(ptrace_err("SETREGSET", self.pid)(Errno::last()));
        }
        Ok(())
    }
}

impl Stub {
    /// Creates a host thread in the stub (sharing its address space); like
    /// a forked stub it parks in `pause()` until its own sentry thread
    /// seizes it with [`Stub::attach_forked`]. Returns its host tid.
    pub fn inject_clone_thread(&mut self) -> Result<i64, PlatformError> {
        if let Some(t) = &self.systrap {
            return t.inject_clone_thread();
        }
        let flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM) as u64;
        self.inject_at(
            inject_fork(),
            fork_trap_rip(),
            libc::SYS_clone as u64,
            [flags, 0, 0, 0, 0, 0],
        )
    }

    /// Ends only this host thread (the application thread called exit).
    /// For a thread-group leader the host reports the exit only once the
    /// whole group is gone, so this blocks until then, as the tracer must
    /// stay alive while the leader's tracee lingers.
    pub fn exit_thread(&mut self) {
        if !self.alive {
            return;
        }
        if let Some(t) = &mut self.systrap {
            t.exit();
            self.alive = false;
            return;
        }
        if self.ensure_stopped().is_err() {
            self.alive = false;
            return;
        }
        let mut r = self.initial_regs;
        r.rip = inject_syscall();
        r.rax = libc::SYS_exit as u64;
        r.orig_rax = u64::MAX;
        r.rdi = 0;
        if self.set_regs(&r).is_ok() && ptrace::cont(self.pid, None).is_ok() {
            loop {
                match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::Exited(..))
                    | Ok(WaitStatus::Signaled(..))
                    | Err(Errno::ECHILD) => break,
                    Ok(WaitStatus::Stopped(..)) | Ok(WaitStatus::PtraceEvent(..)) => {
                        let _ = ptrace::cont(self.pid, None);
                    }
                    Err(Errno::EINTR) | Ok(_) => continue,
                    Err(_) => break,
                }
            }
        }
        self.alive = false;
    }

    /// Lets a stopped thread go on untraced (a control thread back to its
    /// pause loop), with no signal.
    pub fn detach(mut self) {
        let _ = ptrace::detach(self.pid, None);
        self.alive = false;
    }

    /// Forgets a stub that died with its process (no kill, no reap).
    pub fn forget(&mut self) {
        if let Some(t) = &mut self.systrap {
            t.forget();
        }
        self.alive = false;
    }
}

impl Stub {
    /// Maps host file `fd` into the stub: the fd is handed over the stub's
    /// channel (see [`super::fd_channel`]), mapped with an injected `mmap`
    /// and closed again. Returns the raw mmap result. The caller validated
    /// every argument; `flags` must include exactly one of MAP_SHARED and
    /// MAP_PRIVATE and must not include MAP_ANONYMOUS.
    pub fn map_host_fd(
        &mut self,
        fd: std::os::fd::RawFd,
        addr: u64,
        len: u64,
        prot: i32,
        flags: i32,
        offset: u64,
    ) -> Result<i64, PlatformError> {
        let stub_fd = self.install_fd(fd)?;
        let mapped = self.inject(
            libc::SYS_mmap as u64,
            [addr, len, prot as u64, flags as u64, stub_fd as u64, offset],
        );
        let closed = self.inject(libc::SYS_close as u64, [stub_fd as u64, 0, 0, 0, 0, 0]);
        let mapped = mapped?;
        closed?;
        Ok(mapped)
    }

    /// Hands host file `fd` to the stub over its channel and leaves it open
    /// there; returns its fd number in the stub. For memory files the
    /// sentry maps into the stub again and again (see `mm::mirror`): the
    /// application cannot use the number, as every system call it makes
    /// is the sentry's to answer.
    pub fn install_fd(&mut self, fd: std::os::fd::RawFd) -> Result<i32, PlatformError> {
        let channel = super::fd_channel::get().ok_or(PlatformError::Unexpected {
            pid: self.pid.as_raw(),
            what: "no fd channel".into(),
        })?;
        let pid = self.pid.as_raw();
        channel
            .donate(fd, |seq| self.receive_fd(seq))
            .map_err(|errno| PlatformError::Ptrace {
                op: "fd donation",
                pid,
                errno,
            })?
    }

    /// Injects `recvmsg` on the channel with its buffers in the scratch page
    /// and returns the fd number the stub received.
    fn receive_fd(&mut self, seq: u64) -> Result<i32, PlatformError> {
        let msg = stub_scratch();
        let iov = stub_scratch() + 64;
        let payload = stub_scratch() + 96;
        let control = stub_scratch() + 128;
        // Room for exactly one fd: the kernel discards any extra ones.
        const CONTROL_LEN: u64 = 24;
        let mut req = [0u8; 160];
        let mut put = |off: usize, v: u64| req[off..off + 8].copy_from_slice(&v.to_le_bytes());
        // struct msghdr { name, namelen, iov, iovlen, control, controllen, flags }
        put(16, iov);
        put(24, 1);
        put(32, control);
        put(40, CONTROL_LEN);
        // struct iovec { base, len }
        put(64, payload);
        put(72, 8);
        let pid = self.pid.as_raw();
        let bad = |what: String| PlatformError::Unexpected { pid, what };
        self.write_mem(msg, &req)
            .map_err(|e| bad(format!("writing the recvmsg request: {e}")))?;
        let flags = (libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) as u64;
        let got = self.inject(
            libc::SYS_recvmsg as u64,
            [STUB_CHANNEL_FD as u64, msg, flags, 0, 0, 0],
        )?;
        if got != 8 {
            return Err(bad(format!("channel recvmsg gave {got}")));
        }
        let mut back = [0u8; 160];
        self.read_mem(msg, &mut back)
            .map_err(|e| bad(format!("reading the recvmsg reply: {e}")))?;
        let word = |off: usize| u64::from_le_bytes(back[off..off + 8].try_into().unwrap_or([0; 8]));
        let int = |off: usize| i32::from_le_bytes(back[off..off + 4].try_into().unwrap_or([0; 4]));
        let fd = int(144);
        let well_formed = word(96) == seq
            && word(128) == 20
            && int(136) == libc::SOL_SOCKET
            && int(140) == libc::SCM_RIGHTS
            && fd >= 0
            && fd != STUB_CHANNEL_FD;
        if !well_formed {
            // The application overwrote the scratch page under us (or a
            // stale datagram arrived): close whatever came and fail.
            if fd >= 0 && fd != STUB_CHANNEL_FD {
                let _ = self.inject(libc::SYS_close as u64, [fd as u64, 0, 0, 0, 0, 0]);
            }
            return Err(bad("malformed fd donation".into()));
        }
        Ok(fd)
    }
}

/// Reads `buf.len()` bytes at `addr` in the address space of host thread
/// `pid` (EFAULT if any of them is unreadable).
pub(super) fn read_process_mem(pid: Pid, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        let remote = [RemoteIoVec {
            base: (addr as usize).wrapping_add(done),
            len: buf.len() - done,
        }];
        let mut local = [std::io::IoSliceMut::new(&mut buf[done..])];
        match process_vm_readv(pid, &mut local, &remote) {
            Ok(0) | Err(Errno::EFAULT) => return Err(Errno::EFAULT),
            Ok(n) => done += n,
            Err(Errno::EINTR) => continue,
            Err(_) => return Err(Errno::EFAULT),
        }
    }
    Ok(())
}

/// Whether two register sets differ at most in `rax` (a notified call
/// whose handler only set its result).
fn same_but_rax(a: &Regs, b: &Regs) -> bool {
    let a = Regs { rax: 0, ..*a };
    let b = Regs { rax: 0, ..*b };
    // SAFETY: user_regs_struct is plain old data without padding (27 u64s);
    // we only read its bytes.
    let bytes = |r: &Regs| unsafe {
        std::slice::from_raw_parts((r as *const Regs).cast::<u8>(), std::mem::size_of::<Regs>())
            .to_vec()
    };
    bytes(&a) == bytes(&b)
}

/// Whether tracee `pid` has a stop or exit to report (without taking it).
fn stop_waiting(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain old data; all-zero is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own tracee, filling a siginfo we own.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WSTOPPED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL,
        )
    };
    // SAFETY: si_pid is valid for the child states waitid reports.
    r != 0 || unsafe { info.si_pid() } != 0
}

impl Stub {
    /// Installs the fast path (see `notif`) on this thread: the filter in
    /// the stub's read-only page, with a listener the sentry takes over.
    /// `tgid` is the stub process's id (this thread may not lead it).
    pub fn enable_fast_path(&mut self, tgid: i32) -> Result<(), PlatformError> {
        let pid = self.pid.as_raw();
        let unexpected = move |what: String| PlatformError::Unexpected { pid, what };
        let fd = self.inject(
            libc::SYS_seccomp as u64,
            super::notif::install_args(super::stub_image::fprog_addr()),
        )?;
        if fd < 0 {
            return Err(unexpected(format!("seccomp filter install gave {fd}")));
        }
        let taken = super::notif::take_fd(tgid, fd as i32);
        let _ = self.inject(libc::SYS_close as u64, [fd as u64, 0, 0, 0, 0, 0]);
        let listener = taken
            .and_then(super::notif::Listener::new)
            .map_err(|e| unexpected(format!("taking the seccomp listener: {e}")))?;
        self.notif = Some(NotifState {
            listener,
            pending: None,
        });
        Ok(())
    }
}
