//! Copies out of the sentry's own mappings of host files that survive the
//! file shrinking under them (gVisor's `pkg/safecopy`, for reads only).
//!
//! The mirror reads an application's read-only file mappings (its text and
//! read-only data, the libraries ld.so maps) back from the file (see
//! `mirror`). A `pread` per access costs ~0.4 µs, most of a stat(2) whose
//! path is a string literal; a `memcpy` from a mapping of the same file
//! costs nothing, but a page past the file's end raises SIGBUS, and the
//! host may truncate a file (a bind mount's) at any time. So the copy is
//! [`copy`]: a `rep movsb` in a routine of its own, and a SIGBUS handler
//! that, when the fault is in that routine, makes it return "faulted"
//! instead; any other SIGBUS goes to the handler installed before (std's),
//! or kills the sentry as it would have.
//!
//! [`FileView`] is one such mapping: a whole file, read-only, shared by
//! every process that maps the file (see [`view_of`]).

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock, Weak};

// rvisor_safecopy(dst, src, len) -> 0, or 1 if reading src faulted.
// The fault handler moves a faulting rip inside [rvisor_safecopy,
// rvisor_safecopy_fault) to rvisor_safecopy_fault.
std::arch::global_asm!(
    ".pushsection .text.rvisor_safecopy,\"ax\",@progbits",
    ".globl rvisor_safecopy",
    ".type rvisor_safecopy,@function",
    "rvisor_safecopy:",
    "    mov rcx, rdx",
    "    rep movsb",
    "    xor eax, eax",
    "    ret",
    ".globl rvisor_safecopy_fault",
    "rvisor_safecopy_fault:",
    "    mov eax, 1",
    "    ret",
    ".size rvisor_safecopy, . - rvisor_safecopy",
    ".popsection",
);

extern "C" {
    fn rvisor_safecopy(dst: *mut u8, src: *const u8, len: usize) -> u64;
    fn rvisor_safecopy_fault();
}

/// The SIGBUS action before ours, to pass other faults on to.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Our SIGBUS handler (see the module's notes).
extern "C" fn on_sigbus(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let start = rvisor_safecopy as *const () as usize as u64;
    let fault = rvisor_safecopy_fault as *const () as usize as u64;
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler;
    // only its saved rip is read and, for our own routine, rewritten.
    unsafe {
        let uc = ctx.cast::<libc::ucontext_t>();
        let rip = &mut (*uc).uc_mcontext.gregs[libc::REG_RIP as usize];
        if (start..fault).contains(&(*rip as u64)) {
            *rip = fault as i64;
            return;
        }
    }
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    if unsafe { (*info).si_code } <= 0 {
        // Sent (kill, sigqueue), not a fault: nothing to do, and nothing
        // to reset (resetting would leave later copies unprotected).
        return;
    }
    // Not ours: the previous handler, or the default action (the fault
    // comes again once this returns, and kills the sentry as before).
    match PREVIOUS.get() {
        Some(prev) if prev.sa_flags & libc::SA_SIGINFO != 0 && prev.sa_sigaction > 1 => {
            // SAFETY: a handler the process installed for this signal,
            // called as the kernel would have.
            unsafe {
                let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(prev.sa_sigaction);
                f(sig, info, ctx);
            }
        }
        Some(prev) if prev.sa_sigaction > 1 => {
            // SAFETY: as above, a plain handler.
            unsafe {
                let f: extern "C" fn(i32) = std::mem::transmute(prev.sa_sigaction);
                f(sig);
            }
        }
        _ => {
            // SAFETY: restores the default action for SIGBUS.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// Installs the handler (once per sentry); false if it could not be.
fn install() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        // SAFETY: sigaction with valid pointers; the handler only touches
        // the interrupted context and async-signal-safe calls.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut act.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &act, &mut old) != 0 {
                return false;
            }
            let _ = PREVIOUS.set(old);
        }
        true
    })
}

/// Copies `dst.len()` bytes from `src`, which lies in a mapping of a host
/// file made by [`FileView`]; false if part of it is past the file's end
/// now (SIGBUS), when `dst` holds garbage.
///
/// # Safety
/// `src..src + dst.len()` must lie inside a live mapping that only a
/// file's shrinking can make unreadable.
unsafe fn copy(dst: &mut [u8], src: *const u8) -> bool {
    // SAFETY: the caller's promise; a fault is turned into a return.
    unsafe { rvisor_safecopy(dst.as_mut_ptr(), src, dst.len()) == 0 }
}

/// A whole host file mapped read-only in the sentry.
#[derive(Debug)]
pub struct FileView {
    ptr: *const u8,
    len: usize,
}

// SAFETY: a read-only mapping, read only through `copy`.
unsafe impl Send for FileView {}
// SAFETY: as above.
unsafe impl Sync for FileView {}

impl FileView {
    /// Copies `buf.len()` bytes at offset `off` of the file; None past the
    /// view (the file was smaller when it was mapped) or past the file's
    /// end now.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> Option<()> {
        let end = off.checked_add(buf.len() as u64)?;
        if end > self.len as u64 {
            return None;
        }
        // SAFETY: inside the live mapping `self` owns.
        unsafe { copy(buf, self.ptr.add(off as usize)) }.then_some(())
    }
}

impl Drop for FileView {
    fn drop(&mut self) {
        // SAFETY: the mapping `map` made; nothing refers to it any more.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// The view of the file behind `fd` (shared by every mapping of the same
/// inode, and kept a while after the last goes: a program exec'd again
/// finds its views), or None when it cannot be made.
pub fn view_of(fd: &OwnedFd) -> Option<Arc<FileView>> {
    type Registry = (HashMap<(u64, u64), Weak<FileView>>, VecDeque<Arc<FileView>>);
    static VIEWS: OnceLock<Mutex<Registry>> = OnceLock::new();
    /// Views kept after their last mapping is gone.
    const KEPT: usize = 64;
    if !install() {
        return None;
    }
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size <= 0 {
        return None;
    }
    let key = (st.st_dev, st.st_ino);
    let mut reg = VIEWS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(v) = reg.0.get(&key).and_then(Weak::upgrade) {
        if v.len as i64 >= st.st_size {
            return Some(v);
        }
    }
    let len = (st.st_size as usize).checked_next_multiple_of(4096)?;
    // SAFETY: a fresh read-only shared mapping of a host file at an
    // address the kernel picks; it aliases no Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let view = Arc::new(FileView {
        ptr: p as *const u8,
        len,
    });
    reg.0.retain(|_, w| w.strong_count() > 0);
    reg.0.insert(key, Arc::downgrade(&view));
    reg.1.push_back(view.clone());
    if reg.1.len() > KEPT {
        reg.1.pop_front();
    }
    Some(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_reads_its_file_and_faults_softly_past_a_truncation() {
        let dir = std::env::temp_dir().join(format!("rvisor-safecopy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let fd: OwnedFd = std::fs::File::open(&path).unwrap().into();
        let view = view_of(&fd).expect("view");
        let mut buf = [0u8; 100];
        view.read(4090, &mut buf).expect("read");
        assert_eq!(&buf[..], &data[4090..4190]);
        assert!(
            view.read(3 * 4096 - 10, &mut buf).is_none(),
            "past the view"
        );
        // The host shrinks the file: the pages past its end now fault, and
        // the copy says so instead of killing the process.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        assert!(view.read(2 * 4096, &mut buf).is_none(), "past the new end");
        view.read(0, &mut buf).expect("still within the file");
        assert_eq!(&buf[..], &data[..100]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
