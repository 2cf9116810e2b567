//! Patched system call sites (gVisor's `usertrap`): a hot
//! `mov $nr, %eax; syscall` in private executable memory, or glibc's
//! `read` (`xor %eax, %eax; syscall; cmp $imm, %rax`), is rewritten into
//! an indirect jump to a trampoline that enters the stub's fast path, so
//! the call reaches the sentry without a signal (see `layout` for the
//! table's shape, `stub_code` for the fast path, and the platform's
//! README.md for how threads inside a site are kept safe).
//!
//! The table is a memfd the sentry writes through its own mapping and
//! maps read+exec into the stub, at `SITES_BASE`, the first time a site of
//! the process is patched. Forks inherit the mapping (it is shared), so a
//! fork's `Space` shares its parent's `Sites`; an exec starts a new one.
//!
//! Nothing here trusts the application: the sentry finds a site by the
//! index or address the trap reports in its own list, and a thread that
//! jumps into a trampoline or the fast path with its own registers only
//! makes a system call of its own choosing, which it could anyway.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;

use super::layout::*;
use super::lock;

/// Calls from one site before it is patched. A patch costs ~50 µs here
/// (two mprotects, two membarriers and the writes), what ~15 calls save,
/// so only sites that keep being called are worth it: short programs
/// (gcc's passes, python3's start-up) come out even at this threshold.
pub const PATCH_AFTER: u32 = 32;

/// One process image's site table.
pub struct Sites {
    memfd: OwnedFd,
    base: *mut u8,
    inner: Mutex<Inner>,
    /// A process sharing the table uses its own gs base: the fast path
    /// cannot find its slot, so every pointer leads to the slow trampoline.
    slow: AtomicBool,
    /// The table is mapped in the process(es).
    mapped: AtomicBool,
}

// SAFETY: the mapping is shared memory written only under `inner`'s lock
// (and read by the stub); the pointer itself never changes.
unsafe impl Send for Sites {}
// SAFETY: as above.
unsafe impl Sync for Sites {}

#[derive(Default)]
struct Inner {
    /// Patched sites, by index - 1 (None: an index not given out, as the
    /// `READ_SITES` kept for read sites).
    sites: Vec<Option<Site>>,
    /// Index of each patched site, by the address of its first byte.
    by_addr: HashMap<u64, usize>,
    /// Calls seen from unpatched sites, by the address after `syscall`.
    hits: HashMap<u64, u32>,
}

/// The instructions a patchable site is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `mov $nr, %eax; syscall` (b8 nr32 0f 05).
    MovSyscall,
    /// `xor %eax, %eax; syscall; cmp $imm, %rax` (31 c0 0f 05 48 3d imm32):
    /// glibc's `read`, whose number is 0. The `cmp` (its six bytes here)
    /// goes with the patch and runs in the trampoline.
    XorSyscallCmp([u8; 6]),
}

/// A site a trap was reported from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Address of the site's first instruction (the patched one).
    pub addr: u64,
    pub nr: u64,
    pub shape: Shape,
    /// Where the call returns to: after the original `syscall`, or for a
    /// read site, its slow trampoline's tail (the `cmp`, then a jump back
    /// after the site). Known once the site has an index.
    pub ret: u64,
}

impl Site {
    /// A site found by its shape, not patched yet.
    pub fn found(addr: u64, nr: u64, shape: Shape) -> Site {
        let mut site = Site {
            addr,
            nr,
            shape,
            ret: 0,
        };
        site.ret = site.syscall_end();
        site
    }

    /// Bytes the patch covers.
    pub fn byte_len(&self) -> u64 {
        match self.shape {
            Shape::MovSyscall => 7,
            Shape::XorSyscallCmp(_) => 10,
        }
    }

    /// The first byte of the site as the application wrote it.
    pub fn first_byte(&self) -> u8 {
        match self.shape {
            Shape::MovSyscall => 0xb8,
            Shape::XorSyscallCmp(_) => 0x31,
        }
    }

