//! Contents of an in-memory regular file (overlay upper layer, tmpfs).
//!
//! Data starts on the sentry's heap, or, for the rootfs's upper layer
//! under `--overlay self`, in a region of the [`Filestore`]: one unnamed
//! file on the disk that holds the rootfs, so the container's writes do
//! not pin the host's memory. The first time an application maps the file
//! (MAP_SHARED, or at all), the bytes move into a memfd owned by the file,
//! which is then mapped into every stub that maps the file: writes through
//! one mapping, through write(2) or through another process's mapping all
//! touch the same pages, as on Linux. Only mapped files pay for an fd in
//! the sentry.

use crate::mm::offsets::OffsetAllocator;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::fsimpl::host::retry_host;
use crate::vfs::VfsResult;

/// Bytes held by all in-memory file data (upper layers and tmpfs).
static MEM_USED: AtomicU64 = AtomicU64::new(0);

/// Bytes of file data the sentry holds in memory now.
pub fn mem_used() -> u64 {
    MEM_USED.load(Ordering::Relaxed)
}

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

/// Regions of the filestore are whole pages.
const STORE_PAGE: u64 = 4096;

/// One unnamed host file holding the data of many sandbox files, each in a
/// contiguous region that is reallocated (doubling) as the file grows.
/// Freed regions are punched out, so the disk holds only live data.
pub struct Filestore {
    fd: OwnedFd,
    alloc: Mutex<OffsetAllocator>,
}

