//! Hostile input to the sentry: random syscalls with hostile arguments
//! (bad pointers, huge sizes, the stub's own page, garbage flags) from many
//! processes. The sentry must answer every call and keep running; a child
//! may kill itself (munmap its own code, say) but never the sandbox.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;

#[test]
fn random_syscalls_never_bring_the_sentry_down() {
    let prog = compile_c("robustness/syscall_fuzz.c");
    let logs = TempDir::new("fuzz-logs");
    for seed in ["7", "1234567"] {
        let out = run_rvisor_timeout(
            &[
                "--debug-log".as_ref(),
                logs.path().as_os_str(),
                "do".as_ref(),
                prog.as_os_str(),
                seed.as_ref(),
                "60".as_ref(),
                "2000".as_ref(),
            ],
            Duration::from_secs(240),
        );
        assert_success(&format!("syscall fuzz, seed {seed}"), &out);
        assert!(
            stdout_str(&out).starts_with("fuzz done: 60 children"),
            "{}",
            describe_output("fuzz", &out)
        );
    }
    for entry in std::fs::read_dir(logs.path()).expect("logs") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !text.contains("panicked"),
            "{} records a panic:\n{}",
            path.display(),
            text
        );
    }
}

/// Every platform, as the `--platform` flag.
const PLATFORMS: [&str; 3] = [
    "--platform=ptrace",
    "--platform=notif",
    "--platform=systrap",
];

/// `rvisor PLATFORM do PROG ARG`.
fn run_do_on(platform: &str, prog: &Path, arg: &Path, timeout: Duration) -> Output {
    run_rvisor_timeout(
        &[
            platform.as_ref(),
            "do".as_ref(),
            prog.as_os_str(),
            arg.as_os_str(),
        ],
        timeout,
    )
}

/// The escape attempts a trap-based platform invites (jumping into every
/// `syscall` instruction of the stub's code with crafted registers,
/// writing the memory the stub shares with the sentry, rewriting another
/// thread's trapped registers while the sentry reads them, sysenter and
/// int $0x80, unmapping or remapping the stub) all end in an error or a
/// signal for the process that tried, on every platform; the sandbox
/// goes on and nothing reaches the host.
#[test]
fn platform_escape_attempts_end_harmlessly() {
    let prog = compile_c("robustness/platform_escape.c");
    let scratch = TempDir::new("platform-escape");
    for platform in PLATFORMS {
        let out = run_do_on(platform, &prog, scratch.path(), Duration::from_secs(240));
        assert_success(&format!("platform escape ({platform})"), &out);
        assert_eq!(
            stdout_str(&out),
            "found the stub: 1\n\
             jumps to the stub's syscall instructions: 1, each ended: 1\n\
             write to the request page ended: 1\n\
             forged trap contexts ended: 1\n\
             racing trapped registers ended: 1\n\
             sysenter ended: 1\n\
             fast path entered with a bad site ended: 1\n\
             write to the site table ended: 1\n\
             gs on another slot ended: 1\n\
             racing the fast path's context ended: 1\n\
             munmap of the region fails: 1 (Invalid argument)\n\
             mprotect of the region fails: 1 (Invalid argument)\n\
             mremap of a slot fails: 1 (Invalid argument)\n\
             mmap over the region fails: 1 (Cannot allocate memory)\n\
             madvise of a slot fails: 1 (Invalid argument)\n\
             munmap of the site table fails: 1 (Invalid argument)\n\
             mprotect of the site table fails: 1 (Invalid argument)\n\
             mmap over the site table fails: 1 (Cannot allocate memory)\n\
             int $0x80 getpid fails: 1\n\
             still here: 1\nend\n",
            "{}",
            describe_output(platform, &out)
        );
        let leaked: Vec<_> = std::fs::read_dir(scratch.path())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            leaked.is_empty(),
            "{platform}: a mkdir through the stub reached the host: {leaked:?}"
        );
    }
}

/// Every sandbox puts its stub somewhere else (a random 64 KiB-aligned
/// address in [0x7e0000000000, 0x7ff000000000), as gVisor randomises
/// its stub), on every platform.
#[test]
fn the_stub_lies_at_a_random_address_per_sandbox() {
    let prog = compile_c("robustness/stub_where.c");
    for platform in PLATFORMS {
        let bases: Vec<u64> = (0..3)
            .map(|_| {
                let out = run_rvisor_timeout(
                    &[platform.as_ref(), "do".as_ref(), prog.as_os_str()],
                    Duration::from_secs(30),
                );
                assert_success(&format!("stub_where ({platform})"), &out);
                let text = stdout_str(&out);
                u64::from_str_radix(text.trim().trim_start_matches("0x"), 16)
                    .unwrap_or_else(|_| panic!("{platform}: not an address: {text:?}"))
            })
            .collect();
        for b in &bases {
            assert!(
                (0x7e00_0000_0000..0x7ff0_0000_0000).contains(b) && b % 0x1_0000 == 0,
                "{platform}: stub at {b:#x}"
            );
        }
        assert!(
            bases[0] != bases[1] || bases[1] != bases[2],
            "{platform}: three sandboxes put the stub at {bases:#x?}"
        );
    }
}

/// A hot `mov $SYS_getppid, %eax; syscall` is rewritten into a jump to
/// systrap's fast path (and only on systrap), its calls keep their results,
/// and the same code in a shared file mapping is never rewritten: neither
/// the mapping nor the file changes.
#[test]
fn hot_syscall_sites_are_patched_on_systrap_only() {
    let prog = compile_c("robustness/patched_site.c");
    let scratch = TempDir::new("patched-site");
    let code = scratch.path().join("code");
    for platform in PLATFORMS {
        let out = run_do_on(platform, &prog, &code, Duration::from_secs(60));
        assert_success(&format!("patched site ({platform})"), &out);
        let site = if platform == "--platform=systrap" {
            "site: ff 24 25"
        } else {
            "site: b8 6e 00 00 00 0f 05"
        };
        let text = stdout_str(&out);
        assert!(
            text.starts_with(site)
                && text.contains("calls agree: 1\n")
                && text.ends_with(
                    "shared site unchanged in memory: 1, in the file: 1, calls agree: 1\n"
                ),
            "{}",
            describe_output(platform, &out)
        );
    }
}

/// An application that jumps into the stub's own `syscall` instruction with
/// crafted registers gets its call emulated like any other, on both
/// platforms: getpid is the sandbox's, a mkdir lands in the sandbox's
/// overlay and never on the host, and unmapping the stub is refused.
#[test]
fn jumping_into_the_stub_gains_nothing() {
    let prog = compile_c("robustness/stub_jump.c");
    let scratch = TempDir::new("stub-jump");
    let marker = scratch.path().join("made-through-the-stub");
    for platform in PLATFORMS {
        let out = run_do_on(platform, &prog, &marker, Duration::from_secs(60));
        assert_success(&format!("stub jump ({platform})"), &out);
        assert_eq!(
            stdout_str(&out),
            "getpid through the stub matches getpid: 1\n\
             mkdirat through the stub: 0, visible inside: 1\n\
             munmap of the stub through the stub: -22\nend\n",
            "{}",
            describe_output(platform, &out)
        );
        assert!(
            !marker.exists(),
            "{platform}: the mkdir reached the host's {}",
            marker.display()
        );
    }
}
