//! Each stub process's control thread, on the fast syscall path.
//!
//! A seccomp filter is inherited by every thread and process its thread
//! creates, and a thread can have only one filter with a listener in its
//! chain (the kernel answers EBUSY to a second). So the threads that run
//! application code, which carry the fast path's filter, must never be the
//! ones that fork the stub or add threads to it: a control thread without
//! the filter does. It is a host thread of the stub process parked in the
//! stub's `pause()` loop, untraced while idle (so it dies and is reaped with
//! its process like any thread); the sentry thread that needs a fork or a
//! thread attaches to it, injects the call and detaches. Forks and clones
//! are rare next to system calls, so the attach costs little.

use std::sync::Mutex;

use nix::errno::Errno;

use crate::platform::{PlatformError, Stub};

/// One stub process's control thread.
pub struct StubControl {
    /// Its host tid; the lock lets one sentry thread attach at a time.
    tid: Mutex<i32>,
}

impl StubControl {
    /// Adds a control thread to the process of `stub` (whose thread must not
    /// carry the filter yet).
    pub fn create(stub: &mut Stub) -> Result<StubControl, PlatformError> {
        let tid = stub.inject_clone_thread()?;
        if tid < 0 {
            return Err(PlatformError::Spawn(Errno::from_raw(-tid as i32)));
        }
        Ok(StubControl {
            tid: Mutex::new(tid as i32),
        })
    }

    /// Attaches to the control thread, runs `inject` on it, and lets it go
    /// back to its `pause()` loop.
    fn with_control(
        &self,
        inject: impl FnOnce(&mut Stub) -> Result<i64, PlatformError>,
    ) -> Result<i64, PlatformError> {
        let tid = self
            .tid
            .lock()
            .map_err(|_| PlatformError::Spawn(Errno::EIO))?;
        let mut control = Stub::attach_forked(*tid)?;
        let result = inject(&mut control);
        // The injections end at the `int3` in front of the pause loop.
        control.detach();
        result
    }

    /// Forks the stub process from the control thread: the child's only
    /// thread (a copy of the control thread) carries no filter.
    pub fn fork(&self) -> Result<i64, PlatformError> {
        self.with_control(Stub::inject_fork)
    }

    /// Adds a thread, without the filter, to the stub process.
    pub fn clone_thread(&self) -> Result<i64, PlatformError> {
        self.with_control(Stub::inject_clone_thread)
    }
}