impl Filestore {
    /// A store in `fd`: an empty file opened read-write (the CLI makes it
    /// with O_TMPFILE in the rootfs's directory).
    pub fn new(fd: OwnedFd) -> Arc<Filestore> {
        Arc::new(Filestore {
            fd,
            alloc: Mutex::new(OffsetAllocator::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetAllocator> {
        self.alloc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A region of at least `cap` bytes (page-rounded), reading as zeros.
    fn allocate(&self, cap: u64) -> VfsResult<(u64, u64)> {
        let cap = cap
            .checked_next_multiple_of(STORE_PAGE)
            .ok_or(Errno::EFBIG)?
            .max(STORE_PAGE);
        let mut a = self.lock();
        let old_end = a.end();
        let off = a.alloc(cap, u64::MAX).ok_or(Errno::EFBIG)?;
        let end = a.end();
        if end > old_end {
            // The host file must cover the region, or reads of its
            // unwritten tail (a file grown by truncate) would come back
            // short.
            if let Err(e) = retry_host(|| nix::unistd::ftruncate(&self.fd, end as i64)) {
                a.release(off, cap);
                return Err(e);
            }
        }
        Ok((off, cap))
    }

    /// Gives a region back: its blocks are punched out (so it reads as
    /// zeros when reused) and it joins its free neighbours.
    fn release(&self, off: u64, cap: u64) {
        self.punch(off, cap);
        let mut a = self.lock();
        if a.release(off, cap) {
            // Best effort: a store that stays longer only wastes a hole.
            let end = a.end();
            let _ = retry_host(|| nix::unistd::ftruncate(&self.fd, end as i64));
        }
    }

    /// Zeroes [off, off+len) and frees its whole blocks on the disk.
    fn punch(&self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mode = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
        let punched =
            retry_host(|| nix::fcntl::fallocate(self.fd.as_raw_fd(), mode, off as i64, len as i64));
        if punched.is_err() {
            // A filesystem without hole punching: write the zeros.
            let zeros = vec![0u8; (len as usize).min(1 << 20)];
            let mut at = 0;
            while at < len {
                let n = ((len - at) as usize).min(zeros.len());
                if self.pwrite_all(&zeros[..n], off + at).is_err() {
                    break;
                }
                at += n as u64;
            }
        }
    }

    fn pwrite_all(&self, buf: &[u8], off: u64) -> VfsResult<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = retry_host(|| {
                nix::sys::uio::pwrite(&self.fd, &buf[done..], (off + done as u64) as i64)
            })?;
            if n == 0 {
                return Err(Errno::ENOSPC);
            }
            done += n;
        }
        Ok(())
    }

    /// Copies `len` bytes inside the store, from `from` to `to`, skipping
    /// holes (the destination is a fresh region, which reads as zeros).
    fn copy(&self, from: u64, to: u64, len: u64) -> VfsResult<()> {
        use nix::unistd::{lseek, Whence};
        let fd = self.fd.as_raw_fd();
        let stop = from + len;
        let mut buf = vec![0u8; (len as usize).min(1 << 20)];
        let mut at = from;
        while at < stop {
            // The next stretch of data; a filesystem without SEEK_DATA
            // reports all of the file as data.
            let data = match lseek(fd, at as i64, Whence::SeekData) {
                Ok(d) => d as u64,
                Err(Errno::ENXIO) => break,
                Err(_) => at,
            };
            if data >= stop {
                break;
            }
            let hole = match lseek(fd, data as i64, Whence::SeekHole) {
                Ok(h) => (h as u64).min(stop),
                Err(_) => stop,
            };
            let mut pos = data;
            while pos < hole {
                let want = ((hole - pos) as usize).min(buf.len());
                let n =
                    retry_host(|| nix::sys::uio::pread(&self.fd, &mut buf[..want], pos as i64))?;
                if n == 0 {
                    return Err(Errno::EIO);
                }
                self.pwrite_all(&buf[..n], to + (pos - from))?;
                pos += n as u64;
            }
            at = hole;
        }
        Ok(())
    }
}

pub enum FileData {
    Heap(Vec<u8>),
    Memfd {
        fd: OwnedFd,
        len: u64,
        id: u64,
    },
    /// A region of the filestore (`region` is (offset, capacity), none
    /// until the first byte).
    Stored {
        store: Arc<Filestore>,
        region: Option<(u64, u64)>,
        len: u64,
    },
}

impl Default for FileData {
    fn default() -> Self {
        FileData::Heap(Vec::new())
    }
}

impl FileData {
    /// Empty contents: in `store` when given, on the heap otherwise.
    pub fn new_in(store: Option<&Arc<Filestore>>) -> FileData {
        match store {
            Some(store) => FileData::Stored {
                store: store.clone(),
                region: None,
                len: 0,
            },
            None => FileData::default(),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            FileData::Heap(d) => d.len() as u64,
            FileData::Memfd { len, .. } | FileData::Stored { len, .. } => *len,
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
            FileData::Stored { store, region, .. } => {
                let (base, _) = region.ok_or(Errno::EIO)?;
                retry_host(|| nix::sys::uio::pread(&store.fd, &mut buf[..n], (base + off) as i64))
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
            FileData::Stored { store, region, .. } => {
                if buf.is_empty() {
                    return Ok(0);
                }
                let (base, _) = region.ok_or(Errno::EIO)?;
                store.pwrite_all(buf, base + off)?;
                Ok(buf.len())
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
        if let FileData::Stored { store, region, len } = self {
            // On the disk: no charge against the memory limit.
            return resize_stored(store, region, len, new_len);
        }
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
            FileData::Stored { .. } => Ok(()),
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
            FileData::Stored { store, region, .. } => {
                if let Some((base, _)) = region {
                    store.punch(*base + start, end - start);
                }
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
        if let FileData::Stored { .. } = self {
            // Mapped files live in memory: a region may move as the file
            // grows, which a mapping could not follow.
            let len = self.len();
            charge(len)?;
            let mut bytes = Vec::new();
            if bytes.try_reserve_exact(len as usize).is_err() {
                uncharge(len);
                return Err(Errno::ENOMEM);
            }
            bytes.resize(len as usize, 0);
            if let Err(e) = self.read_at(&mut bytes, 0) {
                uncharge(len);
                return Err(e);
            }
            // Dropping the Stored value releases its region.
            *self = FileData::Heap(bytes);
        }
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
            FileData::Heap(_) | FileData::Stored { .. } => Err(Errno::EIO),
        }
    }
}

/// Resizes a filestore file: growth beyond the region moves it to one of
/// twice the size; shrinking zeroes the cut-off bytes so a later growth
/// reads zeros.
fn resize_stored(
    store: &Arc<Filestore>,
    region: &mut Option<(u64, u64)>,
    len: &mut u64,
    new_len: u64,
) -> VfsResult<()> {
    let cap = region.map_or(0, |(_, c)| c);
    if new_len > cap {
        let want = new_len.max(cap.saturating_mul(2));
        let (off, new_cap) = store.allocate(want)?;
        if let Some((old_off, old_cap)) = *region {
            if let Err(e) = store.copy(old_off, off, *len) {
                store.release(off, new_cap);
                return Err(e);
            }
            store.release(old_off, old_cap);
        }
        *region = Some((off, new_cap));
    } else if new_len < *len {
        if let Some((base, _)) = *region {
            store.punch(base + new_len, *len - new_len);
        }
    }
    *len = new_len;
    Ok(())
}

impl Drop for FileData {
    fn drop(&mut self) {
        match self {
            FileData::Stored { store, region, .. } => {
                if let Some((off, cap)) = region.take() {
                    store.release(off, cap);
                }
            }
            _ => uncharge(self.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Arc<Filestore> {
        let fd = nix::fcntl::open(
            std::env::temp_dir().as_path(),
            nix::fcntl::OFlag::O_TMPFILE | nix::fcntl::OFlag::O_RDWR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        // SAFETY: open just returned this fd.
        Filestore::new(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
    }

    fn contents(d: &FileData) -> Vec<u8> {
        let mut buf = vec![0u8; d.len() as usize];
        assert_eq!(d.read_at(&mut buf, 0).unwrap(), buf.len());
        buf
    }

    #[test]
    fn stored_files_grow_shrink_and_read_zeros_where_nothing_was_written() {
        let s = store();
        let mut a = FileData::new_in(Some(&s));
        let mut b = FileData::new_in(Some(&s));
        assert_eq!(a.write_at(b"", 0).unwrap(), 0);
        a.write_at(b"hello", 0).unwrap();
        b.write_at(&[7u8; 10_000], 0).unwrap();
        // Growing past the region moves it; the bytes come along.
        a.write_at(b"world", 20_000).unwrap();
        let got = contents(&a);
        assert_eq!(&got[..5], b"hello");
        assert!(got[5..20_000].iter().all(|&c| c == 0));
        assert_eq!(&got[20_000..], b"world");
        assert!(contents(&b).iter().all(|&c| c == 7));
        // Shrink then grow: the cut-off bytes read as zeros.
        a.resize(3).unwrap();
        a.resize(8).unwrap();
        assert_eq!(contents(&a), b"hel\0\0\0\0\0");
        // A freed region is reused and reads as zeros too.
        drop(b);
        let mut c = FileData::new_in(Some(&s));
        c.resize(4096).unwrap();
        assert!(contents(&c).iter().all(|&x| x == 0));
        // Mapping moves the bytes to a memfd.
        let before = contents(&a);
        a.mappable().unwrap();
        assert!(matches!(a, FileData::Memfd { .. }));
        assert_eq!(contents(&a), before);
    }

    #[test]
    fn stored_files_grown_by_truncate_read_zeros_to_their_end() {
        let s = store();
        let mut a = FileData::new_in(Some(&s));
        a.write_at(b"hello", 0).unwrap();
        a.resize(3000).unwrap();
        let got = contents(&a);
        assert_eq!(got.len(), 3000);
        assert_eq!(&got[..5], b"hello");
        assert!(got[5..].iter().all(|&c| c == 0));
        // Growing past the region moves it, holes and all, then appends.
        a.resize(5000).unwrap();
        a.write_at(b"tail", 5000).unwrap();
        let got = contents(&a);
        assert_eq!(got.len(), 5004);
        assert_eq!(&got[..5], b"hello");
        assert!(got[5..5000].iter().all(|&c| c == 0));
        assert_eq!(&got[5000..], b"tail");
        // A file that is all hole moves too.
        let mut b = FileData::new_in(Some(&s));
        b.resize(4096).unwrap();
        b.resize(100_000).unwrap();
        assert!(contents(&b).iter().all(|&c| c == 0));
    }

    #[test]
    fn freed_regions_coalesce_and_the_end_shrinks() {
        let s = store();
        let (a, ca) = s.allocate(4096).unwrap();
        let (b, cb) = s.allocate(8192).unwrap();
        let (c, cc) = s.allocate(100).unwrap();
        assert_eq!((a, b, c), (0, 4096, 12288));
        s.release(a, ca);
        s.release(b, cb);
        assert_eq!(s.lock().free_ranges().get(&0), Some(&12288));
        s.release(c, cc);
        assert_eq!(s.lock().end(), 0);
        assert!(s.lock().free_ranges().is_empty());
    }
}
