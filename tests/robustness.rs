//! Hostile input to the sentry: random syscalls with hostile arguments
//! (bad pointers, huge sizes, the stub's own page, garbage flags) from many
//! processes. The sentry must answer every call and keep running; a child
//! may kill itself (munmap its own code, say) but never the sandbox.

mod common;

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
