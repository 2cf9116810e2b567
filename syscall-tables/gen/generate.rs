//! Generation logic for `src/generated_x86_64.rs` and `src/generated_errno.rs`.
//!
//! It lives in its own file so that two users share exactly one implementation: the `gen` example
//! (`gen/main.rs`), which writes the files, and the test in `tests/headers.rs`, which checks that
//! regenerating from the installed kernel headers reproduces the checked-in files byte for byte.
//! Because of that the module is std-only and never touches the file system itself: callers pass in
//! the header texts and get back the rendered source.

// The example uses the writing half and the test the checking half; neither uses everything.
#![allow(dead_code)]

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

/// Where Debian/Ubuntu's linux-libc-dev puts the x86_64 syscall numbers.
pub const UNISTD_64_H: &str = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
/// errno numbers 1..=34, shared by every architecture.
pub const ERRNO_BASE_H: &str = "/usr/include/asm-generic/errno-base.h";
/// errno numbers from 35 on (x86_64 uses the generic numbering).
pub const ERRNO_H: &str = "/usr/include/asm-generic/errno.h";

/// Syscalls of the x86_64 table that older uapi headers may lack.
///
/// Syscalls are only ever appended, so listing the recent ones here lets the table be complete (and
/// regeneration reproducible) on machines whose `linux-libc-dev` predates the kernel the sandbox
/// actually runs on (Debian 12 ships 6.1 headers, ending at 450). When the installed header does
/// have an entry, the header wins and any disagreement is an error, so this list cannot silently
/// override the kernel's own definition. Numbers from 424 on are shared by all architectures;
/// `uretprobe` (335, Linux 6.11) is x86_64-only. Everything up to 469 was checked against a 6.18
/// kernel (present when the call does not fail with ENOSYS); 470 and 471 come from strace's
/// x86_64 table and are newer than 6.18.
pub const NEWER_SYSCALLS: &[(&str, u32)] = &[
    ("uretprobe", 335),
    ("pidfd_send_signal", 424),
    ("io_uring_setup", 425),
    ("io_uring_enter", 426),
    ("io_uring_register", 427),
    ("open_tree", 428),
    ("move_mount", 429),
    ("fsopen", 430),
    ("fsconfig", 431),
    ("fsmount", 432),
    ("fspick", 433),
    ("pidfd_open", 434),
    ("clone3", 435),
    ("close_range", 436),
    ("openat2", 437),
    ("pidfd_getfd", 438),
    ("faccessat2", 439),
    ("process_madvise", 440),
    ("epoll_pwait2", 441),
    ("mount_setattr", 442),
    ("quotactl_fd", 443),
    ("landlock_create_ruleset", 444),
    ("landlock_add_rule", 445),
    ("landlock_restrict_self", 446),
    ("memfd_secret", 447),
    ("process_mrelease", 448),
    ("futex_waitv", 449),
    ("set_mempolicy_home_node", 450),
    ("cachestat", 451),
    ("fchmodat2", 452),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("mseal", 462),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
    ("open_tree_attr", 467),
    ("file_getattr", 468),
    ("file_setattr", 469),
    ("listns", 470),
    ("rseq_slice_yield", 471),
];

/// One syscall: its name (without `__NR_`) and number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub name: String,
    pub nr: u32,
}

/// One errno `#define`: either a number or another errno's name (`EWOULDBLOCK EAGAIN`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrnoValue {
    Num(i32),
    Alias(String),
}

/// The errno table after aliases are resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errnos {
    /// The first name defined for each number, sorted by number.
    pub canonical: Vec<(String, i32)>,
    /// Later names for an already named number, in header order.
    pub aliases: Vec<(String, i32)>,
}

/// Splits a `#define NAME VALUE` line (any whitespace, trailing comment allowed) into name and
/// value; `None` for every other line, including function-like macros.
pub fn split_define(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let rest = rest.strip_prefix("define")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim_start();
    let name_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (name, value) = rest.split_at(name_end);
    if name.is_empty() || value.starts_with('(') {
        return None;
    }
    let value = match value.find("/*") {
        Some(i) => &value[..i],
        None => value,
    };
    let value = match value.find("//") {
        Some(i) => &value[..i],
        None => value,
    };
    Some((name, value.trim()))
}

/// Parses every `#define __NR_name nr` of `unistd_64.h`.
pub fn parse_unistd(text: &str) -> Result<Vec<Syscall>, String> {
    let mut out = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let Some((name, value)) = split_define(line) else {
            continue;
        };
        let Some(name) = name.strip_prefix("__NR_") else {
            continue;
        };
        let nr = value
            .parse::<u32>()
            .map_err(|e| format!("line {}: __NR_{name} = {value:?}: {e}", lineno + 1))?;
        out.push(Syscall {
            name: name.to_string(),
            nr,
        });
    }
    if out.is_empty() {
        return Err("no __NR_ definitions found".to_string());
    }
    Ok(out)
}

