//! strace-style rendering of syscalls, their arguments and results.
//!
//! The goal is output a person who knows strace can read at a glance, decoded without ever failing:
//! whatever cannot be read from the tracee (bad pointers, unmapped memory) is shown as the raw
//! address instead.

use std::fmt::Write as _;

use crate::flags::{self, CLONE_FLAGS_NAME};
use crate::{errno_description, errno_name, signal_name, ArgKind, FlagSet, FlagStyle};
use crate::{MemReader, SyscallInfo};

/// Bytes of a buffer or argv string shown before `...`, strace's default `-s 32`.
const STR_LIMIT: usize = 32;
/// Paths are shown whole (as strace does) up to the kernel's PATH_MAX.
const PATH_MAX: usize = 4096;
/// Elements of argv/envp shown before `...`.
const ARRAY_LIMIT: usize = 8;
/// `AT_FDCWD`, the "current directory" dirfd.
const AT_FDCWD: i32 = -100;
/// Syscall results in `-4095..=-1` are negated errnos (the kernel's `IS_ERR_VALUE`).
const MAX_ERRNO: i64 = 4095;

/// Formats the call with its arguments (`args` = the six argument registers) and its result
/// (raw return value, negative errno for errors), strace style:
/// `openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3` or
/// `= -1 ENOENT (No such file or directory)`. [`ArgKind::OutBuf`] arguments are decoded using
/// `ret` as the length.
pub fn format_call(info: &SyscallInfo, args: &[u64; 6], ret: i64, mem: &dyn MemReader) -> String {
    let mut out = call_text(info, args, Some(ret), mem);
    out.push_str(" = ");
    out.push_str(&format_ret(info.name, ret));
    out
}

/// Formats only the call part (for printing at syscall entry, e.g. before `execve`/`exit`);
/// [`ArgKind::OutBuf`] arguments show as addresses since nothing has been written yet.
pub fn format_entry(info: &SyscallInfo, args: &[u64; 6], mem: &dyn MemReader) -> String {
    call_text(info, args, None, mem)
}

/// Formats a syscall whose number is not in the table: `syscall_0x1f4(0x1, ...) = -1 ENOSYS (...)`.
/// All six registers are shown since the argument count is unknown.
pub fn format_unknown(nr: u64, args: &[u64; 6], ret: i64) -> String {
    let shown: Vec<String> = args.iter().map(|&a| hex(a)).collect();
    format!(
        "syscall_{:#x}({}) = {}",
        nr,
        shown.join(", "),
        format_ret("", ret)
    )
}

/// Formats `value` with the names of `set`: `"O_RDONLY|O_CLOEXEC"`. Bits without a name are
/// appended as `|0x...`; a zero [`FlagStyle::Bits`] value is `"0"` unless the set names zero
/// (`PROT_NONE`); an unknown [`FlagStyle::Enum`] value is shown as hex. For the `clone` flag set
/// the low byte is the exit signal and is shown by name (`CLONE_VM|SIGCHLD`).
pub fn format_flags(set: &FlagSet, value: u64) -> String {
    match set.style {
        FlagStyle::Enum => enum_name(set.values, value).map_or_else(|| hex(value), str::to_string),
        FlagStyle::Bits if set.name == CLONE_FLAGS_NAME => clone_flags(set.values, value),
        FlagStyle::Bits => bits(set.values, value),
        FlagStyle::OpenFlags => {
            let mode = value & 3;
            let mut out = set
                .values
                .iter()
                .find(|&&(v, _)| v == mode)
                .map_or_else(|| hex(mode), |&(_, name)| name.to_string());
            let rest = value & !3;
            if rest != 0 {
                let named: Vec<(u64, &str)> = set
                    .values
                    .iter()
                    .copied()
                    .filter(|&(v, _)| v & 3 == 0 && v != 0)
                    .collect();
                out.push('|');
                out.push_str(&bits(&named, rest));
            }
            out
        }
    }
}

