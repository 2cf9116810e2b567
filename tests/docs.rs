//! The documentation must describe the code: docs/compatibility.md is the
//! output of `rvisor syscalls --markdown`, and README.md's commands exist.

use std::process::Command;

#[test]
fn compatibility_doc_matches_the_dispatch_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_rvisor"))
        .args(["syscalls", "--markdown"])
        .output()
        .expect("run rvisor");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/compatibility.md"
    ))
    .expect("read doc");
    assert!(
        generated == doc,
        "docs/compatibility.md is stale: regenerate it with `cargo run --release -- syscalls --markdown > docs/compatibility.md`"
    );
}

#[test]
fn help_lists_the_commands_the_readme_uses() {
    let out = Command::new(env!("CARGO_BIN_EXE_rvisor"))
        .arg("--help")
        .output()
        .expect("run rvisor");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "run",
        "do",
        "syscalls",
        "install",
        "--strace",
        "--debug-log",
    ] {
        assert!(help.contains(cmd), "--help does not mention {cmd}:\n{help}");
    }
}
