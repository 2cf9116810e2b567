//! Checks the checked-in tables against the headers installed on this machine.
//!
//! Every test here is skipped (with a note on stderr) where the headers are missing, because the
//! crate must build and test on machines without `linux-libc-dev`; where they exist, a mismatch
//! means the checked-in source is stale or a hand-written value is wrong.

#[path = "../gen/generate.rs"]
mod generate;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use syscall_tables::{errno_by_name, errno_name, flags, signal_name, x86_64};

fn read_header(path: &str) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            eprintln!("skipping: cannot read {path}: {e}");
            None
        }
    }
}

#[test]
fn every_header_syscall_is_in_the_table() {
    let Some(text) = read_header(generate::UNISTD_64_H) else {
        return;
    };
    let header = generate::parse_unistd(&text).expect("unistd_64.h parses");
    let mut names = HashSet::new();
    for sc in &header {
        let info = x86_64::by_name(&sc.name)
            .unwrap_or_else(|| panic!("{} ({}) missing: regenerate the table", sc.name, sc.nr));
        assert_eq!(
            info.nr, sc.nr,
            "{} has another number in the table",
            sc.name
        );
        let by_nr = x86_64::by_number(u64::from(sc.nr)).map(|i| i.name);
        assert_eq!(by_nr, Some(sc.name.as_str()));
        names.insert(sc.name.as_str());
    }
    // Nothing extra: whatever the header lacks must come from the reviewed list of newer syscalls.
    let newer: HashMap<&str, u32> = generate::NEWER_SYSCALLS.iter().copied().collect();
    for info in x86_64::SYSCALLS {
        if !names.contains(info.name) {
            assert_eq!(
                newer.get(info.name),
                Some(&info.nr),
                "{} ({}) is neither in the header nor in NEWER_SYSCALLS",
                info.name,
                info.nr
            );
        }
    }
}

#[test]
fn every_header_errno_is_in_the_table() {
    let (Some(base), Some(more)) = (
        read_header(generate::ERRNO_BASE_H),
        read_header(generate::ERRNO_H),
    ) else {
        return;
    };
    let defs = generate::parse_errno(&[&base, &more]).expect("errno headers parse");
    let errnos = generate::resolve_errnos(&defs).expect("errno aliases resolve");
    for (name, n) in &errnos.canonical {
        assert_eq!(errno_name(*n), Some(name.as_str()), "errno {n}");
        assert_eq!(errno_by_name(name), Some(*n));
    }
    for (name, n) in &errnos.aliases {
        assert_eq!(errno_by_name(name), Some(*n), "alias {name}");
    }
    let defined: HashSet<i32> = errnos.canonical.iter().map(|&(_, n)| n).collect();
    for n in -5..1000 {
        assert_eq!(
            errno_name(n).is_some(),
            defined.contains(&n),
            "errno {n}: table and headers disagree"
        );
    }
}

/// Regenerating from the installed headers must give exactly the checked-in files.
#[test]
fn regenerating_gives_the_checked_in_files() {
    let (Some(unistd), Some(base), Some(more)) = (
        read_header(generate::UNISTD_64_H),
        read_header(generate::ERRNO_BASE_H),
        read_header(generate::ERRNO_H),
    ) else {
        return;
    };
    let generated =
        generate::generate_all(&unistd, &base, &more, include_str!("../src/signatures.rs"))
            .expect("generation succeeds");
    assert!(
        generated.x86_64 == include_str!("../src/generated_x86_64.rs"),
        "src/generated_x86_64.rs is stale: run `cargo run -p syscall-tables --example gen`"
    );
    // Descriptions come from the C library's strerror, so only glibc reproduces them exactly;
    // the names and numbers are checked everywhere by `every_header_errno_is_in_the_table`.
    if cfg!(target_env = "gnu") {
        assert!(
            generated.errno == include_str!("../src/generated_errno.rs"),
            "src/generated_errno.rs is stale: run `cargo run -p syscall-tables --example gen`"
        );
    }
}

