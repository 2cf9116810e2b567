//! Address spaces (gVisor's `pkg/sentry/mm`).
//!
//! Private memory lives in the stub and is managed by host mmap, munmap,
//! mprotect, mremap and madvise calls that the sentry validates and injects:
//! flags and advice are allowlisted and nothing may touch the stub's page.
//! The sentry keeps the program break itself.

pub mod mirror;
pub mod offsets;
pub mod safecopy;
pub mod vma;

use nix::errno::Errno;

use crate::platform::stub_image::{stub_base, STUB_SIZE};
use crate::platform::{PlatformError, Stub};

pub const PAGE_SIZE: u64 = 4096;
/// End of the x86_64 user address space with 4-level paging.
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;

pub fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

pub fn page_up(x: u64) -> Option<u64> {
    x.checked_add(PAGE_SIZE - 1).map(|v| v & !(PAGE_SIZE - 1))
}

/// Whether [addr, addr+len) touches the stub's reserved region.
pub fn overlaps_stub(addr: u64, len: u64) -> bool {
    use crate::platform::systrap::layout::{SITES_BASE, SITES_SIZE};
    let end = addr.saturating_add(len);
    let overlaps = |base: u64, size: u64| addr < base + size && end > base;
    // systrap's site table, mapped low in a process once it patches a
    // system call site.
    overlaps(stub_base(), STUB_SIZE) || overlaps(SITES_BASE, SITES_SIZE)
}

/// Per-address-space state the sentry keeps.
#[derive(Clone, Debug, Default)]
pub struct MemoryManager {
    /// Where the heap starts (just after the executable, randomised).
    pub brk_start: u64,
    /// Current program break.
    pub brk: u64,
    /// Shared regions (MAP_SHARED anonymous memory and shared file
    /// mappings). A fork keeps the ids, so processes sharing the memory
    /// agree on futex keys.
    pub shared: Vec<SharedRegion>,
    /// Attached SysV shared memory segments.
    pub shm: ShmAttachments,
    /// Every mapping, for /proc/PID/maps.
    pub vmas: vma::Vmas,
    /// The private memory the sentry maps too (see `mirror`). A fork must
    /// give the child a mirror of its own: cloning this shares it.
    pub mirror: std::sync::Arc<mirror::Mirror>,
}

/// Where the kernel puts [vvar], [vvar_vclock] and [vdso] relative to the
/// vDSO's start, and how long each is (read from the sentry's own maps at
/// boot: every process of this kernel gets the same layout).
#[derive(Clone, Copy, Debug, Default)]
pub struct VdsoLayout {
    pub vvar: Option<(i64, u64)>,
    pub vvar_vclock: Option<(i64, u64)>,
    pub vdso_len: u64,
}

static VDSO_LAYOUT: std::sync::OnceLock<VdsoLayout> = std::sync::OnceLock::new();

/// Learns the vDSO layout from the text of /proc/self/maps.
pub fn init_vdso_layout(maps: &str) {
    let mut regions: Vec<(u64, u64, &str)> = Vec::new();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let Some(range) = parts.next() else { continue };
        let name = parts.nth(4).unwrap_or("");
        if !matches!(name, "[vdso]" | "[vvar]" | "[vvar_vclock]") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
            regions.push((a, b, name));
        }
    }
    let Some(&(vdso, vdso_end, _)) = regions.iter().find(|r| r.2 == "[vdso]") else {
        return;
    };
    let rel = |n: &str| {
        regions
            .iter()
            .find(|r| r.2 == n)
            .map(|r| (r.0 as i64 - vdso as i64, r.1 - r.0))
    };
    let _ = VDSO_LAYOUT.set(VdsoLayout {
        vvar: rel("[vvar]"),
        vvar_vclock: rel("[vvar_vclock]"),
        vdso_len: vdso_end - vdso,
    });
}

pub fn vdso_layout() -> VdsoLayout {
    VDSO_LAYOUT.get().copied().unwrap_or(VdsoLayout {
        vvar: None,
        vvar_vclock: None,
        vdso_len: 2 * PAGE_SIZE,
    })
}

