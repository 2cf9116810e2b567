//! Where everything systrap shares with a stub lives.
//!
//! Each stub process has one *region*: a memfd the sentry creates and maps
//! into itself and into the stub, at [`region_base`] there. It holds:
//! - the request page, read-only in the stub: what the sentry asks the
//!   process's syscall thread to run (memory management, clone, fork);
//! - the response page: the syscall thread's answer;
//! - one *slot* per application thread: its context (the futex word the
//!   thread and its sentry thread hand control over with, and where the
//!   trap handler left the signal frame), a small start-up stack, and the
//!   thread's alternate signal stack, on which the kernel builds the frame
//!   of every trap. The sentry reads and rewrites the trapped registers in
//!   that frame directly, through its own mapping.
//!
//! Everything in the region except the request page is writable by every
//! application thread of the process, so the sentry treats all of it as
//! hostile input (see `Thread::event`).

use crate::platform::stub_image::stub_base;

/// The region's offset in the stub's range (64 KiB aligned, inside the
/// reserved range the application can never map, unmap or protect).
pub const REGION_OFFSET: u64 = 0x1_0000;

/// The region's address in every stub of this sandbox.
pub fn region_base() -> u64 {
    stub_base() + REGION_OFFSET
}
/// Size of one thread's slot; slots are aligned to it, so the trap
/// handler finds its slot by rounding its stack pointer down.
pub const SLOT_SIZE: u64 = 0x8000;
/// Threads one stub process can have at once (clone fails with EAGAIN
/// beyond).
pub const MAX_THREADS: usize = 4095;
/// The whole region: request and response pages in the first slot-sized
/// block, then the slots.
pub const REGION_SIZE: u64 = SLOT_SIZE * (MAX_THREADS as u64 + 1);

// ---- the request page (offset 0, read-only in the stub) -----------------
/// Sequence number of the latest request (futex word the syscall thread
/// waits on).
pub const REQ_SEQ: u64 = 0x00;
/// What the syscall thread does with a zero result ([`KIND_PLAIN`] ...).
pub const REQ_KIND: u64 = 0x04;
pub const REQ_NR: u64 = 0x08;
pub const REQ_ARGS: u64 = 0x10;

/// A plain call: its result is the answer.
pub const KIND_PLAIN: u32 = 0;
/// clone of a thread: the child runs the thread start-up sequence.
pub const KIND_THREAD: u32 = 1;
/// fork: the child parks until the sentry adopts it.
pub const KIND_FORK: u32 = 2;

// ---- the response page (offset 0x1000) ----------------------------------
pub const RESP: u64 = 0x1000;
/// Sequence number of the latest answered request (futex word).
pub const RESP_SEQ: u64 = RESP;
/// Set while the sentry sleeps on `RESP_SEQ` (the syscall thread wakes it
/// only then).
pub const RESP_SENTRY_WAITING: u64 = RESP + 0x04;
pub const RESP_RESULT: u64 = RESP + 0x08;
/// How many times the syscall thread polls for the next request before it
/// sleeps.
pub const RESP_SPIN: u64 = RESP + 0x10;
/// The syscall thread's own small stack: the top of the response page.
pub const SYSCALL_THREAD_STACK_TOP: u64 = RESP + 0x1000;

// ---- a slot's context (offsets from the slot's start) --------------------
/// The hand-over word (futex): one of the `STATE_*` values.
pub const CTX_STATE: u64 = 0x00;
/// Set while the sentry thread sleeps on the state word.
pub const CTX_SENTRY_WAITING: u64 = 0x04;
/// Set while the trap handler sleeps on the state word.
pub const CTX_STUB_WAITING: u64 = 0x08;
/// How many times the handler polls before it sleeps.
pub const CTX_SPIN: u64 = 0x0c;
pub const CTX_SIGNO: u64 = 0x10;
/// The handler's `siginfo_t *` and `ucontext_t *` (stub addresses, on the
/// slot's alternate stack).
pub const CTX_SIGINFO: u64 = 0x18;
pub const CTX_UCONTEXT: u64 = 0x20;
/// fs and gs bases (not part of the signal frame): saved at the trap,
/// loaded on the way back.
pub const CTX_FSBASE: u64 = 0x28;
pub const CTX_GSBASE: u64 = 0x30;

/// What the posted event is: [`KIND_FRAME`] (a signal frame on the
/// alternate stack) or one of the fast path's.
pub const CTX_KIND: u64 = 0x38;
/// Set while the thread runs systrap's fast path (see `stub_code`): the
/// interrupt signal is then postponed, not taken as an event.
pub const CTX_FAST_STATE: u64 = 0x3c;
/// An interrupt arrived while postponed; the fast path reports it before
/// it returns to the application.
pub const CTX_FAST_PENDING: u64 = 0x40;
/// The patched site the fast path came from (an index in [`Sites`]).
pub const CTX_FAST_SITE: u64 = 0x44;
/// Set by the sentry when it rewrote the saved FP state: the fast path
/// loads it back only then.
pub const CTX_FP_CHANGED: u64 = 0x48;
/// The XSAVE feature mask the fast path saves and loads (edx:eax).
pub const CTX_XMASK: u64 = 0x50;
/// The fast path's saved registers, in the order of a signal frame's
/// `gregs` (r8 ... r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip,
/// eflags).
pub const CTX_GREGS: u64 = 0x100;
/// The fast path's own stack top (below it: a few words).
pub const FAST_SP: u64 = 0x400;
/// The fast path's XSAVE area (64-byte aligned), up to the start-up stack.
pub const FAST_XSAVE: u64 = 0x400;
pub const FAST_XSAVE_MAX: u64 = 0x1800;

