//! Contents of an in-memory regular file (overlay upper layer, tmpfs).
//!
//! Data starts on the sentry's heap. The first time an application maps
//! the file MAP_SHARED (or maps it at all), the bytes move into a memfd
//! owned by the file, which is then mapped into every stub that maps the
//! file: writes through one mapping, through write(2) or through another
//! process's mapping all touch the same pages, as on Linux. Only mapped
//! files pay for an fd in the sentry.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::fsimpl::host::retry_host;
use crate::vfs::VfsResult;

/// Bytes held by all in-memory file data (upper layers and tmpfs).
static MEM_USED: AtomicU64 = AtomicU64::new(0);

/// Largest in-memory file, as ext4's limit (writes beyond get EFBIG).
pub const MAX_FILE_SIZE: u64 = 1 << 40;

/// The most in-memory file data the sandbox may hold: half the machine's
/// memory, tmpfs's default. Past it writes fail with ENOSPC instead of
/// letting a container exhaust the host (or abort the sentry).
fn mem_limit() -> u64 {
    static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        nix::sys::sysinfo::sysinfo()
            .map(|s| s.ram_total() / 2)
            .unwrap_or(1 << 30)
    })
}

/// Charges `grow` bytes to the sandbox-wide limit.
fn charge(grow: u64) -> VfsResult<()> {
    let used = MEM_USED.fetch_add(grow, Ordering::SeqCst);
    if used.saturating_add(grow) > mem_limit() {
        MEM_USED.fetch_sub(grow, Ordering::SeqCst);
        return Err(Errno::ENOSPC);
    }
    Ok(())
}

fn uncharge(shrink: u64) {
    MEM_USED.fetch_sub(shrink, Ordering::SeqCst);
}

/// Identities of memfd-backed files, for shared futex keys.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub enum FileData {
    Heap(Vec<u8>),
    Memfd { fd: OwnedFd, len: u64, id: u64 },
}

impl Default for FileData {
    fn default() -> Self {
        FileData::Heap(Vec::new())
    }
}

impl FileData {
    pub fn len(&self) -> u64 {
        match self {
            FileData::Heap(d) => d.len() as u64,
            FileData::Memfd { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) -> VfsResult<usize> {
        let len = self.len();
        if off >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - off) as usize);
        match self {
            FileData::Heap(d) => {
                let off = off as usize;
                buf[..n].copy_from_slice(&d[off..off + n]);
                Ok(n)
            }
            FileData::Memfd { fd, .. } => {
                retry_host(|| nix::sys::uio::pread(fd, &mut buf[..n], off as i64))
            }
        }
    }

    /// Writes `buf` at `off`, growing the file as needed.
    pub fn write_at(&mut self, buf: &[u8], off: u64) -> VfsResult<usize> {
        let end = off.checked_add(buf.len() as u64).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        if end > self.len() {
            self.resize(end)?;
        }
        match self {
            FileData::Heap(d) => {
                d[off as usize..end as usize].copy_from_slice(buf);
                Ok(buf.len())
            }
            FileData::Memfd { fd, .. } => {
                let mut done = 0;
                while done < buf.len() {
                    let n = retry_host(|| {
                        nix::sys::uio::pwrite(&*fd, &buf[done..], (off + done as u64) as i64)
                    })?;
                    if n == 0 {
                        return Err(Errno::ENOSPC);
                    }
                    done += n;
                }
                Ok(done)
            }
        }
    }

    /// Sets the size, charging growth to the sandbox-wide limit; new bytes
    /// read as zeros.
    pub fn resize(&mut self, new_len: u64) -> VfsResult<()> {
        if new_len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let old = self.len();
        if new_len > old {
            charge(new_len - old)?;
        }
        let grown = match self {
            FileData::Heap(d) => {
                let want = new_len as usize;
                if want > d.len() && d.try_reserve(want - d.len()).is_err() {
                    Err(Errno::ENOSPC)
                } else {
                    d.resize(want, 0);
                    Ok(())
                }
            }
            FileData::Memfd { fd, len, .. } => {
                let r = retry_host(|| nix::unistd::ftruncate(&*fd, new_len as i64));
                if r.is_ok() {
                    *len = new_len;
                }
                r
            }
        };
        match grown {
            Ok(()) => {
                if new_len < old {
                    uncharge(old - new_len);
                }
                Ok(())
            }
            Err(e) => {
                if new_len > old {
                    uncharge(new_len - old);
                }
                Err(e)
            }
        }
    }

    /// Zeroes [start, end) within the current size.
    pub fn zero_range(&mut self, start: u64, end: u64) -> VfsResult<()> {
        let end = end.min(self.len());
        if start >= end {
            return Ok(());
        }
        match self {
            FileData::Heap(d) => {
                d[start as usize..end as usize].fill(0);
                Ok(())
            }
            FileData::Memfd { .. } => {
                let zeros = vec![0u8; ((end - start) as usize).min(1 << 20)];
                let mut at = start;
                while at < end {
                    let n = ((end - at) as usize).min(zeros.len());
                    self.write_at(&zeros[..n], at)?;
                    at += n as u64;
                }
                Ok(())
            }
        }
    }

    /// The memfd holding the data (moving it there on first use) and the
    /// file's identity for shared futex keys.
    pub fn mappable(&mut self) -> VfsResult<(RawFd, u64)> {
        if let FileData::Heap(d) = self {
            let fd = memfd_create(c"rvisor-file", MemFdCreateFlag::MFD_CLOEXEC)
                .map_err(|_| Errno::ENOMEM)?;
            retry_host(|| nix::unistd::ftruncate(&fd, d.len() as i64))?;
            let mut done = 0;
            while done < d.len() {
                let n = retry_host(|| nix::sys::uio::pwrite(&fd, &d[done..], done as i64))?;
                if n == 0 {
                    return Err(Errno::ENOSPC);
                }
                done += n;
            }
            let len = d.len() as u64;
            // The charge for the bytes moves with them to the memfd.
            *d = Vec::new();
            *self = FileData::Memfd {
                fd,
                len,
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            };
        }
        match self {
            FileData::Memfd { fd, id, .. } => Ok((fd.as_raw_fd(), *id)),
            FileData::Heap(_) => Err(Errno::EIO),
        }
    }
}

impl Drop for FileData {
    fn drop(&mut self) {
        uncharge(self.len());
    }
}