/// Merges the header's syscalls with [`NEWER_SYSCALLS`] and sorts them by number.
///
/// Fails on any disagreement (a name with two numbers, a number with two names), because a
/// silently wrong table would make the sentry misdecode or misroute syscalls.
pub fn merge_syscalls(header: &[Syscall]) -> Result<Vec<Syscall>, String> {
    let mut by_nr: BTreeMap<u32, String> = BTreeMap::new();
    let mut names: BTreeMap<String, u32> = BTreeMap::new();
    for sc in header {
        if let Some(old) = names.insert(sc.name.clone(), sc.nr) {
            return Err(format!("{} defined twice ({old} and {})", sc.name, sc.nr));
        }
        if let Some(old) = by_nr.insert(sc.nr, sc.name.clone()) {
            return Err(format!("number {} used by {old} and {}", sc.nr, sc.name));
        }
    }
    for &(name, nr) in NEWER_SYSCALLS {
        match (names.get(name), by_nr.get(&nr)) {
            (Some(&have), _) if have != nr => {
                return Err(format!(
                    "header says {name} is {have}, NEWER_SYSCALLS says {nr}"
                ))
            }
            (Some(_), _) => {}
            (None, Some(other)) => {
                return Err(format!(
                    "header gives {nr} to {other}, NEWER_SYSCALLS gives it to {name}"
                ))
            }
            (None, None) => {
                names.insert(name.to_string(), nr);
                by_nr.insert(nr, name.to_string());
            }
        }
    }
    Ok(by_nr
        .into_iter()
        .map(|(nr, name)| Syscall { name, nr })
        .collect())
}

/// Parses the errno `#define`s (names starting with `E`) of the given header texts, in order.
pub fn parse_errno(texts: &[&str]) -> Result<Vec<(String, ErrnoValue)>, String> {
    let mut out = Vec::new();
    for text in texts {
        for (lineno, line) in text.lines().enumerate() {
            let Some((name, value)) = split_define(line) else {
                continue;
            };
            if !name.starts_with('E') {
                continue;
            }
            let value = if let Ok(n) = value.parse::<i32>() {
                ErrnoValue::Num(n)
            } else if value.starts_with('E') && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                ErrnoValue::Alias(value.to_string())
            } else {
                return Err(format!("line {}: {name} = {value:?}", lineno + 1));
            };
            out.push((name.to_string(), value));
        }
    }
    Ok(out)
}

/// Resolves aliases; the first name given to a number is its canonical name (what strace shows).
pub fn resolve_errnos(defs: &[(String, ErrnoValue)]) -> Result<Errnos, String> {
    let mut values: BTreeMap<&str, i32> = BTreeMap::new();
    let mut by_num: BTreeMap<i32, String> = BTreeMap::new();
    let mut aliases = Vec::new();
    for (name, value) in defs {
        let n = match value {
            ErrnoValue::Num(n) => *n,
            ErrnoValue::Alias(target) => *values
                .get(target.as_str())
                .ok_or_else(|| format!("{name} aliases undefined {target}"))?,
        };
        if values.insert(name, n).is_some() {
            return Err(format!("{name} defined twice"));
        }
        match by_num.entry(n) {
            Entry::Occupied(_) => aliases.push((name.clone(), n)),
            Entry::Vacant(slot) => {
                slot.insert(name.clone());
            }
        }
    }
    if by_num.is_empty() {
        return Err("no errno definitions found".to_string());
    }
    Ok(Errnos {
        canonical: by_num.into_iter().map(|(n, name)| (name, n)).collect(),
        aliases,
    })
}

/// The Rust constant name used for a syscall: its name in upper case (`_sysctl` -> `_SYSCTL`).
pub fn const_name(syscall: &str) -> String {
    syscall.to_ascii_uppercase()
}

/// Names of the `const NAME: &[ArgKind]` items of `src/signatures.rs`.
///
/// The generator refers to `signatures::NAME` for every syscall; checking first gives a clear
/// "add a signature for X" error instead of a wall of compile errors after new headers.
pub fn signature_names(signatures_rs: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for line in signatures_rs.lines() {
        let Some(i) = line.find("const ") else {
            continue;
        };
        let rest = &line[i + "const ".len()..];
        let Some(colon) = rest.find(':') else {
            continue;
        };
        let name = rest[..colon].trim();
        if rest[colon + 1..].trim_start().starts_with("&[ArgKind]")
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            out.insert(name.to_string());
        }
    }
    out
}