/// A signal frame on the alternate stack (a trap through the handler).
pub const KIND_FRAME: u32 = 0;
/// A system call from a patched site, through the fast path.
pub const KIND_FAST_SYSCALL: u32 = 1;
/// The fast path reports an interrupt that came while it ran; the thread
/// stands at the registers the sentry last gave it.
pub const KIND_FAST_INTERRUPT: u32 = 2;

/// The thread exited (the kernel clears the word: CLONE_CHILD_CLEARTID).
pub const STATE_GONE: u32 = 0;
/// The handler posted an event and waits for the sentry.
pub const STATE_EVENT: u32 = 2;
/// The sentry is done: the handler returns to the application.
pub const STATE_RESUME: u32 = 3;
/// The handler ends its thread (the application thread called exit).
pub const STATE_EXIT: u32 = 4;
/// The fast path returns through a trap instead of on its own: the sentry
/// then writes the registers into that trap's signal frame (for what the
/// fast path cannot restore: a changed gs base, rcx other than rip).
pub const STATE_BOUNCE: u32 = 5;

/// Top of the start-up stack a new thread runs its set-up on.
pub const STARTUP_STACK_TOP: u64 = 0x2000;
/// The alternate signal stack: the rest of the slot.
pub const ALTSTACK: u64 = 0x2000;
pub const ALTSTACK_SIZE: u64 = SLOT_SIZE - ALTSTACK;

/// The system call number a new thread makes to trap into its handler for
/// the first time (never a real call: the filter traps it).
pub const START_NR: u64 = 0xfff;

/// The number the fast path's bounce traps with (never a real call).
pub const BOUNCE_NR: u64 = 0xffe;

// ---- patched system call sites ------------------------------------------
//
// A hot `mov $nr, %eax; syscall` (b8 nr32 0f 05) in private executable
// memory is rewritten into `jmp *SITE_PTR(i)` (ff 24 25 addr32): an
// indirect jump through a pointer in the *site table*, a memfd the sentry
// maps read+exec at SITES_BASE in every stub process (gVisor's usertrap).
// The pointer leads to the site's trampoline, which puts the site's index
// in ecx and jumps to the fast path. The pointers sit at 0x6xxxx, so byte
// 5 of the patched instruction is 0x06, an invalid opcode: a thread that
// had run the `mov` before the patch and stands at the old `syscall`
// traps with SIGILL there, and the sentry runs its call.
//
// glibc's `read` wrapper is `xor %eax, %eax; syscall; cmp $imm, %rax`
// (31 c0 0f 05 48 3d imm32): no `mov`. Such a site's ten bytes become the
// same jump and three `int3`s, its pointer taken from `READ_SITES`, whose
// second byte is 0x06 as well, so that a thread standing where the `cmp`
// was traps there. The call returns to the site's slow trampoline, whose
// tail runs the `cmp` and jumps back after it.

/// Where the site table is mapped (below any program's usual load address
/// and above vm.mmap_min_addr).
pub const SITES_BASE: u64 = 0x6_0000;
/// Sites one process image can have patched (index 0 is the fast path's
/// own entry pointer).
pub const MAX_SITES: usize = 4096;
/// Pointer `i` (`SITES_BASE + 8 i`; for i < 8192 its third byte is 0x06).
pub const fn site_ptr(i: usize) -> u64 {
    SITES_BASE + 8 * i as u64
}
/// Each site's trampolines: the fast one and the slow one (a plain
/// `mov $nr, %eax; syscall`, used once a process uses its own gs base;
/// for a `read` site, followed by the site's `cmp` and a jump back).
pub const SITE_TRAMPOLINE_SIZE: u64 = 32;
/// Indices of `read` sites (`xor %eax, %eax; syscall; cmp $imm, %rax`):
/// those whose pointer's second byte is 0x06 too (see `sites`).
pub const READ_SITES: std::ops::Range<usize> = 0xc0..0xe0;
pub const FAST_TRAMPOLINES: u64 = SITES_BASE + 0x8000;
pub const SLOW_TRAMPOLINES: u64 = FAST_TRAMPOLINES + SITE_TRAMPOLINE_SIZE * MAX_SITES as u64;
pub const SITES_SIZE: u64 = SLOW_TRAMPOLINES + SITE_TRAMPOLINE_SIZE * MAX_SITES as u64 - SITES_BASE;
/// The byte the patch leaves where the `syscall` instruction was.
pub const FAULT_OPCODE: u8 = 0x06;

const _: () = assert!((site_ptr(READ_SITES.start) >> 8) & 0xff == FAULT_OPCODE as u64);
const _: () = assert!((site_ptr(READ_SITES.end - 1) >> 8) & 0xff == FAULT_OPCODE as u64);

/// Stub address of slot `i`.
pub fn slot_addr(i: usize) -> u64 {
    region_base() + SLOT_SIZE * (i as u64 + 1)
}

/// Offset of slot `i` in the region.
pub const fn slot_offset(i: usize) -> u64 {
    SLOT_SIZE * (i as u64 + 1)
}
