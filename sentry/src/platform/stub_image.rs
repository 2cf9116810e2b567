//! The stub executable: a one-page static ELF built in memory at start-up.
//!
//! Each application address space starts life as a fresh `execveat` of this
//! image, so a stub never contains any sentry memory: its address space holds
//! only this page, the kernel-made stack (reused as the application's stack),
//! the vDSO and vvar. The image lives in a sealed memfd that the sentry keeps
//! open, so stubs can be created after the sentry has given up its view of the
//! host filesystem.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

/// Where the stub's range starts in every application address space of
/// this sandbox: chosen at random (64 KiB aligned) when the sentry first
/// needs it, between `STUB_BASE_MIN` and `STUB_BASE_MAX`, as gVisor
/// randomises its stub. Below the range the kernel randomises the stack
/// into (top of the 47-bit space minus up to 16 GiB) and far above where
/// programs map things; the image claims the range at exec, before the
/// kernel places anything else.
pub fn stub_base() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let mut r = [0u8; 8];
        // SAFETY: getrandom fills at most the 8 bytes of our buffer.
        let got = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
        let r = if got == 8 {
            u64::from_le_bytes(r)
        } else {
            // No entropy: still not the same address every time.
            std::process::id() as u64 ^ (std::ptr::addr_of!(BASE) as u64 >> 12)
        };
        let slots = (STUB_BASE_MAX - STUB_BASE_MIN) >> 16;
        STUB_BASE_MIN + ((r % slots) << 16)
    })
}
pub const STUB_BASE_MIN: u64 = 0x7e00_0000_0000;
pub const STUB_BASE_MAX: u64 = 0x7ff0_0000_0000;
/// Size of the range reserved for the stub (its code page, a scratch page
/// and systrap's shared region); applications may not map, unmap or
/// protect anything in it.
pub const STUB_SIZE: u64 =
    super::systrap::layout::REGION_OFFSET + super::systrap::layout::REGION_SIZE;
/// A read-write page the sentry's own injected calls use for their results
/// (e.g. getrusage). The application can write it, so what is read back is
/// only ever its own information.
pub fn stub_scratch() -> u64 {
    stub_base() + 0x1000
}
/// `syscall; int3`: the sentry sets registers, continues, and collects the
/// result at the `int3` trap.
pub fn inject_syscall() -> u64 {
    stub_base() + CODE_OFFSET
}
/// Address right after the `int3` of the injection sequence.
pub fn inject_trap_rip() -> u64 {
    inject_syscall() + 3
}
/// `syscall; test rax,rax; jz child; int3; child: pause loop`: used to fork the
/// stub. The parent traps at the `int3`; the untraced child parks in `pause()`
/// until its own sentry thread seizes it.
pub fn inject_fork() -> u64 {
    stub_base() + CODE_OFFSET + 3
}
/// Address right after the parent's `int3` in the fork sequence.
pub fn fork_trap_rip() -> u64 {
    stub_base() + CODE_OFFSET + 0x0b
}

const CODE_OFFSET: u64 = 0x80;

/// Where the fast path's seccomp filter sits in the stub's read-only page
/// (see `notif`): a `struct sock_fprog` at `fprog_addr()` pointing at the
/// instructions right after it. Read-only, so no application thread can
/// change the filter a new thread is about to install.
pub fn fprog_addr() -> u64 {
    stub_base() + FPROG_OFFSET
}
const FPROG_OFFSET: u64 = 0x100;

/// Where systrap's code (`systrap::stub_code`) sits in the code page, and
/// the most it may take.
pub fn systrap_code_addr() -> u64 {
    stub_base() + SYSTRAP_CODE_OFFSET
}
pub const SYSTRAP_CODE_OFFSET: u64 = 0x400;
pub const SYSTRAP_CODE_MAX: u64 = 0x800;
/// systrap's application filter (a `struct sock_fprog` and its
/// instructions), read-only like the rest of the page.
pub fn systrap_fprog_addr() -> u64 {
    stub_base() + SYSTRAP_FPROG_OFFSET
}
pub const SYSTRAP_FPROG_OFFSET: u64 = SYSTRAP_CODE_OFFSET + SYSTRAP_CODE_MAX;
const _: () = assert!(SYSTRAP_FPROG_OFFSET == 0xc00);
/// The syscall thread's filter (see `systrap::filter`).
pub fn systrap_thread_fprog_addr() -> u64 {
    stub_base() + SYSTRAP_THREAD_FPROG_OFFSET
}
pub const SYSTRAP_THREAD_FPROG_OFFSET: u64 = 0xd00;

const CODE: &[u8] = &[
    0x0f, 0x05, // +0x00 syscall
    0xcc, // +0x02 int3
    0x0f, 0x05, // +0x03 syscall            (fork entry)
    0x48, 0x85, 0xc0, // +0x05 test rax, rax
    0x74, 0x01, // +0x08 jz +1 -> 0x0b
    0xcc, // +0x0a int3                     (parent)
    0xb8, 0x22, 0x00, 0x00, 0x00, // +0x0b mov eax, 34 (pause)   (child)
    0x0f, 0x05, // +0x10 syscall
    0xeb, 0xf7, // +0x12 jmp 0x0b
];

