//! Signal dispositions, masks and pending sets, and Linux's default actions.
//! Handlers are recorded but not yet run (that comes with signal frames).

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

#[derive(Clone)]
pub struct SignalState {
    pub actions: [SigAction; NSIG],
    pub mask: u64,
    pub pending: u64,
    pub altstack: (u64, i32, u64),
}

impl Default for SignalState {
    fn default() -> Self {
        SignalState {
            actions: [SigAction::default(); NSIG],
            mask: 0,
            pending: 0,
            altstack: (0, libc::SS_DISABLE, 0),
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
        self.altstack = (0, libc::SS_DISABLE, 0);
    }
}