const HEADER_NOTE: &str = "\
// @generated by `cargo run -p syscall-tables --example gen` (gen/generate.rs).
// Do not edit by hand: see syscall-tables/README.md for how to regenerate.
";

/// Renders `src/generated_x86_64.rs`.
pub fn render_x86_64(syscalls: &[Syscall], signatures: &HashSet<String>) -> Result<String, String> {
    let missing: Vec<&str> = syscalls
        .iter()
        .filter(|s| !signatures.contains(&const_name(&s.name)))
        .map(|s| s.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "src/signatures.rs has no argument list for: {} (add `pub(crate) const NAME: &[ArgKind] = ...`)",
            missing.join(", ")
        ));
    }
    let max_nr = syscalls
        .iter()
        .map(|s| s.nr)
        .max()
        .ok_or_else(|| "empty syscall table".to_string())?;
    if syscalls.len() >= usize::from(u16::MAX) {
        return Err("too many syscalls for u16 indices".to_string());
    }
    let table_size = max_nr as usize + 1;

    let mut s = String::new();
    s.push_str(HEADER_NOTE);
    let _ = writeln!(
        s,
        "// Sources: {UNISTD_64_H}, plus gen/generate.rs NEWER_SYSCALLS for numbers the header lacks."
    );
    s.push_str(
        "
//! The x86_64 syscall table: numbers and names from the kernel's uapi header, argument kinds from
//! `signatures.rs`.

use crate::signatures as sig;
use crate::SyscallInfo;

",
    );
    let _ = writeln!(
        s,
        "/// Largest x86_64 syscall number plus one: the size of a table indexed by number."
    );
    let _ = writeln!(s, "pub const TABLE_SIZE: usize = {table_size};");
    s.push('\n');
    let _ = writeln!(
        s,
        "/// Every syscall of the x86_64 table, sorted by number ({} entries).",
        syscalls.len()
    );
    s.push_str("#[rustfmt::skip]\npub static SYSCALLS: &[SyscallInfo] = &[\n");
    for sc in syscalls {
        let _ = writeln!(
            s,
            "    SyscallInfo {{ nr: {}, name: {:?}, args: sig::{} }},",
            sc.nr,
            sc.name,
            const_name(&sc.name)
        );
    }
    s.push_str("];\n\n");

    s.push_str("/// Marks an unused number in [`BY_NUMBER`].\npub(crate) const NO_SYSCALL: u16 = u16::MAX;\n\n");
    s.push_str("/// `BY_NUMBER[nr]` is the index of syscall `nr` in [`SYSCALLS`] (O(1) lookup by number).\n");
    s.push_str("#[rustfmt::skip]\npub(crate) static BY_NUMBER: [u16; TABLE_SIZE] = [\n");
    let mut index = vec![None; table_size];
    for (i, sc) in syscalls.iter().enumerate() {
        index[sc.nr as usize] = Some(i);
    }
    for chunk in index.chunks(16) {
        let cells: Vec<String> = chunk
            .iter()
            .map(|c| match c {
                Some(i) => i.to_string(),
                None => "NO_SYSCALL".to_string(),
            })
            .collect();
        let _ = writeln!(s, "    {},", cells.join(", "));
    }
    s.push_str("];\n\n");

    let mut by_name: Vec<(&str, usize)> = syscalls
        .iter()
        .enumerate()
        .map(|(i, sc)| (sc.name.as_str(), i))
        .collect();
    by_name.sort();
    s.push_str("/// Names with their index in [`SYSCALLS`], sorted by name for binary search.\n");
    let _ = writeln!(
        s,
        "#[rustfmt::skip]\npub(crate) static BY_NAME: [(&str, u16); {}] = [",
        by_name.len()
    );
    for (name, i) in by_name {
        let _ = writeln!(s, "    ({name:?}, {i}),");
    }
    s.push_str("];\n\n");

    s.push_str("/// Syscall numbers, one constant per syscall, named after it in upper case.\n");
    s.push_str("#[rustfmt::skip]\npub mod nr {\n");
    for sc in syscalls {
        let _ = writeln!(
            s,
            "    pub const {}: u64 = {};",
            const_name(&sc.name),
            sc.nr
        );
    }
    s.push_str("}\n");
    Ok(s)
}

/// strerror(3) text for `errno`, as the C library of the generating machine words it.
///
/// std formats OS errors with the C library's `strerror_r` and appends " (os error N)"; that
/// suffix is removed. The generated table thus matches what strace prints on a glibc system.
pub fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let suffix = format!(" (os error {errno})");
    match text.strip_suffix(&suffix) {
        Some(t) => t.to_string(),
        None => text,
    }
}

