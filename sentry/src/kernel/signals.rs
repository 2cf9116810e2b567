//! Signal dispositions, masks and pending sets, siginfo, and Linux's default
//! actions. Delivery to handlers (frames, sigreturn) is in `sigframe.rs`.

pub const NSIG: usize = 65;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    CoreDump,
    Ignore,
    Stop,
    Continue,
}

pub fn default_action(sig: i32) -> DefaultAction {
    match sig {
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH => DefaultAction::Ignore,
        libc::SIGCONT => DefaultAction::Continue,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => DefaultAction::Stop,
        libc::SIGQUIT
        | libc::SIGILL
        | libc::SIGTRAP
        | libc::SIGABRT
        | libc::SIGBUS
        | libc::SIGFPE
        | libc::SIGSEGV
        | libc::SIGXCPU
        | libc::SIGXFSZ
        | libc::SIGSYS => DefaultAction::CoreDump,
        _ => DefaultAction::Terminate,
    }
}

pub fn sig_bit(sig: i32) -> u64 {
    if (1..NSIG as i32).contains(&sig) {
        1u64 << (sig - 1)
    } else {
        0
    }
}

/// SIGKILL and SIGSTOP can be neither caught, blocked nor ignored.
pub const UNBLOCKABLE: u64 = (1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1));

/// A siginfo_t as the application sees it (128 bytes).
pub type SigInfo = [u8; 128];

pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TKILL: i32 = -6;

fn put_i32(b: &mut SigInfo, off: usize, v: i32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// siginfo for kill/tkill and kernel-sent signals: signo, code, sender.
pub fn info_sender(sig: i32, code: i32, pid: i32, uid: u32) -> SigInfo {
    let mut b = [0u8; 128];
    put_i32(&mut b, 0, sig);
    put_i32(&mut b, 8, code);
    put_i32(&mut b, 16, pid);
    put_i32(&mut b, 20, uid as i32);
    b
}

/// siginfo for a fault: signo, code, address.
pub fn info_fault(sig: i32, code: i32, addr: u64) -> SigInfo {
    let mut b = [0u8; 128];
    put_i32(&mut b, 0, sig);
    put_i32(&mut b, 8, code);
    b[16..24].copy_from_slice(&addr.to_le_bytes());
    b
}

/// waitid's (si_code, si_status) for a child that ended with wait status
/// `status`.
pub fn child_code(status: i32) -> (i32, i32) {
    if status & 0x7f == 0 {
        (1, (status >> 8) & 0xff) // CLD_EXITED
    } else if status & 0x80 != 0 {
        (3, status & 0x7f) // CLD_DUMPED
    } else {
        (2, status & 0x7f) // CLD_KILLED
    }
}

/// siginfo of SIGCHLD for a child that ended with wait status `status`.
pub fn info_child(pid: i32, uid: u32, status: i32) -> SigInfo {
    let (code, st) = child_code(status);
    let mut b = info_sender(libc::SIGCHLD, code, pid, uid);
    put_i32(&mut b, 24, st);
    b
}

#[derive(Clone)]
pub struct SignalState {
    pub actions: [SigAction; NSIG],
    /// Signals sent to the process as a whole.
    pub pending: u64,
    /// siginfo of each pending standard signal.
    pub info: Vec<SigInfo>,
}

impl Default for SignalState {
    fn default() -> Self {
        SignalState {
            actions: [SigAction::default(); NSIG],
            pending: 0,
            info: vec![[0u8; 128]; NSIG],
        }
    }
}

impl SignalState {
    pub fn action(&self, sig: i32) -> SigAction {
        self.actions.get(sig as usize).copied().unwrap_or_default()
    }

    /// execve: caught signals go back to default; ignored ones stay ignored.
    pub fn reset_for_exec(&mut self) {
        for a in self.actions.iter_mut() {
            if a.handler != SIG_IGN {
                *a = SigAction::default();
            }
        }
    }
}
