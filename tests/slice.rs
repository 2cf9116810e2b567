//! Acceptance tests for the first vertical slice of rvisor: each test checks
//! what a user would check by hand.

mod common;

use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

// ---------------------------------------------------------------------------
// OCI bundles
// ---------------------------------------------------------------------------

/// `rvisor run` of a busybox bundle prints exactly what `runc run` prints for
/// the same bundle, and exits with the container's status.
#[test]
fn busybox_bundle_matches_runc() {
    let rootfs = busybox_rootfs();
    let args = ["sh", "-c", "echo hello | cat; ls /bin | wc -l; exit 7"];

    // What the answer must be, computed from the fixture itself.
    let entries = std::fs::read_dir(rootfs.join("bin")).unwrap().count();
    let expected = format!("hello\n{entries}\n");

    let reference = run_runc_bundle(&rootfs, &args, &[])
        .expect("runc is required for this test: run scripts/setup.sh");
    assert_eq!(
        stdout_str(&reference),
        expected,
        "runc itself did not print the expected output:\n{}",
        describe_output("runc run", &reference)
    );
    assert_eq!(
        reference.status.code(),
        Some(7),
        "{}",
        describe_output("runc run", &reference)
    );

    let out = run_bundle(&rootfs, &args, &[]);
    assert_same_output_named("runc", &reference, "rvisor", &out);
    assert_eq!(out.status.code(), Some(7));
}

/// A Debian bundle runs a dynamically linked python3 that imports modules.
#[test]
fn debian_bundle_python_hashlib() {
    let rootfs = debian_rootfs();
    let script = "import json, hashlib; print(hashlib.sha256(b'x').hexdigest())";
    let out = run_bundle_timeout(
        &rootfs,
        &["/usr/bin/python3", "-c", script],
        &[],
        long_timeout(),
    );
    assert_success("rvisor run (debian python3)", &out);
    assert_eq!(
        stdout_str(&out),
        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n",
        "{}",
        describe_output("rvisor run (debian python3)", &out)
    );
}

// ---------------------------------------------------------------------------
// `rvisor do` over the host's root filesystem
// ---------------------------------------------------------------------------

/// Run `args` natively and under `rvisor do`; same stdout and status.
fn same_as_native(args: &[&str]) -> std::process::Output {
    let native = run_native(args[0], &args[1..]);
    let sandboxed = run_do_timeout(args, long_timeout());
    if let Err(msg) = check_same_output(&native, &sandboxed) {
        panic!("`{}` natively vs under `rvisor do`:\n{msg}", args.join(" "));
    }
    sandboxed
}

/// A walk of a tree with more nodes than the gofer keeps fds open for (a
/// quarter of its fd limit, 2048 here): every node is stat'ed and read,
/// then walked again, so closed nodes are reopened. `du`, `find` and the
/// contents agree with native. (Before, the gofer kept an fd per node and
/// `du -s /usr/lib` failed with EMFILE.)
#[test]
fn do_walks_a_tree_larger_than_the_gofers_fd_budget() {
    let tree = TempDir::new("big-tree");
    for d in 0..60 {
        let dir = tree.path().join(format!("d{d:02}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f:03}")), format!("{d} {f}\n")).expect("write");
        }
    }
    let root = tree.path().to_str().expect("utf-8 path");
    let script = format!(
        "cd {root} && find . | wc -l && du -s --apparent-size . && \
         find . -type f | sort | xargs cat | md5sum && \
         find . -type f | sort | xargs cat | md5sum && ls d59 | tail -1"
    );
    let native = run_native("/bin/sh", &["-c", &script]);
    let sandboxed = run_with_timeout(
        std::process::Command::new("prlimit")
            .arg("--nofile=2048")
            .arg(rvisor())
            .args(["do", "/bin/sh", "-c", &script]),
        long_timeout(),
    );
    if let Err(msg) = check_same_output(&native, &sandboxed) {
        panic!("a walk of 6061 nodes, natively vs under `rvisor do`:\n{msg}");
    }
    assert!(
        stdout_str(&sandboxed).starts_with("6061\n"),
        "{}",
        stdout_str(&sandboxed)
    );
}

#[test]
fn do_ls_la_usr_matches_host() {
    let out = same_as_native(&["/bin/ls", "-la", "/usr"]);
    assert!(stdout_str(&out).contains(" bin\n"), "{}", stdout_str(&out));
}