#[derive(Clone, Copy, Debug)]
pub struct SharedRegion {
    pub start: u64,
    pub len: u64,
    /// Identity of the memory (anonymous region or file).
    pub id: u64,
    /// Offset of `start` within that memory.
    pub offset: u64,
    /// Whether the mapping may ever be writable: false for a file opened
    /// read-only, whose mapping mprotect must not make writable (the
    /// host fd behind it may be writable, e.g. an in-memory file's memfd).
    pub may_write: bool,
}

static NEXT_SHARED_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Anonymous shared memory ids live apart from file ids.
const ANON_ID_BASE: u64 = 1 << 62;

/// A fresh identity for sentry-owned shared memory (anonymous regions,
/// SysV segments), for shared futex keys.
pub fn new_memory_id() -> u64 {
    ANON_ID_BASE + NEXT_SHARED_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A SysV shared memory segment attached at [start, start+len).
#[derive(Clone, Copy, Debug)]
pub struct ShmAttach {
    pub start: u64,
    pub len: u64,
    pub shmid: i32,
}

/// The address space's SysV attachments. Copying it (fork) and dropping
/// it (exit, execve) keep the segments' attach counts right.
#[derive(Debug, Default)]
pub struct ShmAttachments(pub Vec<ShmAttach>);

impl Clone for ShmAttachments {
    fn clone(&self) -> Self {
        let mut ns = crate::kernel::ipc::namespace();
        for a in &self.0 {
            ns.shm_attached(a.shmid);
        }
        ShmAttachments(self.0.clone())
    }
}

impl Drop for ShmAttachments {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let pid = crate::kernel::current().map(|p| p.pid).unwrap_or(0);
        let mut ns = crate::kernel::ipc::namespace();
        for a in self.0.drain(..) {
            ns.shm_detached(a.shmid, pid);
        }
    }
}

impl MemoryManager {
    /// Records a fresh MAP_SHARED|MAP_ANONYMOUS region.
    pub fn add_shared_anon(&mut self, start: u64, len: u64) {
        let id = new_memory_id();
        self.add_shared(SharedRegion {
            start,
            len,
            id,
            offset: 0,
            may_write: true,
        });
    }

    pub fn add_shared(&mut self, region: SharedRegion) {
        self.forget(region.start, region.len);
        self.shared.push(region);
    }

    /// Drops regions overlapping [start, start+len) (munmap, MAP_FIXED),
    /// and detaches SysV segments wholly inside it.
    pub fn forget(&mut self, start: u64, len: u64) {
        let end = start.saturating_add(len);
        self.shared
            .retain(|r| r.start >= end || r.start.saturating_add(r.len) <= start);
        if self
            .shm
            .0
            .iter()
            .any(|a| a.start >= start && a.start.saturating_add(a.len) <= end)
        {
            let (gone, kept): (Vec<ShmAttach>, Vec<ShmAttach>) = self
                .shm
                .0
                .iter()
                .partition(|a| a.start >= start && a.start.saturating_add(a.len) <= end);
            self.shm.0 = kept;
            drop(ShmAttachments(gone));
        }
    }

    /// Whether [start, start+len) may be made writable (mprotect).
    pub fn may_write(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        !self
            .shared
            .iter()
            .any(|r| !r.may_write && r.start < end && start < r.start.saturating_add(r.len))
    }

    /// Follows a successful mremap: shared regions in the old range move
    /// to the new one (clipped to it); the region that ended at the old end
    /// grows with the mapping.
    pub fn remap(&mut self, old: u64, old_len: u64, new: u64, new_len: u64) {
        let old_end = old.saturating_add(old_len);
        let new_end = new.saturating_add(new_len);
        let (moved, kept): (Vec<SharedRegion>, Vec<SharedRegion>) = self
            .shared
            .iter()
            .partition(|r| r.start < old_end && old < r.start.saturating_add(r.len));
        self.shared = kept;
        self.forget(new, new_len);
        for r in moved {
            let start = r.start.max(old);
            let mut end = r.start.saturating_add(r.len).min(old_end);
            if end == old_end && new_len > old_len {
                end = old + new_len;
            }
            let offset = r.offset + (start - r.start);
            let (start, end) = (new + (start - old), (new + (end - old)).min(new_end));
            if start < end {
                self.shared.push(SharedRegion {
                    start,
                    len: end - start,
                    offset,
                    ..r
                });
            }
        }
    }

