//! Running signal handlers: x86_64 rt_sigframe construction, rt_sigreturn,
//! syscall restart rules, and synchronous faults (gVisor's
//! `pkg/sentry/arch/signal_amd64.go` and `kernel/task_signals.go`).
//!
//! Frame layout (as Linux builds it, below the 128-byte red zone or at the
//! top of the alternate stack): the XSAVE area (64-byte aligned, with the
//! FP_XSTATE magic words), then `rt_sigframe { pretcode, ucontext, siginfo }`
//! with `sp + 8` 16-byte aligned. Everything read back at sigreturn is
//! application memory and treated as hostile: segment registers and
//! privileged flags are never taken from it, and the FP state is validated
//! by the host kernel when loaded.

use nix::errno::Errno;

use super::lock;
use super::signals::{
    default_action, info_fault, sig_bit, DefaultAction, SigAction, SigInfo, SIG_DFL, SIG_IGN,
    UNBLOCKABLE,
};
use super::task::Task;
use crate::platform::Regs;

const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTART: u64 = 0x1000_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SA_RESTORER: u64 = 0x0400_0000;

const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const UCONTEXT_SIZE: u64 = 304;
const SIGCONTEXT_OFFSET: usize = 40;
const FRAME_SIZE: u64 = 8 + UCONTEXT_SIZE + 128;
/// Flags a handler may change through sigreturn (Linux's FIX_EFLAGS).
const FIX_EFLAGS: u64 = 0x40dd5;
const MAX_XSTATE: usize = 16 * 1024;

const XFEATURE_MASK_TILEDATA: u64 = 1 << 18;

/// Bytes of the XSAVE area a frame carries: everything before AMX tile
/// data (XSAVE component 18), when the CPU has it.
fn frame_xstate_len(full: usize) -> usize {
    let leaf = std::arch::x86_64::__cpuid_count(0xd, 18);
    if leaf.eax > 0 && (leaf.ebx as usize) >= 576 && (leaf.ebx as usize) < full {
        leaf.ebx as usize
    } else {
        full
    }
}

/// Syscalls Linux restarts after any handler, SA_RESTART or not
/// (ERESTARTNOINTR): a fork a signal interrupted is made again once the
/// handler returns; the program never sees EINTR.
pub fn restarts_always(nr: u64) -> bool {
    matches!(
        nr as i64,
        libc::SYS_clone | libc::SYS_clone3 | libc::SYS_fork | libc::SYS_vfork
    )
}

/// Syscalls Linux restarts after a handler with SA_RESTART (ERESTARTSYS),
/// and those it always restarts ([`restarts_always`]).
pub fn restartable(nr: u64) -> bool {
    restarts_always(nr)
        || matches!(
            nr as i64,
            libc::SYS_read
                | libc::SYS_readv
                | libc::SYS_pread64
                | libc::SYS_write
                | libc::SYS_writev
                | libc::SYS_pwrite64
                | libc::SYS_wait4
                | libc::SYS_waitid
                | libc::SYS_futex
                | libc::SYS_ioctl
                | libc::SYS_openat
                | libc::SYS_open
        )
}

