//! Sockets (gVisor's `pkg/sentry/socket`). Only the unix domain so far;
//! network families come with the networking work.

pub mod unix;