    /// Whether `code` (the site's bytes) is still what was found there.
    pub fn matches(&self, code: &[u8]) -> bool {
        match self.shape {
            Shape::MovSyscall => {
                let mut want = [0xb8, 0, 0, 0, 0, 0x0f, 0x05];
                want[1..5].copy_from_slice(&(self.nr as u32).to_le_bytes());
                code == want
            }
            Shape::XorSyscallCmp(cmp) => {
                code.len() == 10 && code[..4] == [0x31, 0xc0, 0x0f, 0x05] && code[4..] == cmp
            }
        }
    }

    /// The address after the original `syscall` instruction.
    pub fn syscall_end(&self) -> u64 {
        match self.shape {
            Shape::MovSyscall => self.addr + 7,
            Shape::XorSyscallCmp(_) => self.addr + 4,
        }
    }
}

/// The bytes that patch a site, and how many of them there are.
#[derive(Clone, Copy, Debug)]
pub struct Patch {
    pub bytes: [u8; 10],
    pub len: usize,
}

impl Sites {
    pub fn new(fast_entry: u64) -> Result<Sites, Errno> {
        let fd = nix::sys::memfd::memfd_create(
            c"rvisor-systrap-sites",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
        )?;
        nix::unistd::ftruncate(&fd, SITES_SIZE as i64)?;
        let base = super::map_shared(&fd, SITES_SIZE)?;
        let sites = Sites {
            memfd: fd,
            base,
            inner: Mutex::new(Inner::default()),
            slow: AtomicBool::new(false),
            mapped: AtomicBool::new(false),
        };
        sites.write(site_ptr(0), &fast_entry.to_le_bytes());
        Ok(sites)
    }

    pub fn memfd(&self) -> &OwnedFd {
        &self.memfd
    }

    pub fn is_mapped(&self) -> bool {
        self.mapped.load(Ordering::SeqCst)
    }

    pub fn set_mapped(&self) {
        self.mapped.store(true, Ordering::SeqCst)
    }

    /// Writes `data` at stub address `addr` of the table.
    fn write(&self, addr: u64, data: &[u8]) {
        let off = addr - SITES_BASE;
        debug_assert!(off + data.len() as u64 <= SITES_SIZE);
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the mapping (the callers compute addresses
            // from indices below MAX_SITES).
            unsafe { std::ptr::write_volatile(self.base.add(off as usize + i), *b) };
        }
    }

    /// Counts a call trapped from the site ending at `ret`; true exactly
    /// when it becomes worth patching.
    pub fn hit(&self, ret: u64) -> bool {
        if self.slow.load(Ordering::Relaxed) {
            return false;
        }
        let mut inner = lock(&self.inner);
        if inner.by_addr.len() + 1 >= MAX_SITES {
            return false;
        }
        let n = inner.hits.entry(ret).or_insert(0);
        *n = n.saturating_add(1);
        *n == PATCH_AFTER
    }

    /// The site with index `i` (reported by the fast path).
    pub fn by_index(&self, i: u32) -> Option<Site> {
        let inner = lock(&self.inner);
        *inner.sites.get((i as usize).checked_sub(1)?)?
    }

    /// The patched site whose first byte is at `addr`.
    pub fn by_addr(&self, addr: u64) -> Option<Site> {
        let inner = lock(&self.inner);
        let &i = inner.by_addr.get(&addr)?;
        *inner.sites.get(i - 1)?
    }

    /// The site whose slow trampoline's `syscall` ends at `rip`.
    pub fn by_slow_return(&self, rip: u64) -> Option<Site> {
        let off = rip.checked_sub(SLOW_TRAMPOLINES)?;
        if off % SITE_TRAMPOLINE_SIZE != SLOW_SYSCALL_END {
            return None;
        }
        self.by_index((off / SITE_TRAMPOLINE_SIZE) as u32)
    }

