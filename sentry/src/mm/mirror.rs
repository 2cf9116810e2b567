//! Mirrored private memory (gVisor's memory file, in part). On unless
//! `RVISOR_MIRROR=0` (see [`enabled`]).
//!
//! An application's private anonymous memory (its mmaps, heap, main
//! stack and its images' writable segments) lives in a memfd per address
//! space, the *memory file*: the stub maps ranges of it `MAP_SHARED` where
//! the application asked for private memory, and the sentry maps the file
//! into its own address space too, in views of [`WINDOW`] bytes.
//! The sentry then reads and writes application memory with a `memcpy`
//! instead of `process_vm_readv`/`writev`, which cost ~1.5 µs a call on
//! these machines, whatever the size.
//!
//! The mirror is only an accelerator: an access it does not fully cover
//! (other memory, a range crossing into unmirrored memory, a protection
//! that forbids it) falls back to `process_vm_*`, which sees the same
//! pages. What must hold is that every region it lists is mapped in the
//! stub at that address from the memory file at that offset, with that
//! protection; every memory operation on a mirrored range keeps it so:
//! - munmap, and mappings placed over a region: [`Mirror::unmapped`]
//!   (the offsets are punched out of the file and reused);
//! - mprotect: [`Mirror::protected`];
//! - madvise(DONTNEED/FREE): the offsets are punched (zero-fill, as for
//!   private memory); the advice that only private memory takes is applied
//!   after [`Mirror::demirror`] copies the range back into host-private
//!   memory, as is mremap (so realloc of a mirrored block leaves the
//!   mirror);
//! - fork: the child's memory is a copy in a file of its own while the
//!   parent's is small ([`COPY_AT_FORK_MAX`]); a larger parent's regions
//!   become `MAP_PRIVATE` mappings of its file first, which the host then
//!   copies on write for both, and which leave the mirror (their offsets
//!   are never reused: [`Mirror::before_fork`]).
//!
//! It also lists read-only mappings of host files (images' text and
//! read-only data, libraries ld.so maps): what the stub sees there is the
//! file's bytes, which the sentry reads from its own mapping of the file
//! (`safecopy`; a `pread` where it has none) where `process_vm_readv` cost
//! 1.5 µs, so a path that is a string literal costs no cross-process copy. Such a range is listed only while nothing
//! can have written it: never with PROT_WRITE, dropped by an mprotect that
//! adds it ([`Mirror::protected`]) and before the sentry patches a system
//! call site in it ([`Mirror::forget_files`]).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, RwLock};

use nix::errno::Errno;

use super::offsets::OffsetAllocator;
#[cfg(test)]
use super::PAGE_SIZE;
use super::{host_map_stub_fd, host_mmap, host_mprotect, platform_errno};
use crate::platform::Stub;

/// A parent whose mirrored memory holds at most this many bytes of data
/// is copied at fork; beyond it, its regions are converted (see module).
pub const COPY_AT_FORK_MAX: u64 = 64 << 20;

/// The memory file's size: offsets are virtual, the file sparse.
const FILE_SIZE: u64 = 1 << 46;

/// One memfd and the allocation of its offsets.
#[derive(Debug)]
pub struct MemFile {
    fd: OwnedFd,
    offsets: Mutex<OffsetAllocator>,
    /// The sentry's views of the file, [`WINDOW`] bytes each, by index
    /// (0: not mapped yet). Mapped on first use and kept until the file
    /// goes: unmapping would cost a TLB shootdown on every CPU running a
    /// sentry thread, and the views pin no memory (punched pages leave
    /// them too).
    windows: Mutex<Vec<usize>>,
}

/// Size of one sentry view of a memory file.
const WINDOW: u64 = 64 << 20;

