//! The sentry-owned file descriptor table of a process.

use std::collections::BTreeMap;
use std::sync::Arc;

use nix::errno::Errno;

use crate::vfs::OpenFile;

#[derive(Clone)]
pub struct FdEntry {
    pub file: Arc<OpenFile>,
    pub cloexec: bool,
}

#[derive(Clone, Default)]
pub struct FdTable {
    entries: BTreeMap<i32, FdEntry>,
}

impl FdTable {
    pub fn get(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        self.entries
            .get(&fd)
            .map(|e| e.file.clone())
            .ok_or(Errno::EBADF)
    }

    pub fn entry(&self, fd: i32) -> Result<&FdEntry, Errno> {
        self.entries.get(&fd).ok_or(Errno::EBADF)
    }

    pub fn set_cloexec(&mut self, fd: i32, cloexec: bool) -> Result<(), Errno> {
        self.entries.get_mut(&fd).ok_or(Errno::EBADF)?.cloexec = cloexec;
        Ok(())
    }

    /// Lowest free fd >= `min`, below `limit` (RLIMIT_NOFILE).
    pub fn alloc(
        &mut self,
        file: Arc<OpenFile>,
        cloexec: bool,
        min: i32,
        limit: u64,
    ) -> Result<i32, Errno> {
        let mut fd = min.max(0);
        for (&k, _) in self.entries.range(fd..) {
            if k != fd {
                break;
            }
            fd += 1;
        }
        if fd as u64 >= limit {
            return Err(Errno::EMFILE);
        }
        self.entries.insert(fd, FdEntry { file, cloexec });
        Ok(fd)
    }

    /// Installs at exactly `fd`, replacing (and returning) what was there.
    pub fn install(&mut self, fd: i32, file: Arc<OpenFile>, cloexec: bool) -> Option<FdEntry> {
        self.entries.insert(fd, FdEntry { file, cloexec })
    }

    pub fn remove(&mut self, fd: i32) -> Result<FdEntry, Errno> {
        self.entries.remove(&fd).ok_or(Errno::EBADF)
    }

    /// Drops close-on-exec entries (execve).
    pub fn close_on_exec(&mut self) -> Vec<FdEntry> {
        let doomed: Vec<i32> = self
            .entries
            .iter()
            .filter(|(_, e)| e.cloexec)
            .map(|(&k, _)| k)
            .collect();
        doomed
            .into_iter()
            .filter_map(|k| self.entries.remove(&k))
            .collect()
    }

    pub fn fds(&self) -> Vec<i32> {
        self.entries.keys().copied().collect()
    }

    pub fn take_all(&mut self) -> BTreeMap<i32, FdEntry> {
        std::mem::take(&mut self.entries)
    }
}