    /// (memory id, offset) of a shared address, for shared futex keys.
    pub fn shared_key(&self, addr: u64) -> Option<(u64, u64)> {
        self.shared
            .iter()
            .find(|r| addr >= r.start && addr < r.start + r.len)
            .map(|r| (r.id, r.offset + (addr - r.start)))
    }
}

pub(crate) fn platform_errno(e: PlatformError) -> Errno {
    tracing::warn!("memory injection failed: {e}");
    Errno::EFAULT
}

fn result(raw: i64) -> Result<u64, Errno> {
    if (-4095..0).contains(&raw) {
        Err(Errno::from_raw(-raw as i32))
    } else {
        Ok(raw as u64)
    }
}

/// mmap flags an application may pass (everything else is EINVAL).
pub const ALLOWED_MMAP_FLAGS: i32 = libc::MAP_SHARED
    | libc::MAP_PRIVATE
    | libc::MAP_SHARED_VALIDATE
    | libc::MAP_FIXED
    | libc::MAP_ANONYMOUS
    | libc::MAP_NORESERVE
    | libc::MAP_POPULATE
    | libc::MAP_STACK
    | libc::MAP_GROWSDOWN
    | libc::MAP_DENYWRITE
    | libc::MAP_EXECUTABLE
    | libc::MAP_LOCKED
    | libc::MAP_NONBLOCK
    | libc::MAP_FIXED_NOREPLACE;

pub const ALLOWED_PROT: i32 = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;

/// Injects an anonymous mmap; `flags` must already be validated.
pub fn host_mmap(
    stub: &mut Stub,
    addr: u64,
    len: u64,
    prot: i32,
    flags: i32,
) -> Result<u64, Errno> {
    let flags = flags | libc::MAP_ANONYMOUS;
    let raw = stub
        .inject(
            libc::SYS_mmap as u64,
            [addr, len, prot as u64, flags as u64, u64::MAX, 0],
        )
        .map_err(platform_errno)?;
    mapped_at(stub, raw, len)
}

/// The address an injected mmap returned, never one in the stub's region
/// (cannot happen, the stub page being mapped, but never hand it out).
fn mapped_at(stub: &mut Stub, raw: i64, len: u64) -> Result<u64, Errno> {
    let got = result(raw)?;
    if overlaps_stub(got, len) {
        let _ = host_munmap(stub, got, len);
        return Err(Errno::ENOMEM);
    }
    Ok(got)
}

/// Injects a mapping of host file `fd` (a gofer-donated file or a memfd the
/// sentry owns); `flags` must already be validated.
pub fn host_map_fd(
    stub: &mut Stub,
    fd: std::os::fd::RawFd,
    addr: u64,
    len: u64,
    prot: i32,
    flags: i32,
    offset: u64,
) -> Result<u64, Errno> {
    let flags = flags & !libc::MAP_ANONYMOUS;
    let raw = stub
        .map_host_fd(fd, addr, len, prot, flags, offset)
        .map_err(platform_errno)?;
    mapped_at(stub, raw, len)
}

/// Injects a mapping of `stub_fd`, an fd the stub already holds (a memory
/// file it was given with `Stub::install_fd`); `flags` must already be
/// validated.
pub fn host_map_stub_fd(
    stub: &mut Stub,
    stub_fd: i32,
    addr: u64,
    len: u64,
    prot: i32,
    flags: i32,
    offset: u64,
) -> Result<u64, Errno> {
    let flags = flags & !libc::MAP_ANONYMOUS;
    let raw = stub
        .inject(
            libc::SYS_mmap as u64,
            [addr, len, prot as u64, flags as u64, stub_fd as u64, offset],
        )
        .map_err(platform_errno)?;
    mapped_at(stub, raw, len)
}