impl MemFile {
    fn create() -> Result<MemFile, Errno> {
        let fd = nix::sys::memfd::memfd_create(
            c"rvisor-memory",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
        )?;
        nix::unistd::ftruncate(&fd, FILE_SIZE as i64)?;
        Ok(MemFile {
            fd,
            offsets: Mutex::new(OffsetAllocator::default()),
            windows: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetAllocator> {
        self.offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Zeroes [off, off+len) and frees its pages (the stub's and the
    /// sentry's mappings of it read zeros from now on).
    fn punch(&self, off: u64, len: u64) {
        let mode = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
        if let Err(e) = nix::fcntl::fallocate(self.fd.as_raw_fd(), mode, off as i64, len as i64) {
            tracing::warn!("memory file: punching {len} bytes at {off:#x} failed: {e}");
        }
    }

    /// Where the sentry sees offset `off`, and how many bytes from there
    /// lie in the same view.
    fn view(&self, off: u64) -> Option<(usize, u64)> {
        let idx = (off / WINDOW) as usize;
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() <= idx {
            windows.resize(idx + 1, 0);
        }
        if windows[idx] == 0 {
            // SAFETY: a fresh shared mapping of our own memfd at an address
            // the kernel picks; it aliases no Rust object.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    WINDOW as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_NORESERVE,
                    self.fd.as_raw_fd(),
                    (idx as u64 * WINDOW) as i64,
                )
            };
            if p == libc::MAP_FAILED {
                tracing::warn!("memory file: mapping a view failed: {}", Errno::last());
                return None;
            }
            windows[idx] = p as usize;
        }
        let within = off % WINDOW;
        Some((windows[idx] + within as usize, WINDOW - within))
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let windows = self
            .windows
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for &w in windows.iter().filter(|&&w| w != 0) {
            // SAFETY: a view `MemFile::view` mapped; the file is going, so
            // no table refers to it any more and nothing copies through it.
            unsafe { libc::munmap(w as *mut libc::c_void, WINDOW as usize) };
        }
    }
}

/// One mirrored range of the application's address space.
#[derive(Clone, Copy, Debug)]
struct Region {
    len: u64,
    /// Its offset in the memory file.
    off: u64,
    prot: i32,
    /// madvise(MADV_DONTFORK): the host does not copy it into a child.
    dont_fork: bool,
}

/// A read-only mapping of a host file, which the sentry reads back from
/// the file (see the module's notes).
#[derive(Clone, Debug)]
struct FileRegion {
    len: u64,
    /// Its offset in the file.
    off: u64,
    prot: i32,
    fd: Arc<OwnedFd>,
    /// The sentry's own mapping of the file, read with a fault-safe copy
    /// (`pread` where there is none, or where it falls short).
    view: Option<Arc<super::safecopy::FileView>>,
}

/// A range a table lists by its start: what splitting one takes.
trait Span: Clone {
    fn len(&self) -> u64;
    /// The first `n` bytes.
    fn head(&self, n: u64) -> Self;
    /// The bytes from `n` on.
    fn tail(&self, n: u64) -> Self;
}

impl Span for Region {
    fn len(&self) -> u64 {
        self.len
    }
    fn head(&self, n: u64) -> Self {
        Region { len: n, ..*self }
    }
    fn tail(&self, n: u64) -> Self {
        Region {
            len: self.len - n,
            off: self.off + n,
            ..*self
        }
    }
}

impl Span for FileRegion {
    fn len(&self) -> u64 {
        self.len
    }
    fn head(&self, n: u64) -> Self {
        FileRegion {
            len: n,
            ..self.clone()
        }
    }
    fn tail(&self, n: u64) -> Self {
        FileRegion {
            len: self.len - n,
            off: self.off + n,
            ..self.clone()
        }
    }
}

/// Splits the span of `map` that crosses `at`, if one does.
fn split_at<T: Span>(map: &mut BTreeMap<u64, T>, at: u64) {
    let found = map
        .range(..at)
        .next_back()
        .filter(|(&s, r)| s + r.len() > at)
        .map(|(&s, r)| (s, r.clone()));
    if let Some((s, r)) = found {
        let d = at - s;
        map.insert(s, r.head(d));
        map.insert(at, r.tail(d));
    }
}

/// Splits the spans of `map` at `start` and `end` so that each lies
/// wholly inside or outside [start, end); returns the starts of those
/// inside.
fn split_range<T: Span>(map: &mut BTreeMap<u64, T>, start: u64, end: u64) -> Vec<u64> {
    split_at(map, start);
    split_at(map, end);
    map.range(start..end).map(|(&s, _)| s).collect()
}

/// Takes the parts of `map`'s spans inside [start, end) out of it.
fn remove_range<T: Span>(map: &mut BTreeMap<u64, T>, start: u64, end: u64) -> Vec<(u64, T)> {
    if !overlaps(map, start, end) {
        return Vec::new();
    }
    split_range(map, start, end)
        .into_iter()
        .filter_map(|s| map.remove(&s).map(|r| (s, r)))
        .collect()
}

fn overlaps<T: Span>(map: &BTreeMap<u64, T>, start: u64, end: u64) -> bool {
    map.range(..end)
        .next_back()
        .is_some_and(|(&s, r)| s + r.len() > start)
}

#[derive(Debug, Default)]
struct Table {
    /// The memory file and its fd number in the stub process.
    file: Option<(Arc<MemFile>, i32)>,
    /// Regions by start address.
    regions: BTreeMap<u64, Region>,
    /// Read-only host file mappings by start address.
    files: BTreeMap<u64, FileRegion>,
}

/// The mirror of one address space (shared by its threads and vfork
/// children; a forked child gets its own).
#[derive(Debug, Default)]
pub struct Mirror {
    table: RwLock<Table>,
}

/// What a forked child's memory is: regions of its own memory file, with
/// the parent's contents copied in.
#[derive(Debug)]
pub struct ForkedMemory {
    file: Arc<MemFile>,
    /// (start, len, prot, offset)
    regions: Vec<(u64, u64, i32, u64)>,
    /// The parent's memory file's fd number, inherited by the child's stub.
    parent_fd: Option<i32>,
}

/// Whether mirroring is on: the default; `RVISOR_MIRROR=0` turns it off
/// (for comparison, and as a way out should it misbehave).
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("RVISOR_MIRROR").map_or(true, |v| v != "0"))
}

impl Table {
    /// The memory file, made and installed in the stub on first use.
    fn file(&mut self, stub: &mut Stub) -> Result<(Arc<MemFile>, i32), Errno> {
        if let Some((f, fd)) = &self.file {
            return Ok((f.clone(), *fd));
        }
        let f = Arc::new(MemFile::create()?);
        let fd = stub.install_fd(f.fd.as_raw_fd()).map_err(platform_errno)?;
        self.file = Some((f.clone(), fd));
        Ok((f, fd))
    }

