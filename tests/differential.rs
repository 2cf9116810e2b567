//! Differential tests: each C program under tests/programs/<family>/ is run
//! natively and under `rvisor do`; stdout and exit status must be identical
//! (a program killed by a signal, like process/segv.c, must be killed by the
//! same signal under the sandbox).
//! Each program is also built with -static and run the same way (exercising
//! the ELF loader's static path, no dynamic loader involved).
//!
//! The runs of one program happen sequentially inside one test, since a
//! program may use a fixed scratch path under /tmp.

mod common;

use common::*;
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Programs use fixed scratch paths under /tmp: two runs of the same program
/// must never overlap (tests run in parallel threads).
fn program_lock(prog: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap();
    map.entry(prog.to_string()).or_default().clone()
}

fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    // A panicking holder poisons the mutex; the scratch files are still fine.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Directories whose programs are not differential (run by other tests).
/// (`netns` programs are compared with a native run in a network namespace
/// by tests/net.rs.)
const NOT_DIFFERENTIAL: &[&str] = &["unimplemented", "robustness", "netns"];

fn sanity_check_native(prog: &str, label: &str, out: &Output) {
    let text = stdout_str(out);
    if text.contains("FATAL") || text.is_empty() {
        panic!(
            "the native run of {prog} ({label}) is broken — fix the test program or the \
             environment before blaming rvisor:\n{}",
            describe_output(label, out)
        );
    }
}

fn differential(prog: &str) {
    let m = program_lock(prog);
    let _guard = lock(&m);
    let dynamic = compile_c(prog);
    let static_bin = compile_c_static(prog);

    // The native reference, and a check that the static build agrees with it.
    let native = run_native(&dynamic, &[] as &[&str]);
    sanity_check_native(prog, "native dynamic", &native);
    check_native_end(prog, "native dynamic", &native);
    let native_static = run_native(&static_bin, &[] as &[&str]);
    sanity_check_native(prog, "native static", &native_static);
    if let Err(msg) = check_same_output(&native, &native_static) {
        panic!("{prog}: native dynamic and static builds disagree (test program bug):\n{msg}");
    }

    let mut failures = Vec::new();
    // Both builds on the default platform (ptrace stops); the dynamic one
    // on the experimental notification path too.
    let mut runs = vec![
        ("dynamic", &dynamic, "--platform=ptrace"),
        ("static", &static_bin, "--platform=ptrace"),
        ("dynamic", &dynamic, "--platform=notif"),
        ("dynamic", &dynamic, "--platform=systrap"),
        ("static", &static_bin, "--platform=systrap"),
        // Without mirrored memory (sentry/src/mm/mirror.rs), the way out.
        ("dynamic, RVISOR_MIRROR=0", &dynamic, "--platform=systrap"),
    ];
    // Network programs also run on host sockets (`--network host` in the
    // host's namespace), where the sentry translates every call.
    if prog.starts_with("net/") {
        runs.push(("dynamic", &dynamic, "--network=host"));
    }
    for (label, bin, platform) in runs {
        let mut cmd = Command::new(rvisor());
        cmd.args([platform.as_ref(), "do".as_ref(), bin.as_os_str()]);
        if label.contains("RVISOR_MIRROR=0") {
            cmd.env("RVISOR_MIRROR", "0");
        }
        let sandboxed = run_with_timeout(&mut cmd, default_timeout());
        if let Err(msg) = check_same_output(&native, &sandboxed) {
            failures.push(format!(
                "--- {prog} ({label} build, {platform}) under `rvisor do` ---\n{msg}"
            ));
        }
    }
    if !failures.is_empty() {
        panic!(
            "{prog}: sandboxed output differs from native\n{}",
            failures.join("\n")
        );
    }
}

macro_rules! differential_tests {
    ($($(#[$attr:meta])* $name:ident => $prog:expr,)*) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                differential($prog);
            }
        )*
        /// Every differential program (one test each, ignored ones included).
        const TESTED: &[&str] = &[$($prog),*];
    };
}