    /// Adds a site and its trampolines; returns the site as patched (its
    /// return address set) and the bytes to patch it with, or None when
    /// the table is full or the site is known.
    pub fn add(&self, site: Site) -> Option<(Site, Patch)> {
        let mut inner = lock(&self.inner);
        if inner.by_addr.contains_key(&site.addr) {
            return None;
        }
        let i = match site.shape {
            Shape::MovSyscall => {
                let mut i = inner.sites.len() + 1;
                if READ_SITES.contains(&i) {
                    i = READ_SITES.end;
                }
                i
            }
            Shape::XorSyscallCmp(_) => READ_SITES
                .clone()
                .find(|&i| inner.sites.get(i - 1).is_none_or(|s| s.is_none()))?,
        };
        if i + 1 >= MAX_SITES {
            return None;
        }
        let at = SITE_TRAMPOLINE_SIZE * i as u64;
        let slow_at = SLOW_TRAMPOLINES + at;
        // Fast: mov ecx, i; jmp [SITES_BASE] (the fast path's entry).
        let mut fast = [0xccu8; SITE_TRAMPOLINE_SIZE as usize];
        fast[0] = 0xb9;
        fast[1..5].copy_from_slice(&(i as u32).to_le_bytes());
        fast[5..8].copy_from_slice(&[0xff, 0x24, 0x25]);
        fast[8..12].copy_from_slice(&(site_ptr(0) as u32).to_le_bytes());
        // Slow: mov eax, nr; syscall; then ud2, or for a read site the
        // tail its calls return to: the site's cmp; jmp [back], with
        // `back` (the address after the site) in the last 8 bytes.
        let mut slow = [0xccu8; SITE_TRAMPOLINE_SIZE as usize];
        slow[0] = 0xb8;
        slow[1..5].copy_from_slice(&(site.nr as u32).to_le_bytes());
        slow[5..7].copy_from_slice(&[0x0f, 0x05]);
        let end = SLOW_SYSCALL_END as usize;
        let ret = match site.shape {
            Shape::MovSyscall => {
                slow[end..end + 2].copy_from_slice(&[0x0f, 0x0b]);
                site.syscall_end()
            }
            Shape::XorSyscallCmp(cmp) => {
                let back = SITE_TRAMPOLINE_SIZE as usize - 8;
                slow[end..end + 6].copy_from_slice(&cmp);
                slow[end + 6..end + 9].copy_from_slice(&[0xff, 0x24, 0x25]);
                slow[end + 9..end + 13]
                    .copy_from_slice(&((slow_at + back as u64) as u32).to_le_bytes());
                slow[back..].copy_from_slice(&(site.addr + site.byte_len()).to_le_bytes());
                slow_at + SLOW_SYSCALL_END
            }
        };
        self.write(FAST_TRAMPOLINES + at, &fast);
        self.write(slow_at, &slow);
        let target = if self.slow.load(Ordering::SeqCst) {
            SLOW_TRAMPOLINES
        } else {
            FAST_TRAMPOLINES
        } + at;
        self.write(site_ptr(i), &target.to_le_bytes());
        let site = Site { ret, ..site };
        if inner.sites.len() < i {
            inner.sites.resize(i, None);
        }
        inner.sites[i - 1] = Some(site);
        inner.by_addr.insert(site.addr, i);
        inner.hits.remove(&site.syscall_end());
        // jmp qword ptr [site_ptr(i)]: byte 5 is the pointer's third
        // byte, 0x06 (see layout); for a read site byte 4 is 0x06 too, and
        // int3s fill the rest of its ten bytes.
        let mut bytes = [0xccu8; 10];
        bytes[..3].copy_from_slice(&[0xff, 0x24, 0x25]);
        bytes[3..7].copy_from_slice(&(site_ptr(i) as u32).to_le_bytes());
        debug_assert_eq!(bytes[5], FAULT_OPCODE);
        let len = site.byte_len() as usize;
        Some((site, Patch { bytes, len }))
    }