/// Headers searched for flag values, kernel ones first: where glibc defines a name differently
/// for its own purposes (`O_LARGEFILE` is 0 on 64-bit glibc), the kernel's value is the one a
/// tracer sees in registers.
const FLAG_HEADERS: &[&str] = &[
    "/usr/include/x86_64-linux-gnu/asm/mman.h",
    "/usr/include/x86_64-linux-gnu/asm/prctl.h",
    "/usr/include/x86_64-linux-gnu/asm/ptrace-abi.h",
    "/usr/include/x86_64-linux-gnu/asm/signal.h",
    "/usr/include/x86_64-linux-gnu/asm/socket.h",
    "/usr/include/asm-generic/fcntl.h",
    "/usr/include/asm-generic/mman-common.h",
    "/usr/include/asm-generic/mman.h",
    "/usr/include/asm-generic/hugetlb_encode.h",
    "/usr/include/asm-generic/resource.h",
    "/usr/include/asm-generic/signal-defs.h",
    "/usr/include/asm-generic/ioctls.h",
    "/usr/include/asm-generic/socket.h",
    "/usr/include/linux/fcntl.h",
    "/usr/include/linux/mman.h",
    "/usr/include/linux/sched.h",
    "/usr/include/linux/wait.h",
    "/usr/include/linux/prctl.h",
    "/usr/include/linux/futex.h",
    "/usr/include/linux/time.h",
    "/usr/include/linux/resource.h",
    "/usr/include/linux/eventpoll.h",
    "/usr/include/linux/random.h",
    "/usr/include/linux/memfd.h",
    "/usr/include/linux/close_range.h",
    "/usr/include/linux/mount.h",
    "/usr/include/linux/fs.h",
    "/usr/include/linux/ptrace.h",
    "/usr/include/linux/fadvise.h",
    "/usr/include/linux/seccomp.h",
    "/usr/include/linux/inotify.h",
    "/usr/include/linux/signalfd.h",
    "/usr/include/linux/timerfd.h",
    "/usr/include/linux/eventfd.h",
    "/usr/include/linux/pidfd.h",
    "/usr/include/linux/xattr.h",
    "/usr/include/linux/watch_queue.h",
    "/usr/include/unistd.h",
    "/usr/include/x86_64-linux-gnu/bits/socket.h",
    "/usr/include/x86_64-linux-gnu/bits/socket_type.h",
    "/usr/include/x86_64-linux-gnu/bits/fcntl-linux.h",
    "/usr/include/x86_64-linux-gnu/bits/eventfd.h",
    "/usr/include/x86_64-linux-gnu/bits/timerfd.h",
    "/usr/include/x86_64-linux-gnu/bits/in.h",
    "/usr/include/x86_64-linux-gnu/sys/socket.h",
    "/usr/include/x86_64-linux-gnu/sys/mount.h",
    "/usr/include/x86_64-linux-gnu/sys/ptrace.h",
    "/usr/include/x86_64-linux-gnu/sys/timerfd.h",
    "/usr/include/netinet/tcp.h",
    "/usr/include/netinet/udp.h",
];

/// Every `#define NAME value` and enum member `NAME = value` of the headers, all definitions kept
/// (headers define some names differently under `#if`, which this text scan cannot evaluate).
fn collect_definitions(paths: &[&str]) -> HashMap<String, Vec<String>> {
    let mut defs: HashMap<String, Vec<String>> = HashMap::new();
    for path in paths {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines() {
            let entry = generate::split_define(line).or_else(|| enum_member(line));
            if let Some((name, value)) = entry {
                // glibc's `#define MSG_OOB MSG_OOB` marks an enum member; the value is elsewhere.
                if value != name && !value.is_empty() {
                    defs.entry(name.to_string())
                        .or_default()
                        .push(value.to_string());
                }
            }
        }
    }
    defs
}

/// `    NAME = value,` inside a C enum.
fn enum_member(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.trim().split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let value = value
        .split("/*")
        .next()?
        .trim()
        .trim_end_matches(',')
        .trim();
    Some((name, value))
}

/// A tiny C constant-expression evaluator: integer literals (with U/L suffixes), names of other
/// definitions, parentheses, unary `-`/`~`, and `+ - << >> & ^ |`. Anything else (casts,
/// `_IOR(...)`) is `None`, and the caller skips that name.
struct Eval<'a> {
    defs: &'a HashMap<String, Vec<String>>,
}