differential_tests! {
    file_io => "file/io.c",
    file_stat => "file/stat.c",
    file_dir => "file/dir.c",
    file_pivot_root => "file/pivot_root.c",
    file_openat2 => "file/openat2.c",
    file_sync_tee => "file/sync_tee.c",
    file_tmpfile => "file/tmpfile.c",
    file_fd => "file/fd.c",
    file_errors => "file/errors.c",
    file_locks => "file/locks.c",
    file_fallocate => "file/fallocate.c",
    file_vectored => "file/vectored.c",
    file_transfer => "file/transfer.c",
    file_perms => "file/perms.c",
    file_inotify => "file/inotify.c",
    file_xattr => "file/xattr.c",
    file_attr_rules => "file/attr_rules.c",
    file_lock_rules => "file/lock_rules.c",
    file_io_rules => "file/io_rules.c",
    file_rename_exchange => "file/rename_exchange.c",
    file_create_race => "file/create_race.c",
    mm_brk => "mm/brk.c",
    mm_mmap => "mm/mmap.c",
    mm_mmap_file => "mm/mmap_file.c",
    mm_mmap_shared_file => "mm/mmap_shared_file.c",
    mm_file_bytes => "mm/file_bytes.c",
    mm_mlock => "mm/mlock.c",
    mm_proc_maps => "mm/proc_maps.c",
    mm_stack_limit => "mm/stack_limit.c",
    process_ids => "process/ids.c",
    process_wait => "process/wait.c",
    process_comm => "process/comm.c",
    process_signals => "process/signals.c",
    process_exit_group => "process/exit_group.c",
    process_segv => "process/segv.c",
    process_jobctl => "process/jobctl.c",
    process_caps => "process/caps.c",
    process_fork_signals => "process/fork_signals.c",
    process_spawn => "process/spawn.c",
    process_vfork => "process/vfork.c",
    process_proc_access => "process/proc_access.c",
    ipc_socketpair => "ipc/socketpair.c",
    ipc_sysv => "ipc/sysv.c",
    ipc_fifo => "ipc/fifo.c",
    ipc_unix_sockets => "ipc/unix_sockets.c",
    ipc_mqueue => "ipc/mqueue.c",
    net_tcp => "net/tcp.c",
    net_udp => "net/udp.c",
    net_icmp => "net/icmp.c",
    poll_wait => "poll/wait.c",
    signal_handlers => "signal/handlers.c",
    signal_async => "signal/async.c",
    signal_sigwait => "signal/sigwait.c",
    signal_signalfd => "signal/signalfd.c",
    signal_trap_signals => "signal/trap_signals.c",
    threads_pthreads => "threads/pthreads.c",
    threads_fp_inherit => "threads/fp_inherit.c",
    threads_futex_ops => "threads/futex_ops.c",
    threads_hot_syscalls => "threads/hot_syscalls.c",
    threads_read_sites => "threads/read_sites.c",
    time_clocks => "time/clocks.c",
    time_cputimers => "time/cputimers.c",
    time_posix_timers => "time/posix_timers.c",
    time_sleep_rem => "time/sleep_rem.c",
    misc_sysinfo => "misc/sysinfo.c",
    misc_sched => "misc/sched.c",
    misc_hints => "misc/hints.c",
    tty_pty => "tty/pty.c",
}

/// Every .c file under tests/programs/<family>/ has a differential test
/// (except the non-differential families).
#[test]
fn all_programs_have_a_test() {
    let mut on_disk = Vec::new();
    for family in std::fs::read_dir(programs_dir()).unwrap() {
        let family = family.unwrap();
        if !family.file_type().unwrap().is_dir() {
            continue;
        }
        let fname = family.file_name().to_string_lossy().into_owned();
        if NOT_DIFFERENTIAL.contains(&fname.as_str()) {
            continue;
        }
        for f in std::fs::read_dir(family.path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".c") {
                on_disk.push(format!("{fname}/{name}"));
            }
        }
    }
    on_disk.sort();
    let mut tested: Vec<String> = TESTED.iter().map(|s| s.to_string()).collect();
    tested.sort();
    assert_eq!(
        on_disk, tested,
        "a program in tests/programs has no differential test"
    );
}

/// How a program ends natively: `Ok(exit code)` or `Err(signal)`.
fn expected_native_end(prog: &str) -> Result<i32, i32> {
    match prog {
        "process/exit_group.c" => Ok(3),
        "process/segv.c" => Err(libc::SIGSEGV),
        _ => Ok(0),
    }
}

/// Panic unless a native run ended as [`expected_native_end`] says (so that a
/// sandboxed run cannot match a reference that is itself wrong, e.g. a
/// process/segv.c that did not fault).
fn check_native_end(prog: &str, label: &str, out: &Output) {
    let ended = match (out.status.code(), out.status.signal()) {
        (Some(code), _) => Ok(code),
        (None, Some(sig)) => Err(sig),
        (None, None) => panic!("{prog} ({label}): unknown exit status {:?}", out.status),
    };
    assert_eq!(
        ended,
        expected_native_end(prog),
        "{prog} ({label}) ended unexpectedly (Ok(exit code) / Err(signal)):\n{}",
        describe_output(label, out)
    );
}

/// The test programs themselves are known-good: each compiles (dynamic and
/// static) and runs natively without a setup failure, ending as expected.
/// This does not need rvisor, so it passes even while the sandbox is
/// incomplete (and it covers the programs of ignored tests too).
#[test]
fn programs_run_natively() {
    for prog in TESTED {
        let m = program_lock(prog);
        let _guard = lock(&m);
        let dynamic = compile_c(prog);
        let out = run_native(&dynamic, &[] as &[&str]);
        sanity_check_native(prog, "native dynamic", &out);
        check_native_end(prog, "native dynamic", &out);
    }
}