#[test]
fn do_sh_arithmetic() {
    let out = run_do(&["sh", "-c", "echo $((6*7))"]);
    assert_success("rvisor do sh -c 'echo $((6*7))'", &out);
    assert_eq!(
        stdout_str(&out),
        "42\n",
        "{}",
        describe_output("rvisor do sh", &out)
    );
}

#[test]
fn do_bash_loop_and_arithmetic() {
    let out = same_as_native(&[
        "bash",
        "-c",
        "for i in 1 2 3 4 5; do echo \"square $i = $((i*i))\"; done; \
         s=0; for ((j=1; j<=100; j++)); do s=$((s+j)); done; echo \"sum=$s\"; \
         f() { local n=$1; [ $n -le 1 ] && echo 1 && return; echo $(( n * $(f $((n-1))) )); }; \
         echo \"fact=$(f 10)\"",
    ]);
    assert!(stdout_str(&out).contains("sum=5050\nfact=3628800\n"));
}

#[test]
fn do_cat_file() {
    let out = same_as_native(&["cat", "/etc/os-release"]);
    assert!(stdout_str(&out).contains("ID=debian"));
}

#[test]
fn do_grep_count() {
    let out = same_as_native(&["grep", "-c", "root", "/etc/passwd"]);
    assert!(stdout_str(&out).trim().parse::<u32>().unwrap_or(0) >= 1);
}

#[test]
fn do_sed_substitution() {
    same_as_native(&["sed", "-e", "s/^\\([^:]*\\):.*/user \\1/", "/etc/passwd"]);
    let out = same_as_native(&["sh", "-c", "echo 'hello world' | sed 's/world/rvisor/'"]);
    assert_eq!(stdout_str(&out), "hello rvisor\n");
}

#[test]
fn do_awk_sum() {
    same_as_native(&[
        "awk",
        "-F:",
        "{ s += $3 } END { print NR, s }",
        "/etc/passwd",
    ]);
    let out = same_as_native(&["sh", "-c", "seq 1 100 | awk '{ s += $1 } END { print s }'"]);
    assert_eq!(stdout_str(&out), "5050\n");
}

#[test]
fn do_sort_pipe_and_here_string() {
    let out = same_as_native(&["sh", "-c", "printf 'pear\\napple\\nfig\\n' | sort"]);
    assert_eq!(stdout_str(&out), "apple\nfig\npear\n");
    let out = same_as_native(&["bash", "-c", "sort -r <<< $'b\\nc\\na'"]);
    assert_eq!(stdout_str(&out), "c\nb\na\n");
}

#[test]
fn do_sha256sum() {
    let out = same_as_native(&["sha256sum", "/etc/os-release"]);
    assert!(stdout_str(&out).ends_with("  /etc/os-release\n"));
}

