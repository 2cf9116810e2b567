//! Readiness of objects that live in the sentry (pty queues, FIFOs): a
//! host eventfd whose counter is non-zero exactly while the condition
//! holds, so blocking calls, poll and epoll wait on it like on any host fd.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::errno::Errno;

use super::host::retry_host;
use crate::vfs::VfsResult;

/// A host eventfd used as a level-triggered "would not block" flag.
pub struct ReadyFlag {
    pub fd: OwnedFd,
    set: AtomicBool,
}

impl ReadyFlag {
    pub fn new() -> VfsResult<ReadyFlag> {
        // SAFETY: eventfd creates a new fd that we take ownership of.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        Ok(ReadyFlag {
            fd,
            set: AtomicBool::new(false),
        })
    }

    pub fn update(&self, ready: bool) {
        if self.set.swap(ready, Ordering::SeqCst) == ready {
            return;
        }
        if ready {
            let _ = nix::unistd::write(&self.fd, &1u64.to_ne_bytes());
        } else {
            let mut b = [0u8; 8];
            let _ = nix::unistd::read(self.fd.as_raw_fd(), &mut b);
        }
    }

    /// Blocks until the flag is set or a signal interrupts (EINTR).
    pub fn wait(&self) -> VfsResult<()> {
        self.wait_until(None)
    }

    /// Blocks until the flag is set, a signal interrupts (EINTR) or
    /// `deadline` passes (EAGAIN, as a socket's SO_RCVTIMEO/SO_SNDTIMEO
    /// ends a wait on Linux).
    pub fn wait_until(&self, deadline: Option<Instant>) -> VfsResult<()> {
        let mut pfd = [libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        retry_host(|| {
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Errno::EAGAIN);
                    }
                    // Rounded up, so the wait never ends early.
                    left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
                }
            };
            // SAFETY: poll reads and writes our one pollfd.
            let r = unsafe { libc::poll(pfd.as_mut_ptr(), 1, ms) };
            if r < 0 {
                Err(Errno::last())
            } else if r == 0 {
                Err(Errno::EAGAIN)
            } else {
                Ok(())
            }
        })
    }
}
