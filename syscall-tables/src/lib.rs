//! Linux syscall tables for rvisor: numbers and names of every x86_64 syscall, how to decode each
//! argument for strace-style output, flag and enum names, errno and signal names.
//!
//! Numbers and errno names are generated from the kernel's uapi headers by `gen/` (see the
//! crate's README.md); the generated source is checked in so the crate builds on machines without
//! headers, and `tests/headers.rs` checks it against the headers wherever they are installed.
//! Argument kinds (`signatures.rs`) and flag names ([`flags`]) are written by hand, because
//! headers carry numbers but not how to show them.
//!
//! ```
//! use syscall_tables::{format_call, x86_64, MemReader};
//!
//! struct NoMemory;
//! impl MemReader for NoMemory {
//!     fn read_bytes(&self, _addr: u64, _len: usize) -> Option<Vec<u8>> { None }
//!     fn read_cstr(&self, _addr: u64, _max: usize) -> Option<Vec<u8>> { None }
//! }
//!
//! let close = x86_64::by_number(x86_64::nr::CLOSE).expect("close is in the table");
//! assert_eq!(format_call(close, &[3, 0, 0, 0, 0, 0], -9, &NoMemory),
//!            "close(3) = -1 EBADF (Bad file descriptor)");
//! ```

pub mod flags;
mod format;
pub(crate) mod signatures;
pub mod x86_64;

#[rustfmt::skip]
mod generated_errno;
#[rustfmt::skip]
mod generated_x86_64;

pub use format::{format_call, format_entry, format_flags, format_unknown};

/// One syscall of an architecture's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallInfo {
    /// The syscall number (what the tracee puts in `rax`).
    pub nr: u32,
    /// The kernel's name, as in `__NR_<name>` (`newfstatat`, not `fstatat`).
    pub name: &'static str,
    /// How to show each argument; its length is the number of arguments the syscall takes.
    pub args: &'static [ArgKind],
}

/// How to decode one argument register for strace and docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Signed decimal (64-bit; a zero-extended 32-bit -1, as glibc passes `uid_t` -1, shows as -1).
    Int,
    /// Unsigned decimal.
    Uint,
    /// Hexadecimal `0x...` (zero shows as `0`, as strace's `%#lx` does).
    Hex,
    /// A file descriptor: the low 32 bits as a signed decimal.
    Fd,
    /// A directory file descriptor: `AT_FDCWD` by name, else like [`ArgKind::Fd`].
    DirFd,
    /// A NUL-terminated string in tracee memory (paths and other names); shown whole, quoted.
    Path,
    /// A buffer the call reads (write's buf) whose length is argument `len_arg`: the first 32
    /// bytes, quoted, with `...` when longer.
    InBuf {
        /// Index of the argument holding the buffer length.
        len_arg: u8,
    },
    /// A buffer the call fills (read's buf): at exit the first `min(ret, 32)` bytes, quoted; at
    /// entry or on error only its address. `len_arg` is the argument holding the buffer size.
    OutBuf {
        /// Index of the argument holding the buffer size.
        len_arg: u8,
    },
    /// A pointer: `0x...`, or `NULL` for 0.
    Ptr,
    /// A size or count: unsigned decimal.
    Size,
    /// Named flags or an enum value.
    Flags(&'static FlagSet),
    /// A file mode in octal (`0644`).
    Mode,
    /// A signal number shown by name (`SIGKILL`).
    Signal,
    /// A NULL-terminated `char **` (argv, envp): `["a", "b", ...]`, at most 8 elements.
    StrArray,
}

/// How a [`FlagSet`]'s values combine into one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagStyle {
    /// Independent bits, shown `A|B|0x...`; a multi-bit value matches only when all its bits are set.
    Bits,
    /// Exactly one of the values; unknown values show as hex.
    Enum,
    /// `open` flags: the low two bits (`O_ACCMODE`) are an enum (`O_RDONLY`/`O_WRONLY`/`O_RDWR`),
    /// the rest are bits.
    OpenFlags,
}

/// A named family of flag or enum values (`O_*`, `MAP_*`, `CLOCK_*`, ...).
#[derive(Debug, PartialEq, Eq)]
pub struct FlagSet {
    /// A short identifier for the family (`"open_flags"`), for docs and diagnostics.
    pub name: &'static str,
    /// How values combine.
    pub style: FlagStyle,
    /// `(value, name)` pairs. For [`FlagStyle::Bits`] order matters: multi-bit values first.
    pub values: &'static [(u64, &'static str)],
}