/// `rvisor do` runs over the host's own root, which the host goes on
/// writing: a file the host appends to while a program in the sandbox
/// watches it shows its new size and bytes, as it would natively (tail -f
/// on a log). The sandbox caches names and attributes of an image's rootfs,
/// but not the sizes of a live tree's files.
#[test]
fn do_sees_a_file_the_host_appends_to() {
    use std::io::{BufRead, BufReader, Write};
    let dir = std::env::temp_dir().join(unique_name("rvisor-do-append"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    std::fs::write(&log, "one\n").unwrap();
    let script = format!(
        "stat -c %s {p}; read go; stat -c %s {p}; cat {p}",
        p = log.display()
    );
    let mut child = std::process::Command::new(rvisor())
        .args(["do", "sh", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("rvisor do");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // The sandbox has seen the file: now the host appends to it.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"two\n")
        .unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "rvisor do: {status}");
    assert_eq!(first, "4\n");
    assert_eq!(rest, "8\none\ntwo\n");
}

#[test]
fn do_find_sorted() {
    let out = same_as_native(&["sh", "-c", "find /usr/share/doc/bash -maxdepth 1 | sort"]);
    assert!(stdout_str(&out).starts_with("/usr/share/doc/bash\n"));
}

#[test]
fn do_python3() {
    // The Debian interpreter, not whatever `python3` is first on PATH.
    let out = same_as_native(&["/usr/bin/python3", "-c", "print(sum(range(10)))"]);
    assert_eq!(stdout_str(&out), "45\n");
}

/// Writes go to the sandbox's in-memory overlay and never reach the host.
#[test]
fn do_writes_stay_in_overlay() {
    let probe = Path::new("/tmp/rvisor-overlay-probe");
    let _ = std::fs::remove_file(probe);
    let out = run_do(&[
        "sh",
        "-c",
        "echo x > /tmp/rvisor-overlay-probe; cat /tmp/rvisor-overlay-probe",
    ]);
    let leaked = probe.exists();
    let _ = std::fs::remove_file(probe);
    assert_success("rvisor do (overlay write)", &out);
    assert_eq!(
        stdout_str(&out),
        "x\n",
        "{}",
        describe_output("rvisor do (overlay write)", &out)
    );
    assert!(
        !leaked,
        "/tmp/rvisor-overlay-probe was created on the host: writes escaped the sandbox"
    );
}

// ---------------------------------------------------------------------------
// Exit status propagation
// ---------------------------------------------------------------------------

#[test]
fn do_exit_status_propagates() {
    let out = run_do(&["sh", "-c", "exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        describe_output("rvisor do sh -c 'exit 3'", &out)
    );
}

/// `rvisor do CMD` runs CMD as pid 1 of the sandbox's pid namespace, and
/// pid 1 ignores signals whose action is the default, even those it sends
/// itself (so `sh -c 'kill -TERM $$'` survives there).  A synchronous fault
/// is forced even on pid 1, as on Linux: a program writing through a NULL
/// pointer dies of SIGSEGV, and rvisor reports that death as its own.
#[test]
fn do_killed_by_signal_propagates() {
    let prog = compile_c("process/segv.c");
    let native = run_native(&prog, &[] as &[&str]);
    assert_eq!(
        native.status.signal(),
        Some(libc::SIGSEGV),
        "native reference (test program bug?):\n{}",
        describe_output("native segv", &native)
    );
    let out = run_do(&[&prog]);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "rvisor should report the command killed by SIGSEGV (WIFSIGNALED, WTERMSIG 11):\n{}",
        describe_output("rvisor do segv", &out)
    );
    assert_same_output_named("native", &native, "rvisor do", &out);
}

/// pid 1 of a pid namespace survives `kill -TERM $$` (SIGTERM's action is the
/// default, so the kernel drops it; kill still returns 0).  The reference is
/// the same script as pid 1 of a fresh pid namespace (util-linux `unshare`,
/// needs root).
#[test]
fn do_pid1_ignores_default_signals() {
    let script = "kill -TERM $$; echo survived $?";
    let unshare = which("unshare").expect("unshare (util-linux) is required for this test");
    let native = run_native(
        &unshare,
        &["--pid", "--fork", "--mount-proc", "sh", "-c", script],
    );
    assert_eq!(
        stdout_str(&native),
        "survived 0\n",
        "the native reference (sh as pid 1 under `unshare --pid --fork --mount-proc`, needs root) \
         did not survive:\n{}",
        describe_output("unshare --pid --fork --mount-proc sh -c ...", &native)
    );
    assert_eq!(
        native.status.code(),
        Some(0),
        "{}",
        describe_output("unshare reference", &native)
    );

    let out = run_do(&["sh", "-c", script]);
    assert_same_output_named("pid 1 in a new pid namespace", &native, "rvisor do", &out);
}

/// A child that is not pid 1 is killed by a signal it sends itself, and its
/// parent sees the usual 128+15.
#[test]
fn do_child_killed_by_signal() {
    let out = same_as_native(&["sh", "-c", "sh -c \"kill -TERM \\$\\$\"; echo $?"]);
    assert_eq!(
        stdout_str(&out),
        "143\n",
        "{}",
        describe_output("rvisor do (child killed)", &out)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        describe_output("rvisor do (child killed)", &out)
    );
}

// ---------------------------------------------------------------------------
// Observability: --strace, --debug-log, `rvisor syscalls`
// ---------------------------------------------------------------------------

#[test]
fn strace_logs_decoded_syscalls() {
    let out = run_rvisor(&["--strace", "do", "true"]);
    assert_success("rvisor --strace do true", &out);
    let err = stderr_str(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("execve(") || l.contains("brk(")),
        "no decoded execve(/brk( line in --strace output:\n{}",
        tail(&out.stderr, 6000)
    );
    assert!(
        lines.iter().any(|l| l.contains("exit_group(0)")),
        "no exit_group(0) line in --strace output:\n{}",
        tail(&out.stderr, 6000)
    );
    // A decoded result: some line of the form `name(...) = value`.
    assert!(
        lines.iter().any(|l| l.contains('(') && l.contains(") = ")),
        "no `call(args) = result` line in --strace output:\n{}",
        tail(&out.stderr, 6000)
    );
}

/// Read every regular file under `dir` (recursively) as text lines.
fn log_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => {
                    if let Ok(bytes) = std::fs::read(&p) {
                        lines.extend(
                            String::from_utf8_lossy(&bytes)
                                .lines()
                                .map(|l| l.to_string()),
                        );
                    }
                }
                _ => {}
            }
        }
    }
    lines
}