/// An enum value's name. Values passed as a C `int` may arrive zero-extended (`-1` as
/// `0xffffffff`), so a miss is retried with the low 32 bits sign-extended.
fn enum_name(values: &[(u64, &'static str)], value: u64) -> Option<&'static str> {
    let find = |x: u64| values.iter().find(|&&(v, _)| v == x).map(|&(_, n)| n);
    find(value).or_else(|| {
        if value >> 32 == 0 {
            find(value as u32 as i32 as i64 as u64)
        } else {
            None
        }
    })
}

fn bits(values: &[(u64, &str)], value: u64) -> String {
    if value == 0 {
        return values
            .iter()
            .find(|&&(v, _)| v == 0)
            .map_or_else(|| "0".to_string(), |&(_, n)| n.to_string());
    }
    let mut rest = value;
    let mut parts: Vec<String> = Vec::new();
    for &(v, name) in values {
        if v != 0 && rest & v == v {
            parts.push(name.to_string());
            rest &= !v;
        }
    }
    if rest != 0 {
        parts.push(hex(rest));
    }
    parts.join("|")
}

fn clone_flags(values: &[(u64, &str)], value: u64) -> String {
    let signal = value & 0xff;
    let rest = value & !0xff;
    let mut parts = Vec::new();
    if rest != 0 {
        parts.push(bits(values, rest));
    }
    if signal != 0 {
        parts.push(signal_text(signal));
    }
    if parts.is_empty() {
        return "0".to_string();
    }
    parts.join("|")
}

/// `name(arg, ...)`; `ret` is `None` at syscall entry.
fn call_text(info: &SyscallInfo, args: &[u64; 6], ret: Option<i64>, mem: &dyn MemReader) -> String {
    let count = visible_args(info, args);
    let mut out = String::with_capacity(64);
    out.push_str(info.name);
    out.push('(');
    for (i, kind) in info.args.iter().take(count).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let text = special_arg(info.name, i, args, ret, mem)
            .unwrap_or_else(|| format_arg(*kind, i, args, ret, mem));
        out.push_str(&text);
    }
    out.push(')');
    out
}

/// How many arguments to show. Most calls show all of theirs; a few ignore some depending on
/// another argument, and strace leaves those out rather than print stale register contents
/// (`openat` shows a mode only with `O_CREAT`/`O_TMPFILE`).
fn visible_args(info: &SyscallInfo, args: &[u64; 6]) -> usize {
    const O_CREAT: u64 = 0o100;
    const O_TMPFILE_BIT: u64 = 0o20000000;
    let all = info.args.len();
    let needs_mode = |flags: u64| flags & (O_CREAT | O_TMPFILE_BIT) != 0;
    match info.name {
        "open" if !needs_mode(args[1]) => 2,
        "openat" if !needs_mode(args[2]) => 3,
        "mq_open" if args[1] & O_CREAT == 0 => 2,
        "fcntl" => match args[1] {
            // F_GETFD, F_GETFL, F_GETOWN, F_GETSIG, F_GETLEASE, F_GETPIPE_SZ, F_GET_SEALS
            1 | 3 | 9 | 11 | 1025 | 1032 | 1034 => 2,
            _ => all,
        },
        "futex" => match args[1] & 0x7f {
            1 | 2 => 3,      // WAKE, FD
            7 | 8 => 2,      // UNLOCK_PI, TRYLOCK_PI
            0 | 6 | 13 => 4, // WAIT, LOCK_PI, LOCK_PI2
            3 | 11 => 5,     // REQUEUE, WAIT_REQUEUE_PI
            _ => all,
        },
        _ => all,
    }
    .min(all)
}

/// Arguments whose meaning depends on another argument or on the call.
fn special_arg(
    name: &str,
    index: usize,
    args: &[u64; 6],
    ret: Option<i64>,
    mem: &dyn MemReader,
) -> Option<String> {
    match (name, index) {
        ("fcntl", 2) => Some(match args[1] {
            2 => format_flags(&flags::FD_FLAGS, args[2]),
            4 => format_flags(&flags::OPEN, args[2]),
            1033 => format_flags(&flags::SEALS, args[2]),
            // F_SETSIG takes a signal number.
            10 => signal_text(args[2]),
            // F_DUPFD, F_SETOWN, F_SETLEASE, F_NOTIFY, F_DUPFD_CLOEXEC, F_SETPIPE_SZ, ...
            0 | 8 | 1024 | 1026 | 1027 | 1030 | 1031 => int(args[2]),
            // Lock and owner structures.
            5..=7 | 15 | 16 | 36..=38 => ptr(args[2]),
            _ => hex(args[2]),
        }),
        // getcwd's result includes the terminating NUL; show the string like strace does.
        ("getcwd", 0) => match ret {
            Some(r) if r > 0 => Some(path(args[0], mem)),
            _ => None,
        },
        _ => None,
    }
}

fn format_arg(
    kind: ArgKind,
    index: usize,
    args: &[u64; 6],
    ret: Option<i64>,
    mem: &dyn MemReader,
) -> String {
    let v = args.get(index).copied().unwrap_or(0);
    let arg = |i: u8| args.get(usize::from(i)).copied().unwrap_or(0);
    match kind {
        ArgKind::Int => int(v),
        ArgKind::Uint | ArgKind::Size => v.to_string(),
        ArgKind::Hex => hex(v),
        ArgKind::Fd => (v as i32).to_string(),
        ArgKind::DirFd => match v as i32 {
            AT_FDCWD => "AT_FDCWD".to_string(),
            fd => fd.to_string(),
        },
        ArgKind::Path => path(v, mem),
        ArgKind::InBuf { len_arg } => buffer(v, arg(len_arg), mem),
        ArgKind::OutBuf { len_arg } => match ret {
            Some(r) if r >= 0 => buffer(v, (r as u64).min(arg(len_arg)), mem),
            _ => ptr(v),
        },
        ArgKind::Ptr => ptr(v),
        ArgKind::Flags(set) => format_flags(set, v),
        ArgKind::Mode => mode(v),
        ArgKind::Signal => signal_text(v),
        ArgKind::StrArray => str_array(v, mem),
    }
}

/// Signed decimal; `0xffffffff` is taken as a 32-bit -1 because glibc zero-extends `uid_t`/`gid_t`
/// -1 ("leave unchanged") and strace shows those as -1.
fn int(v: u64) -> String {
    if v == u64::from(u32::MAX) {
        return "-1".to_string();
    }
    (v as i64).to_string()
}

/// `%#lx`: `0x1f`, and plain `0` for zero.
fn hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

fn ptr(v: u64) -> String {
    if v == 0 {
        "NULL".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// `%#03o`: `0644`, `000`, `07`-style leading zero.
fn mode(v: u64) -> String {
    let octal = if v == 0 {
        "0".to_string()
    } else {
        format!("0{v:o}")
    };
    format!("{octal:0>3}")
}

fn signal_text(v: u64) -> String {
    let sig = v as i32;
    signal_name(sig).map_or_else(|| sig.to_string(), str::to_string)
}

/// A NUL-terminated string shown whole (up to PATH_MAX), or its address if unreadable.
fn path(addr: u64, mem: &dyn MemReader) -> String {
    if addr == 0 {
        return "NULL".to_string();
    }
    match mem.read_cstr(addr, PATH_MAX) {
        Some(bytes) => {
            let mut out = quote(&bytes);
            if bytes.len() >= PATH_MAX {
                out.push_str("...");
            }
            out
        }
        None => ptr(addr),
    }
}

/// The first [`STR_LIMIT`] of `len` bytes at `addr`, quoted, `...` if longer.
fn buffer(addr: u64, len: u64, mem: &dyn MemReader) -> String {
    if addr == 0 {
        return "NULL".to_string();
    }
    let shown = usize::try_from(len).map_or(STR_LIMIT, |l| l.min(STR_LIMIT));
    match mem.read_bytes(addr, shown) {
        Some(bytes) => {
            let mut out = quote(bytes.get(..shown).unwrap_or(&bytes));
            if len > STR_LIMIT as u64 {
                out.push_str("...");
            }
            out
        }
        None => ptr(addr),
    }
}

/// A NULL-terminated array of string pointers: `["ls", "-l"]`, `...` after [`ARRAY_LIMIT`].
fn str_array(addr: u64, mem: &dyn MemReader) -> String {
    if addr == 0 {
        return "NULL".to_string();
    }
    let mut items = Vec::new();
    for i in 0..=ARRAY_LIMIT as u64 {
        let slot = addr.wrapping_add(i * 8);
        let Some(raw) = mem.read_bytes(slot, 8) else {
            if i == 0 {
                return ptr(addr);
            }
            // The array runs into unreadable memory: show what was read.
            items.push("...".to_string());
            break;
        };
        let Ok(word) = <[u8; 8]>::try_from(raw.as_slice()) else {
            return ptr(addr);
        };
        let p = u64::from_le_bytes(word);
        if p == 0 {
            break;
        }
        if i == ARRAY_LIMIT as u64 {
            items.push("...".to_string());
            break;
        }
        items.push(match mem.read_cstr(p, STR_LIMIT + 1) {
            Some(s) if s.len() > STR_LIMIT => {
                let mut q = quote(s.get(..STR_LIMIT).unwrap_or(&s));
                q.push_str("...");
                q
            }
            Some(s) => quote(&s),
            None => ptr(p),
        });
    }
    format!("[{}]", items.join(", "))
}

/// Quotes bytes as strace does: printable ASCII as-is, `\n \t \r \" \\` escaped, the rest `\xNN`.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// Errnos the kernel uses internally that a tracer can still observe at syscall exit (from
/// `include/linux/errno.h`, not part of the uapi headers). `true` marks the ones after which
/// the syscall is restarted, which strace shows as `= ?`.
static KERNEL_ERRNOS: &[(i64, &str, &str, bool)] = &[
    (
        512,
        "ERESTARTSYS",
        "To be restarted if SA_RESTART is set",
        true,
    ),
    (513, "ERESTARTNOINTR", "To be restarted", true),
    (514, "ERESTARTNOHAND", "To be restarted if no handler", true),
    (515, "ENOIOCTLCMD", "No ioctl command", false),
    (516, "ERESTART_RESTARTBLOCK", "Interrupted by signal", true),
    (517, "EPROBE_DEFER", "Driver requests probe retry", false),
    (518, "EOPENSTALE", "Open found a stale dentry", false),
    (519, "ENOPARAM", "Parameter not supported", false),
    (521, "EBADHANDLE", "Illegal NFS file handle", false),
    (522, "ENOTSYNC", "Update synchronization mismatch", false),
    (523, "EBADCOOKIE", "Cookie is stale", false),
    (524, "ENOTSUPP", "Operation is not supported", false),
    (525, "ETOOSMALL", "Buffer or request is too small", false),
    (
        526,
        "ESERVERFAULT",
        "An untranslatable error occurred",
        false,
    ),
    (527, "EBADTYPE", "Type not supported by server", false),
    (
        528,
        "EJUKEBOX",
        "Request initiated, but will not complete before timeout",
        false,
    ),
    (
        529,
        "EIOCBQUEUED",
        "iocb queued, will get completion event",
        false,
    ),
    (
        530,
        "ERECALLCONFLICT",
        "Conflict with recalled state",
        false,
    ),
    (531, "ENOGRACE", "NFS file lock reclaim refused", false),
];

/// The part after ` = `: a number, an address for calls returning one, or `-1 ENAME (text)`.
fn format_ret(name: &str, ret: i64) -> String {
    if (-MAX_ERRNO..=-1).contains(&ret) {
        let e = -ret;
        if let Some(&(_, ename, desc, restart)) = KERNEL_ERRNOS.iter().find(|k| k.0 == e) {
            let shown = if restart { "?" } else { "-1" };
            return format!("{shown} {ename} ({desc})");
        }
        let errno = e as i32;
        return match (errno_name(errno), errno_description(errno)) {
            (Some(ename), Some(desc)) => format!("-1 {ename} ({desc})"),
            _ => format!("-1 (errno {e})"),
        };
    }
    match name {
        "mmap" | "mremap" | "brk" | "shmat" => hex(ret as u64),
        _ => ret.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(b"hi\n\t\r\"\\"), "\"hi\\n\\t\\r\\\"\\\\\"");
        assert_eq!(quote(b"\x00\x7f\xff~ "), "\"\\x00\\x7f\\xff~ \"");
    }

    #[test]
    fn numbers() {
        assert_eq!(mode(0o644), "0644");
        assert_eq!(mode(0), "000");
        assert_eq!(mode(0o7), "007");
        assert_eq!(mode(0o1777), "01777");
        assert_eq!(hex(0), "0");
        assert_eq!(hex(0x1000), "0x1000");
        assert_eq!(ptr(0), "NULL");
        assert_eq!(int(u64::MAX), "-1");
        assert_eq!(int(0xffff_ffff), "-1");
        assert_eq!(int(0x8000_0000), "2147483648");
        assert_eq!(signal_text(9), "SIGKILL");
        assert_eq!(signal_text(0), "0");
    }

    #[test]
    fn results() {
        assert_eq!(format_ret("read", 5), "5");
        assert_eq!(format_ret("read", -4), "-1 EINTR (Interrupted system call)");
        assert_eq!(format_ret("mmap", 0x7f00_0000_0000), "0x7f0000000000");
        assert_eq!(
            format_ret("mmap", -12),
            "-1 ENOMEM (Cannot allocate memory)"
        );
        assert_eq!(
            format_ret("read", -512),
            "? ERESTARTSYS (To be restarted if SA_RESTART is set)"
        );
        assert_eq!(format_ret("read", -4000), "-1 (errno 4000)");
        assert_eq!(format_ret("lseek", -5000), "-5000");
    }
}
