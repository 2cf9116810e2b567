//! epoll instances and readiness of open files (poll, select and epoll
//! share [`readiness`]). Files backed by a host fd (pipes, terminals,
//! eventfd, timerfd) are polled on the host, on fds the sentry owns;
//! everything else is always ready, as regular files are on Linux.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::{interrupted, lock};
use crate::vfs::{FileOps, FileStat, OpenFile, VfsResult};

pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLET: u32 = 1 << 31;
const ALWAYS_READY: i16 = libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM;

/// One registration of an epoll instance.
struct Interest {
    file: Weak<OpenFile>,
    events: u32,
    data: u64,
    /// EPOLLONESHOT fired: disabled until EPOLL_CTL_MOD.
    disabled: bool,
}

pub struct EpollFile {
    interest: Mutex<BTreeMap<i32, Interest>>,
    stat: FileStat,
}

impl EpollFile {
    pub fn new() -> EpollFile {
        EpollFile {
            interest: Mutex::new(BTreeMap::new()),
            stat: crate::fsimpl::simple::synthetic_stat(
                crate::fsimpl::simple::next_ino(),
                0o600,
                0,
            ),
        }
    }

    pub fn ctl(
        &self,
        op: i32,
        fd: i32,
        file: &Arc<OpenFile>,
        events: u32,
        data: u64,
    ) -> Result<(), Errno> {
        let mut m = lock(&self.interest);
        // Entries whose file was closed everywhere are gone, as on Linux.
        m.retain(|_, i| i.file.strong_count() > 0);
        match op {
            libc::EPOLL_CTL_ADD => {
                if m.contains_key(&fd) {
                    return Err(Errno::EEXIST);
                }
                m.insert(
                    fd,
                    Interest {
                        file: Arc::downgrade(file),
                        events,
                        data,
                        disabled: false,
                    },
                );
            }
            libc::EPOLL_CTL_MOD => {
                let i = m.get_mut(&fd).ok_or(Errno::ENOENT)?;
                i.events = events;
                i.data = data;
                i.disabled = false;
            }
            libc::EPOLL_CTL_DEL => {
                m.remove(&fd).ok_or(Errno::ENOENT)?;
            }
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    }

    /// Waits for up to `max` ready registrations: (events, data) pairs.
    pub fn wait(&self, max: usize, timeout: Option<Duration>) -> Result<Vec<(u32, u64)>, Errno> {
        let entries: Vec<(i32, Arc<OpenFile>, u32)> = {
            let mut m = lock(&self.interest);
            m.retain(|_, i| i.file.strong_count() > 0);
            m.iter()
                .filter(|(_, i)| !i.disabled)
                .filter_map(|(fd, i)| i.file.upgrade().map(|f| (*fd, f, i.events)))
                .collect()
        };
        let files: Vec<(Arc<OpenFile>, i16)> = entries
            .iter()
            .map(|(_, f, ev)| {
                (
                    f.clone(),
                    (*ev & 0xffff) as i16 | libc::POLLHUP | libc::POLLERR,
                )
            })
            .collect();
        let revents = wait_ready(&files, timeout)?;
        let mut out = Vec::new();
        let mut m = lock(&self.interest);
        for ((fd, _, _), re) in entries.iter().zip(revents) {
            if re == 0 || out.len() >= max {
                continue;
            }
            if let Some(i) = m.get_mut(fd) {
                out.push((re as u16 as u32, i.data));
                if i.events & EPOLLONESHOT != 0 {
                    i.disabled = true;
                }
            }
        }
        Ok(out)
    }
}

impl Default for EpollFile {
    fn default() -> Self {
        Self::new()
    }
}

impl FileOps for EpollFile {
    fn seekable(&self) -> bool {
        false
    }
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.stat.clone())
    }
    fn as_epoll(&self) -> Option<&EpollFile> {
        Some(self)
    }
}

/// Waits until one of `files` is ready for its events, the timeout passes
/// (None waits forever) or the task has a signal to take (EINTR). Returns
/// the revents of each file.
pub fn wait_ready(
    files: &[(Arc<OpenFile>, i16)],
    timeout: Option<Duration>,
) -> Result<Vec<i16>, Errno> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let mut revents = vec![0i16; files.len()];
        let mut host: Vec<libc::pollfd> = Vec::new();
        let mut host_idx = Vec::new();
        let mut recheck = Vec::new();
        for (i, (f, ev)) in files.iter().enumerate() {
            if let Some(fixed) = f.ops.poll_fixed() {
                // Errors and hang-ups are reported whether asked or not,
                // as the host's poll does (select asks for neither).
                let ev = *ev | libc::POLLERR | libc::POLLHUP;
                revents[i] = fixed & ev;
                // Not ready for what is asked: wait for the file's wake-up,
                // unless it is already up for a reason nobody asked about
                // (waiting on it would spin).
                if revents[i] == 0 {
                    let readers = (fixed & libc::POLLIN == 0).then(|| f.ops.poll_fd());
                    let writers = (fixed & libc::POLLOUT == 0 && ev & libc::POLLOUT != 0)
                        .then(|| f.ops.poll_fd_out());
                    for fd in [readers, writers].into_iter().flatten().flatten() {
                        host.push(libc::pollfd {
                            fd,
                            events: libc::POLLIN,
                            revents: 0,
                        });
                        host_idx.push(i);
                        recheck.push(i);
                    }
                }
                continue;
            }
            match f.ops.poll_fd() {
                Some(fd) => {
                    host.push(libc::pollfd {
                        fd,
                        events: *ev,
                        revents: 0,
                    });
                    host_idx.push(i);
                }
                None => revents[i] = *ev & ALWAYS_READY,
            }
        }
        let any_virtual = revents.iter().any(|r| *r != 0);
        // Slices of at most 100 ms, so a signal is noticed even if the
        // interrupt raced with the host call.
        let slice_ms = if any_virtual {
            0
        } else {
            match deadline {
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(100) as i32,
                None => 100,
            }
        };
        if !host.is_empty() || slice_ms > 0 {
            // SAFETY: poll reads and writes the pollfd array we own; the fds
            // are the sentry's own.
            let n = unsafe { libc::poll(host.as_mut_ptr(), host.len() as libc::nfds_t, slice_ms) };
            if n < 0 && Errno::last() != Errno::EINTR {
                return Err(Errno::last());
            }
            for (p, i) in host.iter().zip(&host_idx) {
                revents[*i] |= p.revents;
            }
            for i in recheck {
                if revents[i] != 0 {
                    let (f, ev) = &files[i];
                    revents[i] =
                        f.ops.poll_fixed().unwrap_or(0) & (*ev | libc::POLLERR | libc::POLLHUP);
                }
            }
        }
        if revents.iter().any(|r| *r != 0) {
            return Ok(revents);
        }
        if interrupted() {
            return Err(Errno::EINTR);
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                return Ok(revents);
            }
        }
    }
}
