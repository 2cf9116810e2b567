//! The gofer filesystem: nodes of the container's rootfs, reached only
//! through the gofer (walks) and the host fds it donates (opens).

use std::any::Any;
use std::sync::{Arc, Mutex};

use gofer::client::GoferClient;
use gofer::protocol::Handle;

use super::host::{HostFile, HostKind};
use crate::vfs::{DirEntry, FileOps, FileStat, FileType, Inode, VfsResult};

pub struct GoferInode {
    client: Arc<GoferClient>,
    handle: Handle,
    stat: FileStat,
    link: Mutex<Option<Vec<u8>>>,
}

impl GoferInode {
    pub fn root(client: Arc<GoferClient>) -> VfsResult<Arc<GoferInode>> {
        let stat = client.root_stat()?;
        Ok(Arc::new(GoferInode {
            client,
            handle: gofer::protocol::ROOT_HANDLE,
            stat,
            link: Mutex::new(None),
        }))
    }
}

impl Drop for GoferInode {
    fn drop(&mut self) {
        if self.handle != gofer::protocol::ROOT_HANDLE {
            self.client.close(self.handle);
        }
    }
}

impl Inode for GoferInode {
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.stat.clone())
    }

    fn file_type(&self) -> FileType {
        FileType::from_mode(self.stat.mode)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn lookup(&self, name: &[u8]) -> VfsResult<Arc<dyn Inode>> {
        let (handle, stat) = self.client.walk(self.handle, name)?;
        Ok(Arc::new(GoferInode {
            client: self.client.clone(),
            handle,
            stat,
            link: Mutex::new(None),
        }))
    }

    fn readdir(&self) -> VfsResult<Vec<DirEntry>> {
        let ents = self.client.getdents(self.handle)?;
        Ok(ents
            .into_iter()
            .map(|e| DirEntry {
                name: e.name,
                ino: e.ino,
                ftype: FileType::from_dtype(e.d_type),
            })
            .collect())
    }

    fn readlink(&self) -> VfsResult<Vec<u8>> {
        if self.file_type() != FileType::Symlink {
            return Err(nix::errno::Errno::EINVAL);
        }
        let mut cached = self.link.lock().map_err(|_| nix::errno::Errno::EIO)?;
        if let Some(l) = cached.as_ref() {
            return Ok(l.clone());
        }
        let l = self.client.readlink(self.handle)?;
        *cached = Some(l.clone());
        Ok(l)
    }

    fn open(&self, flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        // Directories are read through readdir (a read-only bind mount is a
        // bare gofer tree, with no overlay to do it).
        if self.file_type() == FileType::Directory {
            return Ok(Arc::new(super::simple::DirFile { stat: self.stat()? }));
        }
        let want = flags & (libc::O_DIRECTORY | libc::O_NONBLOCK);
        let fd = self.client.open(self.handle, libc::O_RDONLY | want)?;
        Ok(Arc::new(HostFile::new(fd, HostKind::File)))
    }

    fn read_only(&self) -> bool {
        true
    }
}