    /// Removes [start, start+len) from the regions and file regions:
    /// splits those that cross its ends and returns the memory file's
    /// ranges to the allocator (punched) when `free`.
    fn cut(&mut self, start: u64, len: u64, free: bool) {
        let end = start.saturating_add(len);
        remove_range(&mut self.files, start, end);
        let gone = remove_range(&mut self.regions, start, end);
        if let (true, Some((file, _))) = (free, &self.file) {
            for (_, r) in gone {
                file.punch(r.off, r.len);
                file.lock().release(r.off, r.len);
            }
        }
    }

    /// Splits regions at `start` and `end` so that each region lies wholly
    /// inside or outside [start, end); returns the starts of those inside.
    fn split(&mut self, start: u64, end: u64) -> Vec<u64> {
        split_range(&mut self.regions, start, end)
    }

    /// The sentry addresses of [addr, addr+len) if all of it is mirrored
    /// with protection `need`, piece by piece.
    fn pieces(&self, addr: u64, len: u64, need: i32) -> Option<Vec<(usize, usize)>> {
        let mut out = Vec::new();
        let mut cur = addr;
        let end = addr.checked_add(len)?;
        let file = &self.file.as_ref()?.0;
        while cur < end {
            let (&s, r) = self.regions.range(..=cur).next_back()?;
            if s + r.len <= cur || r.prot & need != need {
                return None;
            }
            let (ptr, in_view) = file.view(r.off + (cur - s))?;
            let n = ((s + r.len).min(end) - cur).min(in_view);
            out.push((ptr, n as usize));
            cur += n;
        }
        Some(out)
    }

    fn overlaps(&self, start: u64, len: u64) -> bool {
        overlaps(&self.regions, start, start.saturating_add(len))
    }

    /// Reads [addr, addr+buf.len()) from the files behind it, if file
    /// regions readable by the application cover all of it and the files
    /// hold every byte (a mapping past the end of its file faults).
    fn read_files(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let cur = addr.checked_add(done as u64)?;
            let (&s, r) = self.files.range(..=cur).next_back()?;
            if s + r.len <= cur || r.prot & libc::PROT_READ == 0 {
                return None;
            }
            let n = ((s + r.len - cur) as usize).min(buf.len() - done);
            let at = r.off + (cur - s);
            if let Some(()) = r
                .view
                .as_ref()
                .and_then(|v| v.read(at, &mut buf[done..done + n]))
            {
                done += n;
                continue;
            }
            let mut got = 0;
            while got < n {
                let at = r.off + (cur - s) + got as u64;
                match nix::sys::uio::pread(&r.fd, &mut buf[done + got..done + n], at as i64) {
                    Ok(0) | Err(_) => return None,
                    Ok(k) => got += k,
                }
            }
            done += n;
        }
        Some(())
    }
}

