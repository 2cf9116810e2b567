//! Named pipes (FIFOs made with mknod/mkfifo): a pipe buffer in the sentry
//! with Linux's FIFO rules — opening one end blocks until the other end is
//! open (unless O_NONBLOCK: readers succeed, writers get ENXIO), reads see
//! EOF once no writer is left, writes to a FIFO without readers fail with
//! EPIPE (and SIGPIPE), writes of up to PIPE_BUF bytes are atomic.

/// The largest pipe an unprivileged process may ask for (F_SETPIPE_SZ),
/// as Linux's default /proc/sys/fs/pipe-max-size.
pub const PIPE_MAX_SIZE: u32 = 1 << 20;

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::errno::Errno;

use super::ready::ReadyFlag;
use crate::kernel::{interrupted, lock};
use crate::vfs::{FileOps, FileStat, VfsResult};

/// Default capacity, as Linux's 16 pages.
const CAPACITY: usize = 65536;
const PIPE_BUF: usize = 4096;

struct PipeState {
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
    /// Opens of each end so far, for open() waiting on the other end (an
    /// end that opened and closed again still releases the waiter).
    reader_opens: u64,
    writer_opens: u64,
}

pub struct Fifo {
    state: Mutex<PipeState>,
    opened: Condvar,
    /// A read would not block (data, or no writer left).
    readable: ReadyFlag,
    /// A write would not block.
    writable: ReadyFlag,
}

impl Fifo {
    pub fn new() -> VfsResult<Arc<Fifo>> {
        let f = Arc::new(Fifo {
            state: Mutex::new(PipeState {
                buf: VecDeque::new(),
                readers: 0,
                writers: 0,
                reader_opens: 0,
                writer_opens: 0,
            }),
            opened: Condvar::new(),
            readable: ReadyFlag::new()?,
            writable: ReadyFlag::new()?,
        });
        f.update(&lock(&f.state));
        Ok(f)
    }

    fn update(&self, st: &PipeState) {
        self.readable.update(!st.buf.is_empty() || st.writers == 0);
        self.writable
            .update(st.buf.len() < CAPACITY || st.readers == 0);
    }

    /// Opens an end; `stat` is what fstat on it shows (the FIFO's inode).
    pub fn open(self: &Arc<Fifo>, flags: i32, stat: FileStat) -> VfsResult<Arc<dyn FileOps>> {
        let nonblock = flags & libc::O_NONBLOCK != 0;
        let (read, write) = match flags & libc::O_ACCMODE {
            libc::O_RDONLY => (true, false),
            libc::O_WRONLY => (false, true),
            _ => (true, true),
        };
        let mut st = lock(&self.state);
        if write && !read && nonblock && st.readers == 0 {
            return Err(Errno::ENXIO);
        }
        if read {
            st.readers += 1;
            st.reader_opens += 1;
        }
        if write {
            st.writers += 1;
            st.writer_opens += 1;
        }
        self.update(&st);
        self.opened.notify_all();
        // Wait for the other end (O_RDWR never waits).
        if !(nonblock || read && write) {
            let other_opens = |st: &PipeState| {
                if read {
                    st.writer_opens
                } else {
                    st.reader_opens
                }
            };
            let start = other_opens(&st);
            loop {
                let other = if read { st.writers } else { st.readers };
                if other > 0 || other_opens(&st) != start {
                    break;
                }
                if interrupted() {
                    if read {
                        st.readers -= 1;
                    } else {
                        st.writers -= 1;
                    }
                    self.update(&st);
                    return Err(Errno::EINTR);
                }
                st = self
                    .opened
                    .wait_timeout(st, Duration::from_millis(50))
                    .map(|r| r.0)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
        drop(st);
        Ok(Arc::new(FifoEnd {
            fifo: self.clone(),
            read,
            write,
            nonblocking: AtomicBool::new(nonblock),
            stat,
        }))
    }
}

pub struct FifoEnd {
    fifo: Arc<Fifo>,
    read: bool,
    write: bool,
    nonblocking: AtomicBool,
    stat: FileStat,
}

impl Drop for FifoEnd {
    fn drop(&mut self) {
        let mut st = lock(&self.fifo.state);
        if self.read {
            st.readers -= 1;
        }
        if self.write {
            st.writers -= 1;
        }
        if st.readers == 0 && st.writers == 0 {
            // A FIFO keeps no data once nobody has it open.
            st.buf.clear();
        }
        self.fifo.update(&st);
    }
}

impl FileOps for FifoEnd {
    fn seekable(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut st = lock(&self.fifo.state);
                if !st.buf.is_empty() {
                    let n = buf.len().min(st.buf.len());
                    for (i, b) in st.buf.drain(..n).enumerate() {
                        buf[i] = b;
                    }
                    self.fifo.update(&st);
                    return Ok(n);
                }
                if st.writers == 0 {
                    return Ok(0);
                }
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(Errno::EAGAIN);
            }
            self.fifo.readable.wait()?;
        }
    }

    fn write_at(&self, buf: &[u8], _off: u64) -> VfsResult<usize> {
        let mut done = 0;
        loop {
            {
                let mut st = lock(&self.fifo.state);
                if st.readers == 0 {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(Errno::EPIPE)
                    };
                }
                let room = CAPACITY - st.buf.len().min(CAPACITY);
                let left = buf.len() - done;
                // Small writes go in whole or not at all.
                let fits = if left <= PIPE_BUF {
                    room >= left
                } else {
                    room > 0
                };
                if fits {
                    let n = left.min(room);
                    st.buf.extend(&buf[done..done + n]);
                    done += n;
                    self.fifo.update(&st);
                    if done == buf.len() {
                        return Ok(done);
                    }
                }
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EAGAIN)
                };
            }
            if let Err(e) = self.fifo.writable.wait() {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
        }
    }

    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.stat.clone())
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(if self.read {
            self.fifo.readable.fd.as_raw_fd()
        } else {
            self.fifo.writable.fd.as_raw_fd()
        })
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    fn is_pipe(&self) -> bool {
        true
    }
}
