//! Filesystem implementations behind the VFS (gVisor's `pkg/sentry/fsimpl`).

pub mod cgroupfs;
pub mod dev;
pub mod devpts;
pub mod dir_watch;
pub mod directfs;
pub mod file_data;
pub mod gofer;
pub mod host;
pub mod overlay;
pub mod pipe;
pub mod proc;
pub mod readonly;
pub mod ready;
pub mod simple;
