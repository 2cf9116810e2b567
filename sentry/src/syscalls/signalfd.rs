//! signalfd and signalfd4: a file that dequeues the caller's pending
//! signals in its mask as `struct signalfd_siginfo` records.
//!
//! Readiness for poll and epoll comes from a host eventfd the kernel
//! refreshes whenever a signal is queued for the process (see
//! [`notify_queued`]) and that the file refreshes itself before each poll.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use nix::errno::Errno;

use super::file::{get_file, install_fd};
use super::{arg_fd, SysResult};
use crate::fsimpl::ready::ReadyFlag;
use crate::kernel::signals::sig_bit;
use crate::kernel::task::Task;
use crate::kernel::{lock, Process, Thread};
use crate::vfs::{FileOps, FileStat, OpenFile, VfsResult};

const SIGNALFD_SIGINFO_SIZE: usize = 128;
const UNBLOCKABLE: u64 = (1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1));

pub struct SignalFd {
    mask: AtomicU64,
    proc: Weak<Process>,
    ready: ReadyFlag,
    nonblocking: AtomicBool,
}

impl SignalFd {
    /// Signals in the mask pending for the process or any of its threads.
    fn pending(&self) -> u64 {
        let Some(p) = self.proc.upgrade() else {
            return 0;
        };
        let mut pending = lock(&p.sig).pending;
        for t in lock(&p.threads).iter() {
            pending |= lock(&t.sig).pending;
        }
        pending & self.mask.load(Ordering::Relaxed)
    }

    pub fn refresh(&self) {
        self.ready.update(self.pending() != 0);
    }

    /// Dequeues one signal in the mask: the reading thread's own first.
    fn take(&self, thread: Option<&Arc<Thread>>) -> Option<[u8; 128]> {
        let p = self.proc.upgrade()?;
        let info = self.take_locked(&p, thread)?;
        super::timer::signal_dequeued(&p, &info);
        Some(info)
    }

    fn take_locked(&self, p: &Process, thread: Option<&Arc<Thread>>) -> Option<[u8; 128]> {
        let mask = self.mask.load(Ordering::Relaxed);
        if let Some(t) = thread {
            let mut ts = lock(&t.sig);
            if ts.pending & mask != 0 {
                let sig = (ts.pending & mask).trailing_zeros() as i32 + 1;
                ts.pending &= !sig_bit(sig);
                return Some(ts.info[sig as usize]);
            }
        }
        let mut ss = lock(&p.sig);
        if ss.pending & mask != 0 {
            let sig = (ss.pending & mask).trailing_zeros() as i32 + 1;
            ss.pending &= !sig_bit(sig);
            return Some(ss.info[sig as usize]);
        }
        None
    }
}

