//! /dev: the sandbox's own device nodes. Nothing here touches a host device;
//! random bytes come from the sentry's getrandom.

use std::any::Any;
use std::sync::Arc;

use nix::errno::Errno;

use super::overlay::OverlayFs;
use super::simple::{next_ino, synthetic_stat, StaticDir, Symlink};
use crate::vfs::{FileOps, FileStat, FileType, Inode, VfsResult};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DevKind {
    Null,
    Zero,
    Full,
    Random,
    URandom,
    /// /dev/tty: the caller's controlling terminal (a devpts replica).
    Tty,
}

impl DevKind {
    fn rdev(self) -> u64 {
        let (maj, min) = match self {
            DevKind::Null => (1, 3),
            DevKind::Zero => (1, 5),
            DevKind::Full => (1, 7),
            DevKind::Random => (1, 8),
            DevKind::URandom => (1, 9),
            DevKind::Tty => (5, 0),
        };
        libc::makedev(maj, min)
    }
}

pub struct DevNode {
    kind: DevKind,
    ino: u64,
}

impl DevNode {
    pub fn new(kind: DevKind) -> Arc<DevNode> {
        Arc::new(DevNode {
            kind,
            ino: next_ino(),
        })
    }

    fn dev_stat(&self) -> FileStat {
        let mut st = synthetic_stat(self.ino, libc::S_IFCHR | 0o666, 0);
        st.rdev = self.kind.rdev();
        st
    }
}

impl Inode for DevNode {
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.dev_stat())
    }
    fn file_type(&self) -> FileType {
        FileType::CharDev
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn open(&self, _flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        if self.kind == DevKind::Tty {
            return super::devpts::open_controlling(_flags);
        }
        Ok(Arc::new(DevFile {
            kind: self.kind,
            stat: self.dev_stat(),
        }))
    }
    fn set_attr(&self, _attr: &crate::vfs::SetAttr) -> VfsResult<()> {
        Ok(())
    }
}

pub struct DevFile {
    kind: DevKind,
    stat: FileStat,
}

impl FileOps for DevFile {
    fn seekable(&self) -> bool {
        // Offsets exist but mean nothing, as on Linux.
        true
    }
    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        match self.kind {
            DevKind::Null => Ok(0),
            DevKind::Zero | DevKind::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            DevKind::Random | DevKind::URandom => {
                fill_random(buf)?;
                Ok(buf.len())
            }
            DevKind::Tty => Err(Errno::EIO),
        }
    }
    fn write_at(&self, buf: &[u8], _off: u64) -> VfsResult<usize> {
        match self.kind {
            DevKind::Full => Err(Errno::ENOSPC),
            _ => Ok(buf.len()),
        }
    }
    fn append(&self, buf: &[u8]) -> VfsResult<(usize, u64)> {
        Ok((self.write_at(buf, 0)?, 0))
    }
    fn size(&self) -> VfsResult<u64> {
        Ok(0)
    }
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.stat.clone())
    }
}

/// Fills `buf` from the host's CSPRNG (the sentry's own getrandom).
pub fn fill_random(buf: &mut [u8]) -> VfsResult<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: getrandom writes at most len bytes into our buffer.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

/// Builds the /dev tree.
pub fn new_devfs() -> Arc<dyn Inode> {
    let shm: Arc<dyn Inode> = OverlayFs::tmpfs(0o1777);
    Arc::new(
        StaticDir::new(0o755)
            .with("null", DevNode::new(DevKind::Null))
            .with("zero", DevNode::new(DevKind::Zero))
            .with("full", DevNode::new(DevKind::Full))
            .with("random", DevNode::new(DevKind::Random))
            .with("urandom", DevNode::new(DevKind::URandom))
            .with("tty", DevNode::new(DevKind::Tty))
            .with("fd", Arc::new(Symlink::fixed("/proc/self/fd")))
            .with("stdin", Arc::new(Symlink::fixed("/proc/self/fd/0")))
            .with("stdout", Arc::new(Symlink::fixed("/proc/self/fd/1")))
            .with("stderr", Arc::new(Symlink::fixed("/proc/self/fd/2")))
            .with("shm", shm)
            .with("ptmx", super::devpts::PtmxNode::new())
            .with("pts", super::devpts::PtsDir::new()),
    )
}

/// Opens a device node made with mknod: the sandbox's device of that
/// number (1,3 is /dev/null, ...), or ENXIO. Nothing reaches a host device.
pub fn open_by_number(rdev: u64, flags: i32) -> VfsResult<Arc<dyn FileOps>> {
    let kind = [
        DevKind::Null,
        DevKind::Zero,
        DevKind::Full,
        DevKind::Random,
        DevKind::URandom,
        DevKind::Tty,
    ]
    .into_iter()
    .find(|k| k.rdev() == rdev);
    match kind {
        Some(k) => DevNode::new(k).open(flags),
        None if rdev == libc::makedev(5, 2) => super::devpts::PtyMaster::open(flags),
        None => Err(Errno::ENXIO),
    }
}