/// Reads tracee memory for decoding; the sentry implements it with `process_vm_readv`.
///
/// Both methods return `None` when the memory cannot be read; the formatter then shows the raw
/// address, as strace does, instead of failing.
pub trait MemReader {
    /// Reads exactly `len` bytes at `addr`.
    fn read_bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>>;
    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
    fn read_cstr(&self, addr: u64, max: usize) -> Option<Vec<u8>>;
}

/// The errno's symbolic name: `2` -> `"ENOENT"`. Covers every name of the kernel's
/// `asm-generic/errno-base.h` and `errno.h`; for numbers with two names (`EAGAIN`/`EWOULDBLOCK`)
/// the first one defined, as strace prints it.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    errno_row(errno).map(|(name, _)| name)
}

/// The errno's description, strerror(3)'s text: `2` -> `"No such file or directory"`.
pub fn errno_description(errno: i32) -> Option<&'static str> {
    errno_row(errno).map(|(_, desc)| desc)
}

/// The errno number of a symbolic name, aliases included: `"EWOULDBLOCK"` -> `11`.
pub fn errno_by_name(name: &str) -> Option<i32> {
    let canonical = generated_errno::ERRNOS
        .iter()
        .enumerate()
        .find_map(|(n, row)| match row {
            Some((row_name, _)) if *row_name == name => i32::try_from(n).ok(),
            _ => None,
        });
    canonical.or_else(|| {
        generated_errno::ERRNO_ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map(|&(_, n)| n)
    })
}

fn errno_row(errno: i32) -> Option<(&'static str, &'static str)> {
    let index = usize::try_from(errno).ok()?;
    generated_errno::ERRNOS.get(index).copied().flatten()
}

/// Standard signal names by number (index 0 unused), as in the kernel's x86 `asm/signal.h`.
static SIGNALS: [&str; 32] = [
    "",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// Real-time signals 32..=64 the way strace names them: relative to the kernel's `SIGRTMIN` (32),
/// not glibc's (34, after its two reserved signals).
static RT_SIGNALS: [&str; 33] = [
    "SIGRTMIN", "SIGRT_1", "SIGRT_2", "SIGRT_3", "SIGRT_4", "SIGRT_5", "SIGRT_6", "SIGRT_7",
    "SIGRT_8", "SIGRT_9", "SIGRT_10", "SIGRT_11", "SIGRT_12", "SIGRT_13", "SIGRT_14", "SIGRT_15",
    "SIGRT_16", "SIGRT_17", "SIGRT_18", "SIGRT_19", "SIGRT_20", "SIGRT_21", "SIGRT_22", "SIGRT_23",
    "SIGRT_24", "SIGRT_25", "SIGRT_26", "SIGRT_27", "SIGRT_28", "SIGRT_29", "SIGRT_30", "SIGRT_31",
    "SIGRTMAX",
];

/// The signal's name: `9` -> `"SIGKILL"`, `34` -> `"SIGRT_2"`; `None` outside 1..=64.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    let index = usize::try_from(sig).ok()?;
    match index {
        1..=31 => SIGNALS.get(index).copied(),
        32..=64 => RT_SIGNALS.get(index - 32).copied(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_lookups() {
        assert_eq!(errno_name(2), Some("ENOENT"));
        assert_eq!(errno_name(11), Some("EAGAIN"));
        assert_eq!(errno_name(35), Some("EDEADLK"));
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_name(-2), None);
        assert_eq!(errno_name(41), None);
        assert_eq!(errno_name(100_000), None);
        assert_eq!(errno_description(2), Some("No such file or directory"));
        assert_eq!(errno_by_name("EWOULDBLOCK"), Some(11));
        assert_eq!(errno_by_name("EHWPOISON"), Some(133));
        assert_eq!(errno_by_name("ENOPE"), None);
    }

    #[test]
    fn signal_lookups() {
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(17), Some("SIGCHLD"));
        assert_eq!(signal_name(31), Some("SIGSYS"));
        assert_eq!(signal_name(32), Some("SIGRTMIN"));
        assert_eq!(signal_name(34), Some("SIGRT_2"));
        assert_eq!(signal_name(64), Some("SIGRTMAX"));
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(65), None);
        assert_eq!(signal_name(-1), None);
    }
}