/// Unimplemented syscalls fail with ENOSYS, the program keeps running, and
/// the debug log names each unimplemented syscall once (on first use).
#[test]
fn unimplemented_syscalls_enosys_and_logged_once() {
    let prog = compile_c("unimplemented/enosys.c");
    let logs = TempDir::new("rvisor-debug-log");
    let out = run_rvisor(&[
        "--debug-log".as_ref(),
        logs.path().as_os_str(),
        "do".as_ref(),
        prog.as_os_str(),
    ]);
    let label = "rvisor --debug-log DIR do enosys";
    assert_success(label, &out);
    assert_eq!(
        stdout_str(&out),
        "io_uring_setup: ENOSYS\n\
         io_uring_setup again: ENOSYS\n\
         add_key: ENOSYS\n\
         syscall 1000: ENOSYS\n\
         file round trip: ok\n\
         still alive\n",
        "{}",
        describe_output(label, &out)
    );

    let lines = log_lines(logs.path());
    let naming: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("io_uring_setup"))
        .collect();
    assert!(
        !naming.is_empty(),
        "the debug log in {} has no line naming io_uring_setup ({} lines in total)",
        logs.path().display(),
        lines.len()
    );
    // If the log also mentions the syscall in other lines, only count the
    // ones that report it as unimplemented.
    let flagged: Vec<&&String> = naming
        .iter()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("unimplemented")
                || l.contains("not implemented")
                || l.contains("unsupported")
                || l.contains("enosys")
        })
        .collect();
    let count = if flagged.is_empty() {
        naming.len()
    } else {
        flagged.len()
    };
    assert_eq!(
        count,
        1,
        "io_uring_setup was called twice but must be reported once; log lines:\n{}",
        naming
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        lines.iter().any(|l| l.contains("add_key")),
        "the debug log does not name add_key"
    );
}

#[test]
fn syscalls_table_lists_support_levels() {
    let out = run_rvisor(&["syscalls"]);
    assert_success("rvisor syscalls", &out);
    let text = stdout_str(&out);

    // The level of a syscall: the row's text without its name and numbers.
    let level = |name: &str| -> Option<String> {
        text.lines().find_map(|l| {
            let toks: Vec<&str> = l
                .split(|c: char| c.is_whitespace() || c == '|' || c == ',' || c == ':')
                .filter(|t| !t.is_empty())
                .collect();
            if !toks.contains(&name) {
                return None;
            }
            let rest: Vec<&str> = toks
                .into_iter()
                .filter(|t| *t != name && !t.chars().all(|c| c.is_ascii_digit()))
                .collect();
            Some(rest.join(" "))
        })
    };
    let read =
        level("read").unwrap_or_else(|| panic!("no `read` row in `rvisor syscalls`:\n{text}"));
    let io_uring = level("io_uring_setup")
        .unwrap_or_else(|| panic!("no `io_uring_setup` row in `rvisor syscalls`:\n{text}"));
    assert!(
        !read.is_empty(),
        "the `read` row has no support level:\n{text}"
    );
    assert!(
        !io_uring.is_empty(),
        "the `io_uring_setup` row has no support level:\n{text}"
    );
    assert_ne!(
        read, io_uring,
        "`read` (implemented) and `io_uring_setup` (not implemented) show the same support level"
    );
}