/// Renders `src/generated_errno.rs`; `describe` supplies each errno's description.
pub fn render_errno(errnos: &Errnos, describe: &dyn Fn(i32) -> String) -> Result<String, String> {
    let max = errnos
        .canonical
        .iter()
        .map(|&(_, n)| n)
        .max()
        .ok_or_else(|| "empty errno table".to_string())?;
    if errnos.canonical.iter().any(|&(_, n)| n <= 0) {
        return Err("errno numbers must be positive".to_string());
    }
    let size = max as usize + 1;
    let mut rows = vec![None; size];
    for (name, n) in &errnos.canonical {
        rows[*n as usize] = Some(name.as_str());
    }

    let mut s = String::new();
    s.push_str(HEADER_NOTE);
    let _ = writeln!(
        s,
        "// Sources: {ERRNO_BASE_H}, {ERRNO_H}; descriptions from the C library's strerror."
    );
    s.push_str(
        "
//! errno names (from the kernel's uapi headers) and descriptions (strerror text).

",
    );
    s.push_str("/// One more than the largest errno number the headers define.\n");
    let _ = writeln!(s, "pub(crate) const ERRNO_TABLE_SIZE: usize = {size};");
    s.push('\n');
    s.push_str("/// `ERRNOS[n]` is `(name, description)` of errno `n`, `None` where the number is unused.\n");
    s.push_str("#[rustfmt::skip]\npub(crate) static ERRNOS: [Option<(&str, &str)>; ERRNO_TABLE_SIZE] = [\n");
    for (n, row) in rows.iter().enumerate() {
        match row {
            Some(name) => {
                let _ = writeln!(s, "    Some(({name:?}, {:?})), // {n}", describe(n as i32));
            }
            None => {
                let _ = writeln!(s, "    None, // {n}");
            }
        }
    }
    s.push_str("];\n\n");
    s.push_str("/// Second names of already named errnos (`EWOULDBLOCK` is `EAGAIN`).\n");
    s.push_str("#[rustfmt::skip]\npub(crate) static ERRNO_ALIASES: &[(&str, i32)] = &[\n");
    for (name, n) in &errnos.aliases {
        let _ = writeln!(s, "    ({name:?}, {n}),");
    }
    s.push_str("];\n");
    Ok(s)
}

/// Both generated files, from the header texts and `src/signatures.rs`.
pub struct Generated {
    pub x86_64: String,
    pub errno: String,
}

/// Runs the whole generation: `unistd_64.h`, `errno-base.h`, `errno.h` and `signatures.rs` texts in,
/// the two source files out.
pub fn generate_all(
    unistd: &str,
    errno_base: &str,
    errno: &str,
    signatures_rs: &str,
) -> Result<Generated, String> {
    let syscalls = merge_syscalls(&parse_unistd(unistd)?)?;
    let x86_64 = render_x86_64(&syscalls, &signature_names(signatures_rs))?;
    let errnos = resolve_errnos(&parse_errno(&[errno_base, errno])?)?;
    let errno = render_errno(&errnos, &strerror)?;
    Ok(Generated { x86_64, errno })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_define_handles_tabs_comments_and_macros() {
        assert_eq!(
            split_define("#define\tENOENT\t\t 2\t/* No such file */"),
            Some(("ENOENT", "2"))
        );
        assert_eq!(
            split_define("#define __NR_read 0"),
            Some(("__NR_read", "0"))
        );
        assert_eq!(split_define("# define X (1 << 2)"), Some(("X", "(1 << 2)")));
        assert_eq!(split_define("#define F(x) ((x) + 1)"), None);
        assert_eq!(split_define("#defineX 1"), None);
        assert_eq!(split_define("#ifndef X"), None);
    }

    #[test]
    fn merge_rejects_conflicts() {
        let bad = [Syscall {
            name: "clone3".to_string(),
            nr: 999,
        }];
        assert!(merge_syscalls(&bad).is_err());
        let taken = [Syscall {
            name: "other".to_string(),
            nr: 435,
        }];
        assert!(merge_syscalls(&taken).is_err());
    }

    #[test]
    fn errno_aliases_resolve_to_first_name() {
        let defs =
            parse_errno(&["#define EAGAIN 11\n#define EWOULDBLOCK EAGAIN\n"]).unwrap_or_default();
        let e = resolve_errnos(&defs).unwrap_or_default();
        assert_eq!(e.canonical, vec![("EAGAIN".to_string(), 11)]);
        assert_eq!(e.aliases, vec![("EWOULDBLOCK".to_string(), 11)]);
    }
}
