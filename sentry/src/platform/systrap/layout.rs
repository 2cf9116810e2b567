//! Where everything systrap shares with a stub lives.
//!
//! Each stub process has one *region*: a memfd the sentry creates and maps
//! into itself and into the stub, at [`REGION_BASE`] there. It holds:
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

use crate::platform::stub_image::STUB_BASE;

/// The region's address in every stub (64 KiB aligned, inside the
/// reserved stub range the application can never map, unmap or protect).
pub const REGION_BASE: u64 = STUB_BASE + 0x1_0000;
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

/// The thread exited (the kernel clears the word: CLONE_CHILD_CLEARTID).
pub const STATE_GONE: u32 = 0;
/// The handler posted an event and waits for the sentry.
pub const STATE_EVENT: u32 = 2;
/// The sentry is done: the handler returns to the application.
pub const STATE_RESUME: u32 = 3;
/// The handler ends its thread (the application thread called exit).
pub const STATE_EXIT: u32 = 4;

/// Top of the start-up stack a new thread runs its set-up on.
pub const STARTUP_STACK_TOP: u64 = 0x2000;
/// The alternate signal stack: the rest of the slot.
pub const ALTSTACK: u64 = 0x2000;
pub const ALTSTACK_SIZE: u64 = SLOT_SIZE - ALTSTACK;

/// The system call number a new thread makes to trap into its handler for
/// the first time (never a real call: the filter traps it).
pub const START_NR: u64 = 0xfff;

/// Stub address of slot `i`.
pub const fn slot_addr(i: usize) -> u64 {
    REGION_BASE + SLOT_SIZE * (i as u64 + 1)
}

/// Offset of slot `i` in the region.
pub const fn slot_offset(i: usize) -> u64 {
    SLOT_SIZE * (i as u64 + 1)
}