impl Mirror {
    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Maps private anonymous memory from the memory file (mmap's
    /// `hint`, validated `flags` with MAP_PRIVATE, no MAP_GROWSDOWN);
    /// returns its address.
    pub fn map_anon(
        &self,
        stub: &mut Stub,
        hint: u64,
        len: u64,
        prot: i32,
        flags: i32,
    ) -> Result<u64, Errno> {
        let mut t = self.write_lock();
        let (file, fd) = t.file(stub)?;
        let off = file.lock().alloc(len, FILE_SIZE).ok_or(Errno::ENOMEM)?;
        let give_back = |file: &MemFile| {
            file.lock().release(off, len);
        };
        let flags = (flags & !libc::MAP_PRIVATE) | libc::MAP_SHARED;
        let addr = host_map_stub_fd(stub, fd, hint, len, prot, flags, off)
            .inspect_err(|_| give_back(&file))?;
        // A MAP_FIXED mapping replaced whatever was there.
        t.cut(addr, len, true);
        t.regions.insert(
            addr,
            Region {
                len,
                off,
                prot,
                dont_fork: false,
            },
        );
        Ok(addr)
    }

    /// Lists [start, start+len) as mapped read-only from host file `fd`
    /// at `off` (a mapping just made there; see the module's notes).
    pub fn map_file(&self, start: u64, len: u64, prot: i32, fd: Arc<OwnedFd>, off: u64) {
        let mut t = self.write_lock();
        t.cut(start, len, true);
        if !enabled() || prot & libc::PROT_WRITE != 0 {
            return;
        }
        let view = super::safecopy::view_of(&fd);
        t.files.insert(
            start,
            FileRegion {
                len,
                off,
                prot,
                fd,
                view,
            },
        );
    }

    /// Stops reading [start, start+len) from files: its bytes are about
    /// to differ from them (a patched system call site), or the mapping
    /// is not to be inherited (MADV_DONTFORK).
    pub fn forget_files(&self, start: u64, len: u64) {
        if self.read_lock().files.is_empty() {
            return;
        }
        let end = start.saturating_add(len);
        remove_range(&mut self.write_lock().files, start, end);
    }

    /// A forked child's mirror: its file mappings are the parent's (its
    /// private memory comes with `adopt_forked`).
    pub fn for_child(&self) -> Mirror {
        let files = self.read_lock().files.clone();
        Mirror {
            table: RwLock::new(Table {
                files,
                ..Table::default()
            }),
        }
    }

    /// [start, start+len) is no longer (this) memory in the stub.
    pub fn unmapped(&self, start: u64, len: u64) {
        {
            let t = self.read_lock();
            if t.regions.is_empty() && t.files.is_empty() {
                return;
            }
        }
        self.write_lock().cut(start, len, true);
    }

    pub fn protected(&self, start: u64, len: u64, prot: i32) {
        let mut t = self.write_lock();
        let end = start.saturating_add(len);
        if prot & libc::PROT_WRITE != 0 {
            // Writable, the pages may soon hold other bytes than the file.
            remove_range(&mut t.files, start, end);
        } else {
            for s in split_range(&mut t.files, start, end) {
                if let Some(r) = t.files.get_mut(&s) {
                    r.prot = prot;
                }
            }
        }
        if t.regions.is_empty() {
            return;
        }
        for s in t.split(start, end) {
            if let Some(r) = t.regions.get_mut(&s) {
                r.prot = prot;
            }
        }
    }

    /// Whether any of [start, start+len) is mirrored.
    pub fn overlaps(&self, start: u64, len: u64) -> bool {
        self.read_lock().overlaps(start, len)
    }

    /// madvise(DONTNEED)/(FREE) on the mirrored parts: their pages are
    /// dropped and read as zeros again, as private memory's.
    pub fn discard(&self, start: u64, len: u64) {
        let mut t = self.write_lock();
        let Some((file, _)) = t.file.clone() else {
            return;
        };
        for s in t.split(start, start.saturating_add(len)) {
            if let Some(r) = t.regions.get(&s) {
                file.punch(r.off, r.len);
            }
        }
    }

    /// madvise(DONTFORK)/(DOFORK) on the mirrored parts.
    pub fn set_dont_fork(&self, start: u64, len: u64, dont_fork: bool) {
        let mut t = self.write_lock();
        for s in t.split(start, start.saturating_add(len)) {
            if let Some(r) = t.regions.get_mut(&s) {
                r.dont_fork = dont_fork;
            }
        }
    }

    /// Turns the mirrored parts of [start, start+len) back into host
    /// private memory with the same contents and protection (before an
    /// operation only private memory takes: mremap, MADV_WIPEONFORK...).
    pub fn demirror(&self, stub: &mut Stub, start: u64, len: u64) -> Result<(), Errno> {
        let mut t = self.write_lock();
        if !t.overlaps(start, len) {
            return Ok(());
        }
        for s in t.split(start, start.saturating_add(len)) {
            let Some(r) = t.regions.get(&s).copied() else {
                continue;
            };
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            host_mmap(stub, s, r.len, rw, libc::MAP_PRIVATE | libc::MAP_FIXED)?;
            // Its data (holes read as zeros in the fresh mapping anyway).
            if let Some((file, _)) = &t.file {
                let mut buf = vec![0u8; 1 << 20];
                for (start, n) in extents(file, r.off, r.len) {
                    let mut done = 0u64;
                    while done < n {
                        let want = (n - done).min(buf.len() as u64) as usize;
                        let got = nix::sys::uio::pread(
                            &file.fd,
                            &mut buf[..want],
                            (start + done) as i64,
                        )?;
                        if got == 0 {
                            return Err(Errno::EIO);
                        }
                        stub.write_mem(s + (start - r.off) + done, &buf[..got])?;
                        done += got as u64;
                    }
                }
            }
            if r.prot != rw {
                host_mprotect(stub, s, r.len, r.prot)?;
            }
            t.cut(s, r.len, true);
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes at `addr` if all of them are mirrored (in
    /// the memory file, or in files) and readable; None when the caller
    /// must ask the host.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
        let t = self.read_lock();
        let Some(pieces) = t.pieces(addr, buf.len() as u64, libc::PROT_READ) else {
            return t.read_files(addr, buf);
        };
        let mut done = 0;
        for (ptr, n) in pieces {
            // SAFETY: `ptr..ptr+n` lies in a live sentry mapping of the
            // memory file (the read lock keeps it mapped); the application
            // may write those bytes concurrently, as with any read of its
            // memory, so this copies raw bytes and forms no reference.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr as *const u8, buf[done..].as_mut_ptr(), n);
            }
            done += n;
        }
        Some(())
    }

    /// Writes `data` at `addr` if all of it is mirrored and writable.
    pub fn write(&self, addr: u64, data: &[u8]) -> Option<()> {
        let t = self.read_lock();
        let pieces = t.pieces(addr, data.len() as u64, libc::PROT_WRITE)?;
        let mut done = 0;
        for (ptr, n) in pieces {
            // SAFETY: as in `read`, a live mapping of the memory file.
            unsafe {
                std::ptr::copy_nonoverlapping(data[done..].as_ptr(), ptr as *mut u8, n);
            }
            done += n;
        }
        Some(())
    }

    /// Runs `f` on the mirrored bytes [addr, addr+len) if all of them are
    /// mirrored with `prot` in one region (a read(2) straight into them).
    pub fn with_slice<R>(
        &self,
        addr: u64,
        len: usize,
        prot: i32,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Option<R> {
        let t = self.read_lock();
        let pieces = t.pieces(addr, len as u64, prot)?;
        let [(ptr, n)] = pieces.as_slice() else {
            return None;
        };
        // SAFETY: a live mapping of the memory file, kept by the read
        // lock for as long as `f` runs; the bytes are the application's,
        // which may change them at any time, as the host kernel's read
        // into user memory allows.
        let s = unsafe { std::slice::from_raw_parts_mut(*ptr as *mut u8, *n) };
        Some(f(s))
    }

    /// Prepares a fork (no CLONE_VM) while the forking thread is in the
    /// sentry: the child's memory as a copy in a file of its own, or (for
    /// a large parent) the parent's regions made MAP_PRIVATE so the host's
    /// fork copies them on write, and dropped from the mirror.
    pub fn before_fork(&self, stub: &mut Stub) -> Result<Option<ForkedMemory>, Errno> {
        let mut t = self.write_lock();
        let Some((file, fd)) = t.file.clone() else {
            return Ok(None);
        };
        let regions: Vec<(u64, Region)> = t.regions.iter().map(|(&s, r)| (s, *r)).collect();
        let data: u64 = regions
            .iter()
            .filter(|(_, r)| !r.dont_fork)
            .map(|(_, r)| data_bytes(&file, r.off, r.len))
            .sum();
        if data <= COPY_AT_FORK_MAX {
            let child = Arc::new(MemFile::create()?);
            let mut out = Vec::new();
            for (s, r) in regions.iter().filter(|(_, r)| !r.dont_fork) {
                let off = child.lock().alloc(r.len, FILE_SIZE).ok_or(Errno::ENOMEM)?;
                copy_data(&file, r.off, &child, off, r.len)?;
                out.push((*s, r.len, r.prot, off));
            }
            return Ok(Some(ForkedMemory {
                file: child,
                regions: out,
                parent_fd: Some(fd),
            }));
        }
        for (s, r) in &regions {
            let flags = libc::MAP_PRIVATE | libc::MAP_FIXED;
            host_map_stub_fd(stub, fd, *s, r.len, r.prot, flags, r.off)?;
            // The parent and child map these offsets privately from now
            // on: never punched or given out again.
            t.cut(*s, r.len, false);
        }
        Ok(None)
    }

    /// The child's side of a fork: maps the copies `before_fork` made over
    /// the parent's regions (still shared with the parent until now; the
    /// child has not run yet).
    pub fn adopt_forked(&self, stub: &mut Stub, fm: ForkedMemory) -> Result<(), Errno> {
        let mut t = self.write_lock();
        let fd = stub
            .install_fd(fm.file.fd.as_raw_fd())
            .map_err(platform_errno)?;
        t.file = Some((fm.file.clone(), fd));
        if let Some(old) = fm.parent_fd {
            let _ = stub.inject(libc::SYS_close as u64, [old as u64, 0, 0, 0, 0, 0]);
        }
        for (s, len, prot, off) in fm.regions {
            let flags = libc::MAP_SHARED | libc::MAP_FIXED;
            host_map_stub_fd(stub, fd, s, len, prot, flags, off)?;
            t.regions.insert(
                s,
                Region {
                    len,
                    off,
                    prot,
                    dont_fork: false,
                },
            );
        }
        Ok(())
    }
}

/// Bytes of data (not holes) in [off, off+len) of `file`.
fn data_bytes(file: &MemFile, off: u64, len: u64) -> u64 {
    extents(file, off, len).iter().map(|&(_, n)| n).sum()
}

/// The data extents of [off, off+len), by SEEK_DATA/SEEK_HOLE.
fn extents(file: &MemFile, off: u64, len: u64) -> Vec<(u64, u64)> {
    let fd = file.fd.as_raw_fd();
    let end = off + len;
    let mut out = Vec::new();
    let mut cur = off;
    while cur < end {
        // SAFETY: lseek on our own memfd.
        let data = unsafe { libc::lseek(fd, cur as i64, libc::SEEK_DATA) };
        if data < 0 || data as u64 >= end {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 {
            end
        } else {
            (hole as u64).min(end)
        };
        out.push((data as u64, hole - data as u64));
        cur = hole;
    }
    out
}

/// Copies the data of [from_off, +len) of `from` to `to` at `to_off`
/// (holes stay holes).
fn copy_data(
    from: &MemFile,
    from_off: u64,
    to: &MemFile,
    to_off: u64,
    len: u64,
) -> Result<(), Errno> {
    for (start, n) in extents(from, from_off, len) {
        let mut src = start as i64;
        let mut dst = (to_off + (start - from_off)) as i64;
        let mut left = n as usize;
        while left > 0 {
            // SAFETY: copy_file_range between our own memfds, with offset
            // pointers to locals.
            let done = unsafe {
                libc::copy_file_range(
                    from.fd.as_raw_fd(),
                    &mut src,
                    to.fd.as_raw_fd(),
                    &mut dst,
                    left,
                    0,
                )
            };
            if done < 0 && Errno::last() == Errno::EINTR {
                // The sentry's interrupt signal (a signal posted to the
                // forking process): a copy is no wait to cut short.
                continue;
            }
            if done <= 0 {
                return Err(if done < 0 { Errno::last() } else { Errno::EIO });
            }
            left -= done as usize;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_holes() {
        let a = MemFile::create().unwrap();
        let b = MemFile::create().unwrap();
        nix::sys::uio::pwrite(&a.fd, b"hello", 3 * PAGE_SIZE as i64).unwrap();
        assert_eq!(data_bytes(&a, 0, 8 * PAGE_SIZE), PAGE_SIZE);
        copy_data(&a, 0, &b, 16 * PAGE_SIZE, 8 * PAGE_SIZE).unwrap();
        let mut buf = [0u8; 5];
        nix::sys::uio::pread(&b.fd, &mut buf, 19 * PAGE_SIZE as i64).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(data_bytes(&b, 0, 32 * PAGE_SIZE), PAGE_SIZE);
    }
}