    /// Sends every site the slow way from now on (a process sharing the
    /// table set a gs base of its own).
    pub fn go_slow(&self) {
        if self.slow.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = lock(&self.inner);
        for (i, site) in inner.sites.iter().enumerate() {
            if site.is_some() {
                let target = SLOW_TRAMPOLINES + SITE_TRAMPOLINE_SIZE * (i + 1) as u64;
                self.write(site_ptr(i + 1), &target.to_le_bytes());
            }
        }
    }
}

/// Offset of the end of `syscall` in a slow trampoline.
const SLOW_SYSCALL_END: u64 = 7;

impl Drop for Sites {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, which nothing uses any more.
        unsafe { super::unmap_shared(self.base, SITES_SIZE) };
    }
}

/// The site a trapped `syscall` ending at `ret` belongs to, if its
/// instructions are a patchable shape: `before` holds the 7 bytes before
/// `ret`, `after` the 6 after it (None where they could not be read).
pub fn patchable(ret: u64, before: &[u8; 7], after: Option<&[u8; 6]>, nr: u64) -> Option<Site> {
    if before[5..] != [0x0f, 0x05] {
        return None;
    }
    if before[0] == 0xb8
        && u32::from_le_bytes([before[1], before[2], before[3], before[4]]) as u64 == nr
    {
        return Some(Site::found(ret - 7, nr, Shape::MovSyscall));
    }
    let cmp = after?;
    (nr == 0 && before[3..5] == [0x31, 0xc0] && cmp[..2] == [0x48, 0x3d])
        .then(|| Site::found(ret - 4, 0, Shape::XorSyscallCmp(*cmp)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_jumps_through_the_sites_pointer_and_faults_midway() {
        let sites = Sites::new(0x7ff0_0000_0400).expect("sites");
        let found = Site::found(0x40_1000, 39, Shape::MovSyscall);
        let (site, patch) = sites.add(found).expect("added");
        assert_eq!(site.ret, 0x40_1007);
        assert_eq!(patch.len, 7);
        assert_eq!(&patch.bytes[..3], &[0xff, 0x24, 0x25]);
        let ptr = |p: &Patch| u32::from_le_bytes([p.bytes[3], p.bytes[4], p.bytes[5], p.bytes[6]]);
        assert_eq!(ptr(&patch) as u64, site_ptr(1));
        assert_eq!(patch.bytes[5], FAULT_OPCODE);
        assert_eq!(sites.by_index(1), Some(site));
        assert_eq!(sites.by_index(0), None);
        assert_eq!(sites.by_index(2), None);
        assert_eq!(sites.by_addr(site.addr), Some(site));
        let tramp = SLOW_TRAMPOLINES + SITE_TRAMPOLINE_SIZE;
        assert_eq!(sites.by_slow_return(tramp + 7), Some(site));
        assert_eq!(sites.by_slow_return(tramp + 5), None);
        assert!(sites.add(found).is_none(), "a site is patched once");
    }

    #[test]
    fn a_read_site_returns_through_its_cmp_and_faults_where_the_cmp_was() {
        let sites = Sites::new(0x7ff0_0000_0400).expect("sites");
        let cmp = [0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff];
        let found = Site::found(0x40_2000, 0, Shape::XorSyscallCmp(cmp));
        assert_eq!(found.syscall_end(), 0x40_2004);
        let (site, patch) = sites.add(found).expect("added");
        assert_eq!(patch.len, 10);
        let i = READ_SITES.start;
        let p = site_ptr(i) as u32;
        let mut want = [0xff, 0x24, 0x25, 0, 0, 0, 0, 0xcc, 0xcc, 0xcc];
        want[3..7].copy_from_slice(&p.to_le_bytes());
        assert_eq!(patch.bytes, want);
        // Bytes 4 and 5, where a stalled thread may stand: invalid opcodes.
        assert_eq!(patch.bytes[4], FAULT_OPCODE);
        assert_eq!(patch.bytes[5], FAULT_OPCODE);
        // From byte 2 (after the `xor`): `and $imm32, %eax`, then an int3.
        assert_eq!(patch.bytes[2], 0x25);
        assert_eq!(patch.bytes[7], 0xcc);
        let tramp = SLOW_TRAMPOLINES + SITE_TRAMPOLINE_SIZE * i as u64;
        assert_eq!(site.ret, tramp + 7);
        assert_eq!(sites.by_index(i as u32), Some(site));
        assert_eq!(sites.by_slow_return(site.ret), Some(site));
        // The tail: the site's own cmp, then jmp [back] with back = after
        // the site.
        let off = (tramp - SITES_BASE) as usize;
        // SAFETY: reading the table's own mapping, inside its size.
        let tail = unsafe { std::slice::from_raw_parts(sites.base.add(off), 32) };
        assert_eq!(&tail[..7], &[0xb8, 0, 0, 0, 0, 0x0f, 0x05]);
        assert_eq!(&tail[7..13], &cmp);
        assert_eq!(&tail[13..16], &[0xff, 0x24, 0x25]);
        let back_ptr = u32::from_le_bytes([tail[16], tail[17], tail[18], tail[19]]) as u64;
        assert_eq!(back_ptr, tramp + 24);
        assert_eq!(
            u64::from_le_bytes(tail[24..32].try_into().unwrap()),
            0x40_200a
        );
        // Ordinary sites skip the read sites' indices.
        let mut last = 0;
        for k in 0..READ_SITES.end {
            let (s, _) = sites
                .add(Site::found(0x50_0000 + 16 * k as u64, 1, Shape::MovSyscall))
                .expect("added");
            last = (s.ret - 7 - 0x50_0000) / 16;
        }
        assert_eq!(last as usize, READ_SITES.end - 1);
        assert_eq!(sites.by_index(READ_SITES.start as u32 + 1), None);
    }

    #[test]
    fn patchable_shapes() {
        let mov = [0xb8, 39, 0, 0, 0, 0x0f, 0x05];
        assert_eq!(
            patchable(0x1007, &mov, None, 39).map(|s| (s.addr, s.shape)),
            Some((0x1000, Shape::MovSyscall))
        );
        assert!(patchable(0x1007, &mov, None, 40).is_none());
        assert!(patchable(0x1007, &[0x48, 0xc7, 0xc0, 39, 0, 0x0f, 0x05], None, 39).is_none());
        assert!(patchable(0x1007, &[0xb8, 39, 0, 0, 0, 0x0f, 0x34], None, 39).is_none());
        let xor = [0x90, 0x90, 0x90, 0x31, 0xc0, 0x0f, 0x05];
        let cmp = [0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff];
        assert_eq!(
            patchable(0x1004, &xor, Some(&cmp), 0).map(|s| (s.addr, s.shape)),
            Some((0x1000, Shape::XorSyscallCmp(cmp)))
        );
        assert!(patchable(0x1004, &xor, Some(&cmp), 1).is_none());
        assert!(patchable(0x1004, &xor, None, 0).is_none());
        assert!(patchable(0x1004, &xor, Some(&[0x48, 0x85, 0xc0, 0, 0, 0]), 0).is_none());
    }

    #[test]
    fn a_site_is_worth_patching_once_it_is_hot() {
        let sites = Sites::new(0).expect("sites");
        let hot: Vec<bool> = (0..PATCH_AFTER + 3).map(|_| sites.hit(0x1000)).collect();
        assert_eq!(hot.iter().filter(|h| **h).count(), 1);
        assert!(hot[PATCH_AFTER as usize - 1]);
    }

    // The table fits below the usual load address of a program, and every
    // pointer's third byte is the invalid opcode.
    const _: () = assert!(SITES_BASE + SITES_SIZE <= 0x40_0000);
    const _: () = assert!((site_ptr(MAX_SITES - 1) >> 16) & 0xff == FAULT_OPCODE as u64);
}