/// mincore(2) of [addr, addr+len) in the stub via the scratch page, a
/// chunk of up to 4096 pages at a time, each chunk's residency bytes passed
/// to `sink` with its page index; ENOMEM where the range is not mapped.
/// Also how the sentry checks that a range is mapped (mlock).
pub fn host_mincore(
    stub: &mut Stub,
    addr: u64,
    len: u64,
    mut sink: impl FnMut(&Stub, u64, &[u8]) -> Result<(), Errno>,
) -> Result<(), Errno> {
    use crate::platform::stub_image::stub_scratch;
    if overlaps_stub(addr, len) {
        return Err(Errno::ENOMEM);
    }
    let pages = len.div_ceil(PAGE_SIZE);
    let mut done = 0u64;
    let mut chunk = vec![0u8; PAGE_SIZE as usize];
    while done < pages {
        let n = (pages - done).min(PAGE_SIZE);
        let raw = stub
            .inject(
                libc::SYS_mincore as u64,
                [
                    addr + done * PAGE_SIZE,
                    n * PAGE_SIZE,
                    stub_scratch(),
                    0,
                    0,
                    0,
                ],
            )
            .map_err(platform_errno)?;
        result(raw)?;
        let part = &mut chunk[..n as usize];
        stub.read_mem(stub_scratch(), part)?;
        part.iter_mut().for_each(|b| *b &= 1);
        sink(stub, done, part)?;
        done += n;
    }
    Ok(())
}

pub fn host_munmap(stub: &mut Stub, addr: u64, len: u64) -> Result<u64, Errno> {
    if overlaps_stub(addr, len) {
        return Err(Errno::EINVAL);
    }
    result(
        stub.inject(libc::SYS_munmap as u64, [addr, len, 0, 0, 0, 0])
            .map_err(platform_errno)?,
    )
}

pub fn host_mprotect(stub: &mut Stub, addr: u64, len: u64, prot: i32) -> Result<u64, Errno> {
    if overlaps_stub(addr, len) {
        return Err(Errno::EINVAL);
    }
    result(
        stub.inject(libc::SYS_mprotect as u64, [addr, len, prot as u64, 0, 0, 0])
            .map_err(platform_errno)?,
    )
}

pub fn host_mremap(
    stub: &mut Stub,
    old: u64,
    old_len: u64,
    new_len: u64,
    flags: i32,
    new_addr: u64,
) -> Result<u64, Errno> {
    if overlaps_stub(old, old_len)
        || (flags & libc::MREMAP_FIXED != 0 && overlaps_stub(new_addr, new_len))
    {
        return Err(Errno::EINVAL);
    }
    let raw = stub
        .inject(
            libc::SYS_mremap as u64,
            [old, old_len, new_len, flags as u64, new_addr, 0],
        )
        .map_err(platform_errno)?;
    result(raw)
}

pub fn host_madvise(stub: &mut Stub, addr: u64, len: u64, advice: i32) -> Result<u64, Errno> {
    if overlaps_stub(addr, len) {
        return Err(Errno::EINVAL);
    }
    result(
        stub.inject(
            libc::SYS_madvise as u64,
            [addr, len, advice as u64, 0, 0, 0],
        )
        .map_err(platform_errno)?,
    )
}

/// madvise advice values that only affect the calling address space.
pub fn advice_allowed(advice: i32) -> bool {
    matches!(
        advice,
        libc::MADV_NORMAL
            | libc::MADV_RANDOM
            | libc::MADV_SEQUENTIAL
            | libc::MADV_WILLNEED
            | libc::MADV_DONTNEED
            | libc::MADV_FREE
            | libc::MADV_REMOVE
            | libc::MADV_DONTFORK
            | libc::MADV_DOFORK
            | libc::MADV_MERGEABLE
            | libc::MADV_UNMERGEABLE
            | libc::MADV_HUGEPAGE
            | libc::MADV_NOHUGEPAGE
            | libc::MADV_DONTDUMP
            | libc::MADV_DODUMP
            | libc::MADV_WIPEONFORK
            | libc::MADV_KEEPONFORK
            | libc::MADV_COLD
            | libc::MADV_PAGEOUT
    )
}
