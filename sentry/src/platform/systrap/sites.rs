//! Patched system call sites (gVisor's `usertrap`): a hot
//! `mov $nr, %eax; syscall` in private executable memory is rewritten into
//! an indirect jump to a trampoline that enters the stub's fast path, so
//! the call reaches the sentry without a signal (see `layout` for the
//! table's shape and `stub_code` for the fast path).
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
    /// Patched sites (address of the `mov`, call number), by index - 1.
    sites: Vec<(u64, u32)>,
    /// Index of each patched site, by the address of its `mov`.
    by_addr: HashMap<u64, usize>,
    /// Calls seen from unpatched sites, by the address after `syscall`.
    hits: HashMap<u64, u32>,
}

/// A site a trap was reported from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Address of the `mov` (the patched instruction).
    pub addr: u64,
    pub nr: u64,
}

impl Site {
    /// Where the call returns to: after the original `syscall`.
    pub fn ret(&self) -> u64 {
        self.addr + 7
    }
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
        let &(addr, nr) = inner.sites.get((i as usize).checked_sub(1)?)?;
        Some(Site {
            addr,
            nr: nr as u64,
        })
    }

    /// The patched site whose `mov` is at `addr`.
    pub fn by_addr(&self, addr: u64) -> Option<Site> {
        let inner = lock(&self.inner);
        let &i = inner.by_addr.get(&addr)?;
        let &(addr, nr) = inner.sites.get(i - 1)?;
        Some(Site {
            addr,
            nr: nr as u64,
        })
    }

    /// The site whose slow trampoline's `syscall` ends at `rip`.
    pub fn by_slow_return(&self, rip: u64) -> Option<Site> {
        let off = rip.checked_sub(SLOW_TRAMPOLINES)?;
        if off % SITE_TRAMPOLINE_SIZE != SLOW_SYSCALL_END {
            return None;
        }
        self.by_index((off / SITE_TRAMPOLINE_SIZE) as u32)
    }

    /// Adds a site and its trampolines; returns the bytes to patch it
    /// with, or None when the table is full or the site is known.
    pub fn add(&self, site: Site) -> Option<[u8; 7]> {
        let mut inner = lock(&self.inner);
        if inner.by_addr.contains_key(&site.addr) || inner.sites.len() + 2 > MAX_SITES {
            return None;
        }
        let i = inner.sites.len() + 1;
        // Fast: mov ecx, i; jmp [SITES_BASE] (the fast path's entry).
        let mut fast = [0u8; SITE_TRAMPOLINE_SIZE as usize];
        fast[0] = 0xb9;
        fast[1..5].copy_from_slice(&(i as u32).to_le_bytes());
        fast[5..8].copy_from_slice(&[0xff, 0x24, 0x25]);
        fast[8..12].copy_from_slice(&(site_ptr(0) as u32).to_le_bytes());
        fast[12..].fill(0xcc);
        // Slow: mov eax, nr; syscall; ud2.
        let mut slow = [0xccu8; SITE_TRAMPOLINE_SIZE as usize];
        slow[0] = 0xb8;
        slow[1..5].copy_from_slice(&(site.nr as u32).to_le_bytes());
        slow[5..9].copy_from_slice(&[0x0f, 0x05, 0x0f, 0x0b]);
        let at = SITE_TRAMPOLINE_SIZE * i as u64;
        self.write(FAST_TRAMPOLINES + at, &fast);
        self.write(SLOW_TRAMPOLINES + at, &slow);
        let target = if self.slow.load(Ordering::SeqCst) {
            SLOW_TRAMPOLINES
        } else {
            FAST_TRAMPOLINES
        } + at;
        self.write(site_ptr(i), &target.to_le_bytes());
        inner.sites.push((site.addr, site.nr as u32));
        inner.by_addr.insert(site.addr, i);
        inner.hits.remove(&site.ret());
        // jmp qword ptr [site_ptr(i)]: byte 5 is the pointer's third
        // byte, 0x06 (see layout).
        let mut patch = [0xff, 0x24, 0x25, 0, 0, 0, 0];
        patch[3..7].copy_from_slice(&(site_ptr(i) as u32).to_le_bytes());
        debug_assert_eq!(patch[5], FAULT_OPCODE);
        Some(patch)
    }

    /// Sends every site the slow way from now on (a process sharing the
    /// table set a gs base of its own).
    pub fn go_slow(&self) {
        if self.slow.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = lock(&self.inner);
        for i in 1..=inner.sites.len() {
            let target = SLOW_TRAMPOLINES + SITE_TRAMPOLINE_SIZE * i as u64;
            self.write(site_ptr(i), &target.to_le_bytes());
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

/// Whether `code` (the 7 bytes before a trapped `syscall`'s end) is
/// `mov $nr, %eax; syscall`.
pub fn is_patchable(code: &[u8; 7], nr: u64) -> bool {
    code[0] == 0xb8
        && u32::from_le_bytes([code[1], code[2], code[3], code[4]]) as u64 == nr
        && code[5] == 0x0f
        && code[6] == 0x05
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_jumps_through_the_sites_pointer_and_faults_midway() {
        let sites = Sites::new(0x7ff0_0000_0400).expect("sites");
        let site = Site {
            addr: 0x40_1000,
            nr: 39,
        };
        let patch = sites.add(site).expect("added");
        assert_eq!(&patch[..3], &[0xff, 0x24, 0x25]);
        assert_eq!(
            u32::from_le_bytes([patch[3], patch[4], patch[5], patch[6]]) as u64,
            site_ptr(1)
        );
        assert_eq!(patch[5], FAULT_OPCODE);
        assert_eq!(sites.by_index(1), Some(site));
        assert_eq!(sites.by_index(0), None);
        assert_eq!(sites.by_index(2), None);
        assert_eq!(sites.by_addr(site.addr), Some(site));
        assert_eq!(
            sites.by_slow_return(SLOW_TRAMPOLINES + SITE_TRAMPOLINE_SIZE + 7),
            Some(site)
        );
        assert_eq!(
            sites.by_slow_return(SLOW_TRAMPOLINES + SITE_TRAMPOLINE_SIZE + 5),
            None
        );
        assert!(sites.add(site).is_none(), "a site is patched once");
    }

    #[test]
    fn only_mov_eax_syscall_with_the_same_number_is_patchable() {
        assert!(is_patchable(&[0xb8, 39, 0, 0, 0, 0x0f, 0x05], 39));
        assert!(!is_patchable(&[0xb8, 39, 0, 0, 0, 0x0f, 0x05], 40));
        assert!(!is_patchable(&[0x48, 0xc7, 0xc0, 39, 0, 0x0f, 0x05], 39));
        assert!(!is_patchable(&[0xb8, 39, 0, 0, 0, 0x0f, 0x34], 39));
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