impl Eval<'_> {
    fn name(&self, name: &str, depth: u32) -> Option<u64> {
        if depth > 20 {
            return None;
        }
        self.defs
            .get(name)?
            .iter()
            .find_map(|expr| self.expr(expr, depth + 1))
    }

    fn expr(&self, text: &str, depth: u32) -> Option<u64> {
        let tokens = tokenize(text)?;
        let mut pos = 0;
        let v = self.binary(&tokens, &mut pos, 0, depth)?;
        (pos == tokens.len()).then_some(v)
    }

    fn binary(&self, t: &[String], pos: &mut usize, min_prec: u8, depth: u32) -> Option<u64> {
        let mut lhs = self.unary(t, pos, depth)?;
        while let Some(op) = t.get(*pos) {
            let prec = match op.as_str() {
                "|" => 1,
                "^" => 2,
                "&" => 3,
                "<<" | ">>" => 4,
                "+" | "-" => 5,
                _ => break,
            };
            if prec < min_prec {
                break;
            }
            let op = op.clone();
            *pos += 1;
            let rhs = self.binary(t, pos, prec + 1, depth)?;
            lhs = match op.as_str() {
                "|" => lhs | rhs,
                "^" => lhs ^ rhs,
                "&" => lhs & rhs,
                "<<" => lhs.checked_shl(u32::try_from(rhs).ok()?)?,
                ">>" => lhs.checked_shr(u32::try_from(rhs).ok()?)?,
                "+" => lhs.wrapping_add(rhs),
                _ => lhs.wrapping_sub(rhs),
            };
        }
        Some(lhs)
    }

    fn unary(&self, t: &[String], pos: &mut usize, depth: u32) -> Option<u64> {
        let tok = t.get(*pos)?.clone();
        *pos += 1;
        match tok.as_str() {
            "-" => Some(self.unary(t, pos, depth)?.wrapping_neg()),
            "~" => Some(!self.unary(t, pos, depth)?),
            "(" => {
                let v = self.binary(t, pos, 0, depth)?;
                (t.get(*pos)? == ")").then_some(())?;
                *pos += 1;
                Some(v)
            }
            _ if tok.starts_with(|c: char| c.is_ascii_digit()) => literal(&tok),
            _ => self.name(&tok, depth),
        }
    }
}

fn tokenize(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push(word);
        } else if c == '<' || c == '>' {
            chars.next();
            if chars.next() != Some(c) {
                return None;
            }
            out.push(format!("{c}{c}"));
        } else if "()|&^+-~".contains(c) {
            out.push(c.to_string());
            chars.next();
        } else {
            return None;
        }
    }
    Some(out)
}

fn literal(tok: &str) -> Option<u64> {
    let t = tok.trim_end_matches(['u', 'U', 'l', 'L']);
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()
    } else {
        t.parse().ok()
    }
}

fn is_identifier(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[test]
fn flag_values_match_the_headers() {
    if !Path::new("/usr/include/linux/fcntl.h").exists() {
        eprintln!("skipping: no kernel headers");
        return;
    }
    let defs = collect_definitions(FLAG_HEADERS);
    let eval = Eval { defs: &defs };
    let mut checked = 0usize;
    let mut unchecked = Vec::new();
    let mut wrong = Vec::new();
    for set in flags::ALL {
        for &(value, name) in set.values {
            // Combined names (`SOCK_STREAM|SOCK_CLOEXEC`) are checked through their parts.
            if !is_identifier(name) {
                continue;
            }
            let candidates: Vec<u64> = defs
                .get(name)
                .map(|exprs| exprs.iter().filter_map(|e| eval.expr(e, 0)).collect())
                .unwrap_or_default();
            if candidates.is_empty() {
                unchecked.push(name);
            } else if candidates.contains(&value) {
                checked += 1;
            } else {
                wrong.push(format!(
                    "{}: {name} is {value:#x}, headers say {candidates:x?}",
                    set.name
                ));
            }
        }
    }
    eprintln!(
        "checked {checked} flag values; not in these headers (newer or glibc-less): {unchecked:?}"
    );
    assert!(wrong.is_empty(), "wrong flag values:\n{}", wrong.join("\n"));
    // Guard against the scan silently finding nothing (moved headers, broken parser).
    assert!(
        checked > 400,
        "only {checked} flag values found in the headers"
    );
}

#[test]
fn signal_names_match_the_headers() {
    let Some(text) = read_header("/usr/include/x86_64-linux-gnu/asm/signal.h") else {
        return;
    };
    let mut seen = HashSet::new();
    for line in text.lines() {
        let Some((name, value)) = generate::split_define(line) else {
            continue;
        };
        let Ok(n) = value.parse::<i32>() else {
            continue;
        };
        // Only the first name of a number (SIGABRT, not SIGIOT) and only 1..=31.
        if name.starts_with("SIG") && (1..=31).contains(&n) && seen.insert(n) {
            assert_eq!(signal_name(n), Some(name), "signal {n}");
        }
    }
    assert_eq!(seen.len(), 31);
}