/// Python's multiprocessing, threading, subprocess and signals in the Debian
/// bundle give the same output as under runc.
#[test]
fn debian_bundle_python_processes_threads_signals() {
    let rootfs = debian_rootfs();
    let script = std::fs::read_to_string(repo_root().join("tests/scripts/python_concurrency.py"))
        .expect("read the script");
    let args = ["/usr/bin/python3", "-c", script.as_str()];
    let out = run_bundle_timeout(&rootfs, &args, &[], long_timeout());
    assert_success("rvisor run (python concurrency)", &out);
    match run_runc_bundle(&rootfs, &args, &[]) {
        Some(reference) => assert_same_output_named("runc", &reference, "rvisor", &out),
        None => assert!(stdout_str(&out).contains("shared counter: 600 [0, 0, 0]")),
    }
}

/// gcc and `make -j2` build a multi-file C program inside the Debian
/// bundle, and the program runs, as under runc.
#[test]
fn debian_bundle_make_builds_c_program() {
    let rootfs = debian_rootfs();
    let script = std::fs::read_to_string(repo_root().join("tests/scripts/build_c_project.py"))
        .expect("read the script");
    let args = ["/usr/bin/python3", "-c", script.as_str()];
    let env = ["PATH=/usr/local/bin:/usr/bin:/bin"];
    let out = run_bundle_timeout(&rootfs, &args, &env, long_timeout());
    assert_success("rvisor run (make -j2)", &out);
    assert!(
        stdout_str(&out).contains("BUILT INSIDE THE SANDBOX: mean 5.00 stddev 2.00"),
        "{}",
        describe_output("rvisor run (make -j2)", &out)
    );
    if let Some(reference) = run_runc_bundle(&rootfs, &args, &env) {
        assert_same_output_named("runc", &reference, "rvisor", &out);
    }
}

/// bash with job control in a pseudo-terminal the sandbox implements
/// (/dev/ptmx, /dev/pts): background jobs, `jobs`, `kill %1`, and Ctrl-C
/// and Ctrl-Z typed at the terminal reaching the foreground job. The
/// script reports what a user sees; it must match the native run.
#[test]
fn do_bash_job_control_in_pty() {
    let script = repo_root().join("tests/scripts/bash_job_control.py");
    let script = script.to_str().expect("utf-8 path");
    same_as_native(&["/usr/bin/python3", script]);
}

/// The filesystem workloads of a real container in the Debian bundle: tar
/// round trip, git, sqlite3 in WAL mode, compileall, `find / -xdev`; the
/// same output as under runc.
#[test]
fn debian_bundle_filesystem_workloads() {
    let rootfs = debian_rootfs();
    let script = std::fs::read_to_string(repo_root().join("tests/scripts/fs_workloads.sh"))
        .expect("read the script");
    let args = ["/bin/bash", "-c", script.as_str()];
    let env = ["PATH=/usr/local/bin:/usr/bin:/bin"];
    let out = run_bundle_timeout(&rootfs, &args, &env, long_timeout());
    assert_success("rvisor run (filesystem workloads)", &out);
    assert!(
        stdout_str(&out).contains("git fsck ok") && stdout_str(&out).contains("10000|50005000"),
        "{}",
        describe_output("rvisor run (filesystem workloads)", &out)
    );
    if let Some(reference) = run_runc_bundle(&rootfs, &args, &env) {
        assert_same_output_named("runc", &reference, "rvisor", &out);
    }
}

/// execve with large argument lists (what `find -exec {} +` and xargs
/// build): 350 KB of arguments work, a string over 128 KiB and a list over
/// the limit fail with E2BIG, as natively.
#[test]
fn do_large_argument_lists() {
    let out = same_as_native(&[
        "/bin/bash",
        "-c",
        "/bin/echo $(seq 1 60000) | wc -c; \
         x=$(head -c 131071 /dev/zero | tr '\\0' a); /bin/echo \"$x\" | wc -c; \
         y=$(head -c 131072 /dev/zero | tr '\\0' a); /bin/echo \"$y\" 2>&1 | sed 's/.*: //'; \
         /bin/echo $(seq 1 400000) 2>&1 | sed 's/.*: //'",
    ]);
    assert!(stdout_str(&out).contains("348894"), "{}", stdout_str(&out));
}
