//! Sockets (gVisor's `pkg/sentry/socket`): the unix domain, and internet
//! sockets on the sandbox's loopback.

pub mod inet;
pub mod unix;
