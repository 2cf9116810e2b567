//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::fd::FromRawFd;

/// A directory under /tmp removed on drop (no tempfile dependency).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "rvisor-gofer-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens `path` with `flags`, as an owned fd.
pub fn open_owned(path: &Path, flags: OFlag) -> OwnedFd {
    let raw = nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
    // SAFETY: open just returned this fd and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

pub fn o_path_dir(path: &Path) -> OwnedFd {
    open_owned(path, OFlag::O_PATH | OFlag::O_DIRECTORY)
}

pub fn proc_self_fd() -> OwnedFd {
    o_path_dir(Path::new("/proc/self/fd"))
}