fn put(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// sigcontext register order.
fn regs_to_sigcontext(r: &Regs, b: &mut [u8]) {
    let vals = [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.eflags,
    ];
    for (i, v) in vals.iter().enumerate() {
        put(b, i * 8, *v);
    }
    // cs, gs, fs, ss as u16s.
    let segs = [r.cs as u16, r.gs as u16, r.fs as u16, r.ss as u16];
    for (i, s) in segs.iter().enumerate() {
        b[144 + i * 2..146 + i * 2].copy_from_slice(&s.to_le_bytes());
    }
}

impl Task {
    /// Kills the process as if by `sig` (a bad frame, an unhandleable
    /// fault, a seccomp kill).
    pub fn force_kill(&mut self, sig: i32) {
        self.exit = Some(sig);
        if lock(&self.proc.threads)
            .iter()
            .filter(|t| !t.is_gone())
            .count()
            > 1
        {
            // Other threads go down with the process.
            super::kernel().kill_process(&self.proc, sig);
        }
    }

    /// Handles a synchronous fault of the application's own code: its
    /// handler runs if it has one and the signal is not blocked; otherwise
    /// the default action kills the process (Linux's force_sig_fault).
    pub fn fault(&mut self, sig: i32, code: i32, addr: u64) {
        let act = lock(&self.proc.sig).action(sig);
        let blocked = lock(&self.thread.sig).mask & sig_bit(sig) != 0;
        if blocked || act.handler == SIG_DFL || act.handler == SIG_IGN {
            tracing::info!(
                "pid {}: fatal signal {sig} (code {code}) at rip {:#x} addr {addr:#x}",
                self.pid(),
                self.regs.rip
            );
            self.force_kill(sig);
            return;
        }
        self.handle(sig, act, info_fault(sig, code, addr));
    }

    /// Applies Linux's restart rules to a syscall interrupted by a signal,
    /// given whether a handler is about to run and with which flags.
    fn fix_restart(&mut self, handler: Option<&SigAction>) {
        let Some(nr) = self.restart.take() else {
            return;
        };
        let restart = match handler {
            None => true,
            Some(a) => (a.flags & SA_RESTART != 0 && restartable(nr)) || restarts_always(nr),
        };
        if restart {
            self.regs.rip -= 2;
            self.regs.rax = nr;
        }
    }

    /// Delivers every pending signal the mask lets through: default actions
    /// act, handlers get a frame (nested if several).
    pub fn deliver_pending(&mut self) {
        loop {
            if self.exit.is_some() {
                return;
            }
            let (sig, act, info) = {
                // Signals sent to this thread first, then the process's.
                let mut ss = lock(&self.proc.sig);
                let mut ts = lock(&self.thread.sig);
                let mine = ts.pending & !ts.mask;
                let shared = ss.pending & !ts.mask;
                if mine != 0 {
                    let sig = mine.trailing_zeros() as i32 + 1;
                    ts.pending &= !sig_bit(sig);
                    (sig, ss.action(sig), ts.info[sig as usize])
                } else if shared != 0 {
                    let sig = shared.trailing_zeros() as i32 + 1;
                    ss.pending &= !sig_bit(sig);
                    (sig, ss.action(sig), ss.info[sig as usize])
                } else {
                    break;
                }
            };
            crate::syscalls::timer::signal_dequeued(&self.proc, &info);
            // On notif, a signal that came after the task loop's check
            // (`needs_real_regs`) finds the thread with only its call's
            // registers: a frame built from them sent the handler's return
            // to nowhere (SIGSEGV under a signal storm).
            if self.stub.in_notified_call() {
                self.real_regs();
            }
            if act.handler == SIG_IGN {
                continue;
            }
            if act.handler == SIG_DFL {
                let fatal = matches!(
                    default_action(sig),
                    DefaultAction::Terminate | DefaultAction::CoreDump
                );
                // A pid namespace's init never dies of a default action
                // sent to it.
                if fatal && (!self.proc.container_init || sig == libc::SIGKILL) {
                    self.force_kill(sig);
                    return;
                }
                continue;
            }
            self.handle(sig, act, info);
        }
        // No handler ran for an interrupted syscall: restart it.
        if self.restart.is_some() {
            self.fix_restart(None);
        }
        if let Some(m) = self.saved_mask.take() {
            lock(&self.thread.sig).mask = m;
        }
    }

    /// Builds the frame for one handler and points the registers at it.
    fn handle(&mut self, sig: i32, act: SigAction, info: SigInfo) {
        self.fix_restart(Some(&act));
        if act.flags & SA_RESTORER == 0 {
            // x86_64 has no kernel-provided trampoline.
            self.force_kill(libc::SIGSEGV);
            return;
        }
        let (old_mask, alt) = {
            let ts = lock(&self.thread.sig);
            (self.saved_mask.take().unwrap_or(ts.mask), ts.altstack)
        };
        let r = self.regs;
        let (ss_sp, ss_flags, ss_size) = alt;
        let alt_enabled = ss_flags & libc::SS_DISABLE == 0 && ss_size > 0;
        let on_alt = alt_enabled && r.rsp > ss_sp && r.rsp <= ss_sp.wrapping_add(ss_size);
        let mut sp = if act.flags & SA_ONSTACK != 0 && alt_enabled && !on_alt {
            ss_sp.wrapping_add(ss_size)
        } else {
            r.rsp.wrapping_sub(128)
        };
        let mut xstate = match self.stub.get_xstate() {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("pid {}: cannot save FP state: {e}", self.pid());
                self.force_kill(libc::SIGSEGV);
                return;
            }
        };
        let full_len = xstate.len();
        // AMX tile data is enabled per process on Linux and never part of a
        // signal frame unless asked for; leave it out (in its init state),
        // which keeps frames small enough for SIGSTKSZ alternate stacks.
        let xlen = frame_xstate_len(full_len);
        xstate.truncate(xlen);
        if xlen >= 576 {
            let bv = get(&xstate, 512) & !XFEATURE_MASK_TILEDATA;
            xstate[512..520].copy_from_slice(&bv.to_le_bytes());
        }
        if xlen >= 576 {
            // fx_sw_reserved: tells the application (and us at sigreturn)
            // that an XSAVE area follows.
            xstate[464..468].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
            xstate[468..472].copy_from_slice(&((xlen + 4) as u32).to_le_bytes());
            let xfeatures = get(&xstate, 512) | 3;
            xstate[472..480].copy_from_slice(&xfeatures.to_le_bytes());
            xstate[480..484].copy_from_slice(&(xlen as u32).to_le_bytes());
            xstate.extend_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
        }
        sp = sp.wrapping_sub(xstate.len() as u64) & !63;
        let fpstate = sp;
        sp = (sp.wrapping_sub(FRAME_SIZE) & !15).wrapping_sub(8);
        let frame = sp;
        let uc = frame + 8;
        let info_addr = uc + UCONTEXT_SIZE;

        let mut f = vec![0u8; FRAME_SIZE as usize];
        put(&mut f, 0, act.restorer);
        put(
            &mut f,
            8,
            UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
        );
        // uc_stack: the alternate stack as it is now.
        put(&mut f, 24, ss_sp);
        let shown_flags = if !alt_enabled {
            libc::SS_DISABLE
        } else if on_alt {
            libc::SS_ONSTACK
        } else {
            0
        };
        f[32..36].copy_from_slice(&shown_flags.to_le_bytes());
        put(&mut f, 40, ss_size);
        let sc = 8 + SIGCONTEXT_OFFSET;
        regs_to_sigcontext(&r, &mut f[sc..sc + 256]);
        put(&mut f, sc + 168, old_mask); // oldmask
        put(
            &mut f,
            sc + 176,
            if matches!(sig, libc::SIGSEGV | libc::SIGBUS) {
                get(&info, 16)
            } else {
                0
            },
        ); // cr2
        put(&mut f, sc + 184, fpstate);
        put(&mut f, 8 + SIGCONTEXT_OFFSET + 256, old_mask); // uc_sigmask
        f[(8 + UCONTEXT_SIZE) as usize..].copy_from_slice(&info);
        if self.stub.write_mem(fpstate, &xstate).is_err() || self.stub.write_mem(frame, &f).is_err()
        {
            // No room for the frame: Linux kills with SIGSEGV.
            self.force_kill(libc::SIGSEGV);
            return;
        }
        {
            let mut mask = old_mask | act.mask;
            if act.flags & SA_NODEFER == 0 {
                mask |= sig_bit(sig);
            }
            lock(&self.thread.sig).mask = mask & !UNBLOCKABLE;
            if act.flags & SA_RESETHAND != 0 {
                // Linux resets only the handler; the flags stay.
                lock(&self.proc.sig).actions[sig as usize].handler = SIG_DFL;
            }
        }
        let regs = &mut self.regs;
        regs.rsp = frame;
        regs.rip = act.handler;
        regs.rdi = sig as u64;
        // Linux passes info and context whether or not SA_SIGINFO is set.
        regs.rsi = info_addr;
        regs.rdx = uc;
        regs.rax = 0;
        // Clear TF, DF, RF and AC for the handler, as Linux does.
        regs.eflags &= !(0x100 | 0x400 | 0x10000 | 0x40000);
        regs.orig_rax = u64::MAX;
    }

    /// rt_sigreturn: restores the registers, mask and FP state saved in the
    /// frame at the stack pointer. Returns the restored rax.
    pub fn sigreturn(&mut self) -> Result<u64, Errno> {
        let frame = self.regs.rsp.wrapping_sub(8);
        let uc = self
            .read_bytes(frame + 8, UCONTEXT_SIZE as usize)
            .inspect_err(|_| self.force_kill(libc::SIGSEGV))?;
        let sc = &uc[SIGCONTEXT_OFFSET..SIGCONTEXT_OFFSET + 256];
        let mut r = self.regs;
        r.r8 = get(sc, 0);
        r.r9 = get(sc, 8);
        r.r10 = get(sc, 16);
        r.r11 = get(sc, 24);
        r.r12 = get(sc, 32);
        r.r13 = get(sc, 40);
        r.r14 = get(sc, 48);
        r.r15 = get(sc, 56);
        r.rdi = get(sc, 64);
        r.rsi = get(sc, 72);
        r.rbp = get(sc, 80);
        r.rbx = get(sc, 88);
        r.rdx = get(sc, 96);
        r.rax = get(sc, 104);
        r.rcx = get(sc, 112);
        r.rsp = get(sc, 120);
        r.rip = get(sc, 128);
        r.eflags = (self.regs.eflags & !FIX_EFLAGS) | (get(sc, 136) & FIX_EFLAGS);
        r.orig_rax = u64::MAX;
        let fpstate = get(sc, 184);
        if fpstate != 0 {
            let hdr = self
                .read_bytes(fpstate, 512)
                .inspect_err(|_| self.force_kill(libc::SIGSEGV))?;
            let magic = u32::from_le_bytes([hdr[464], hdr[465], hdr[466], hdr[467]]);
            let size = u32::from_le_bytes([hdr[480], hdr[481], hdr[482], hdr[483]]) as usize;
            if magic == FP_XSTATE_MAGIC1 && (576..=MAX_XSTATE).contains(&size) {
                let mut area = self
                    .read_bytes(fpstate, size)
                    .inspect_err(|_| self.force_kill(libc::SIGSEGV))?;
                // The host wants the whole standard-format buffer back.
                let full = self.stub.get_xstate().map(|x| x.len()).unwrap_or(size);
                area.resize(full.max(size), 0);
                let bv = get(&area, 512) & !XFEATURE_MASK_TILEDATA;
                area[512..520].copy_from_slice(&bv.to_le_bytes());
                if self.stub.set_xstate(&area).is_err() {
                    self.force_kill(libc::SIGSEGV);
                    return Err(Errno::EFAULT);
                }
            }
        }
        let mask = get(&uc, SIGCONTEXT_OFFSET + 256);
        lock(&self.thread.sig).mask = mask & !UNBLOCKABLE;
        self.regs = r;
        Ok(r.rax)
    }
}