/// Converts a kernel siginfo into a signalfd_siginfo (Linux's
/// signalfd_copyinfo, by the layout the siginfo's code implies).
fn to_signalfd_siginfo(si: &[u8; 128]) -> [u8; SIGNALFD_SIGINFO_SIZE] {
    let i32_at = |o: usize| i32::from_le_bytes([si[o], si[o + 1], si[o + 2], si[o + 3]]);
    let u64_at = |o: usize| u64::from_le_bytes(si[o..o + 8].try_into().unwrap_or([0; 8]));
    let (signo, errno, code) = (i32_at(0), i32_at(4), i32_at(8));
    let mut out = [0u8; SIGNALFD_SIGINFO_SIZE];
    let mut put32 = |o: usize, v: i32| out[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put32(0, signo);
    put32(4, errno);
    put32(8, code);
    let fault = matches!(
        signo,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
    );
    let put64 =
        |out: &mut [u8; 128], o: usize, v: u64| out[o..o + 8].copy_from_slice(&v.to_le_bytes());
    if code == -2 {
        // SI_TIMER: tid, overrun, value.
        out[24..28].copy_from_slice(&i32_at(16).to_le_bytes());
        out[32..36].copy_from_slice(&i32_at(20).to_le_bytes());
        out[44..48].copy_from_slice(&i32_at(24).to_le_bytes());
        put64(&mut out, 48, u64_at(24));
    } else if signo == libc::SIGCHLD && code > 0 {
        out[12..16].copy_from_slice(&i32_at(16).to_le_bytes());
        out[16..20].copy_from_slice(&i32_at(20).to_le_bytes());
        out[40..44].copy_from_slice(&i32_at(24).to_le_bytes());
        put64(&mut out, 56, u64_at(32));
        put64(&mut out, 64, u64_at(40));
    } else if fault && code > 0 {
        put64(&mut out, 72, u64_at(16));
    } else {
        out[12..16].copy_from_slice(&i32_at(16).to_le_bytes());
        out[16..20].copy_from_slice(&i32_at(20).to_le_bytes());
        out[44..48].copy_from_slice(&i32_at(24).to_le_bytes());
        put64(&mut out, 48, u64_at(24));
    }
    out
}

impl FileOps for SignalFd {
    fn seekable(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        if buf.len() < SIGNALFD_SIGINFO_SIZE {
            return Err(Errno::EINVAL);
        }
        let thread = crate::kernel::current_thread();
        let mut done = 0;
        loop {
            while done + SIGNALFD_SIGINFO_SIZE <= buf.len() {
                match self.take(thread.as_ref()) {
                    Some(si) => {
                        buf[done..done + SIGNALFD_SIGINFO_SIZE]
                            .copy_from_slice(&to_signalfd_siginfo(&si));
                        done += SIGNALFD_SIGINFO_SIZE;
                    }
                    None => break,
                }
            }
            self.refresh();
            if done > 0 {
                return Ok(done);
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(Errno::EAGAIN);
            }
            if crate::kernel::interrupted() {
                return Err(Errno::EINTR);
            }
            // Queued signals refresh the flag (notify_queued).
            let mut pfd = [libc::pollfd {
                fd: self.ready.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: poll reads and writes our one pollfd; the interrupt
            // signal cuts it short.
            unsafe { libc::poll(pfd.as_mut_ptr(), 1, 50) };
        }
    }

    fn stat(&self) -> VfsResult<FileStat> {
        Ok(crate::fsimpl::simple::synthetic_stat(0, 0o600, 0))
    }

    fn poll_fd(&self) -> Option<RawFd> {
        self.refresh();
        Some(self.ready.fd.as_raw_fd())
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    fn as_signalfd(&self) -> Option<&SignalFd> {
        Some(self)
    }
}

/// The kernel queued a signal for `p`: its signalfds may be readable now.
pub fn notify_queued(p: &Process) {
    let fds: Vec<Arc<SignalFd>> = lock(&p.signalfds)
        .iter()
        .filter_map(|w| w.upgrade())
        .collect();
    for f in fds {
        f.refresh();
    }
}

fn do_signalfd(t: &mut Task, fd: i32, mask_addr: u64, size: u64, flags: i32) -> SysResult {
    if flags & !(libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) != 0 || size != 8 {
        return Err(Errno::EINVAL);
    }
    let mask: u64 = t.read_obj(mask_addr)?;
    let mask = mask & !UNBLOCKABLE;
    if fd != -1 {
        let f = get_file(t, fd)?;
        let sfd = f.ops.as_signalfd().ok_or(Errno::EINVAL)?;
        sfd.mask.store(mask, Ordering::Relaxed);
        sfd.refresh();
        return Ok(fd as u64);
    }
    let sfd = Arc::new(SignalFd {
        mask: AtomicU64::new(mask),
        proc: Arc::downgrade(&t.proc),
        ready: ReadyFlag::new()?,
        nonblocking: AtomicBool::new(flags & libc::SFD_NONBLOCK != 0),
    });
    {
        let mut list = lock(&t.proc.signalfds);
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&sfd));
    }
    sfd.refresh();
    let file = OpenFile::with_display(
        sfd,
        b"anon_inode:[signalfd]".to_vec(),
        libc::O_RDWR | (flags & libc::SFD_NONBLOCK),
    );
    install_fd(t, file, flags & libc::SFD_CLOEXEC != 0)
}

pub fn signalfd(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_signalfd(t, arg_fd(a[0]), a[1], a[2], 0)
}

pub fn signalfd4(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_signalfd(t, arg_fd(a[0]), a[1], a[2], a[3] as i32)
}
