//! Networking as applications use it: real programs (python3's
//! http.server and urllib, a selectors-based TCP echo server under load,
//! UDP round trips) run natively and under `rvisor do`, where every socket
//! lives on the sandbox's own loopback; the outputs must match. The
//! syscall-level checks are the differential programs in
//! `tests/programs/net/`.

mod common;

use common::*;

fn same_as_native(args: &[&str]) {
    let native = run_native(args[0], &args[1..]);
    assert_success("native run", &native);
    let sandboxed = run_do_timeout(args, long_timeout());
    if let Err(msg) = check_same_output(&native, &sandboxed) {
        panic!("`{}` natively vs under `rvisor do`:\n{msg}", args.join(" "));
    }
}

fn script(name: &str) -> String {
    let p = repo_root().join("tests/scripts").join(name);
    p.to_str().expect("utf-8 path").to_string()
}

/// http.server serving a directory listing to urllib, 21 requests, by
/// address and by the name localhost.
#[test]
fn python_http_server_over_loopback() {
    same_as_native(&["/usr/bin/python3", &script("http_roundtrip.py")]);
}

/// 16 clients × 200 echoed messages through an epoll server, and 300 UDP
/// round trips over ::1; every byte checked.
#[test]
fn tcp_echo_under_load_and_udp_round_trips() {
    same_as_native(&["/usr/bin/python3", &script("tcp_echo_load.py")]);
}
