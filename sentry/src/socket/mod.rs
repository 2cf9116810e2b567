//! Sockets (gVisor's `pkg/sentry/socket`): the unix domain (`unix.rs`),
//! internet sockets on the sandbox's own loopback (`inet.rs`), and host
//! internet sockets for `--network host` (`hostinet.rs`).

use std::sync::Arc;

pub mod hostinet;
pub mod inet;
pub mod unix;

/// An application's internet socket, whichever stack it lives on.
pub enum InetSock {
    /// The sandbox's own (`--network sandbox` and `none`).
    Local(Arc<inet::InetSocket>),
    /// A host socket (`--network host`).
    Host(Arc<hostinet::HostInetSocket>),
}