/// Where the program headers sit (after the notif filter, before
/// systrap's code; the first 0x80 bytes hold only the ELF header).
const PHDR_OFFSET: u64 = 0x300;

/// Builds the ELF image: a read+execute PT_LOAD for the code page at
/// `stub_base()`, and a zero-filled one over the rest of the stub's range.
/// The second makes the kernel's exec claim the whole range before it
/// places the vDSO and the first mappings, which could otherwise land
/// there (the sentry refuses application mappings in the range, and
/// systrap maps its region over it). Right after exec the sentry replaces
/// it: the scratch page, then PROT_NONE or systrap's region.
fn build_image() -> Vec<u8> {
    let mut img = vec![0u8; CODE_OFFSET as usize];
    // ELF header.
    img[0..4].copy_from_slice(b"\x7fELF");
    img[4] = 2; // ELFCLASS64
    img[5] = 1; // little endian
    img[6] = 1; // EV_CURRENT
    put16(&mut img, 16, 2); // ET_EXEC
    put16(&mut img, 18, 62); // EM_X86_64
    put32(&mut img, 20, 1);
    put64(&mut img, 24, inject_syscall() + 2); // e_entry: the int3, never reached
    put64(&mut img, 32, PHDR_OFFSET); // e_phoff
    put16(&mut img, 52, 64); // e_ehsize
    put16(&mut img, 54, 56); // e_phentsize
    put16(&mut img, 56, 2); // e_phnum
    let filter = super::notif::filter_image(fprog_addr());
    let (systrap_code, _) = super::systrap::stub_code::code();
    let systrap_filter = super::systrap::filter::filter_image(systrap_fprog_addr());
    let thread_filter =
        super::systrap::filter::syscall_thread_filter_image(systrap_thread_fprog_addr());
    let total = SYSTRAP_THREAD_FPROG_OFFSET + thread_filter.len() as u64;
    let mut phdrs = Vec::with_capacity(112);
    // The code page.
    phdrs.extend(load_segment(5, 0, stub_base(), total, total)); // PF_R | PF_X
                                                                 // The rest of the range, zero-filled (no file bytes).
    let rest = STUB_SIZE - 0x1000;
    phdrs.extend(load_segment(6, 0x1000, stub_scratch(), 0, rest)); // PF_R | PF_W
    img.extend_from_slice(CODE);
    img.resize(FPROG_OFFSET as usize, 0);
    img.extend_from_slice(&filter);
    assert!(
        img.len() as u64 <= PHDR_OFFSET,
        "the notif filter outgrew its place"
    );
    img.resize(PHDR_OFFSET as usize, 0);
    img.extend_from_slice(&phdrs);
    assert!(
        systrap_code.len() as u64 <= SYSTRAP_CODE_MAX,
        "systrap's code outgrew its place"
    );
    img.resize(SYSTRAP_CODE_OFFSET as usize, 0);
    img.extend_from_slice(systrap_code);
    img.resize(SYSTRAP_FPROG_OFFSET as usize, 0);
    img.extend_from_slice(&systrap_filter);
    assert!(
        img.len() as u64 <= SYSTRAP_THREAD_FPROG_OFFSET,
        "systrap's filter outgrew its place"
    );
    img.resize(SYSTRAP_THREAD_FPROG_OFFSET as usize, 0);
    img.extend_from_slice(&thread_filter);
    assert!(img.len() <= 0x1000, "the stub image outgrew its page");
    img
}

/// A PT_LOAD program header (page-aligned; `vaddr` is also the physical
/// address).
fn load_segment(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> [u8; 56] {
    let mut ph = [0u8; 56];
    put32(&mut ph, 0, 1); // PT_LOAD
    put32(&mut ph, 4, flags);
    put64(&mut ph, 8, offset);
    put64(&mut ph, 16, vaddr);
    put64(&mut ph, 24, vaddr);
    put64(&mut ph, 32, filesz);
    put64(&mut ph, 40, memsz);
    put64(&mut ph, 48, 0x1000); // p_align
    ph
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The stub image, ready to be `execveat`ed.
pub struct StubImage {
    fd: OwnedFd,
    /// The end of the fd channel every stub inherits as
    /// [`super::fd_channel::STUB_CHANNEL_FD`].
    channel_fd: std::os::fd::RawFd,
}

impl StubImage {
    pub fn create() -> std::io::Result<StubImage> {
        let fd = memfd_create(
            c"rvisor-stub",
            MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        file.write_all(&build_image())?;
        let fd = OwnedFd::from(file);
        // Seal it so nothing can change the code every stub runs.
        let seals =
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::from_bits_truncate(seals)),
        )?;
        let channel_fd = super::fd_channel::init()?;
        Ok(StubImage { fd, channel_fd })
    }

    pub fn channel_fd(&self) -> std::os::fd::RawFd {
        self.channel_fd
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
