//! A read-only view of another filesystem: what `mount -o remount,ro` and
//! a read-only bind made inside the sandbox give. Reads pass through;
//! every change is EROFS; lookups hand out read-only views of children.

use std::any::Any;
use std::sync::Arc;

use nix::errno::Errno;

use crate::vfs::{
    CreateCtx, DirEntry, FileOps, FileStat, FileType, FsStat, Inode, SetAttr, VfsResult,
};

pub struct ReadOnlyView {
    inner: Arc<dyn Inode>,
}

impl ReadOnlyView {
    /// `inner` seen read-only (a view of a view is the same view).
    pub fn of(inner: Arc<dyn Inode>) -> Arc<dyn Inode> {
        if inner.as_any().is::<ReadOnlyView>() {
            return inner;
        }
        Arc::new(ReadOnlyView { inner })
    }

    /// The writable filesystem behind a view (for a read-write remount).
    pub fn unwrap(fs: &Arc<dyn Inode>) -> Arc<dyn Inode> {
        match fs.as_any().downcast_ref::<ReadOnlyView>() {
            Some(v) => v.inner.clone(),
            None => fs.clone(),
        }
    }
}

impl Inode for ReadOnlyView {
    fn stat(&self) -> VfsResult<FileStat> {
        self.inner.stat()
    }
    fn file_type(&self) -> FileType {
        self.inner.file_type()
    }
    // Never the inner inode's: rename and link downcast to find their
    // filesystem, and must not reach the writable one through a view.
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn lookup(&self, name: &[u8]) -> VfsResult<Arc<dyn Inode>> {
        Ok(ReadOnlyView::of(self.inner.lookup(name)?))
    }
    fn readdir(&self) -> VfsResult<Vec<DirEntry>> {
        self.inner.readdir()
    }
    fn readlink(&self) -> VfsResult<Vec<u8>> {
        self.inner.readlink()
    }
    fn is_magic_link(&self) -> bool {
        self.inner.is_magic_link()
    }
    /// A magic link leads to the file on its own mount, which this view
    /// does not cover (as a read-only /proc on Linux).
    fn magic_target(&self) -> Option<crate::vfs::Location> {
        self.inner.magic_target()
    }
    fn create_tmpfile(&self, _: u32, _: CreateCtx, _: bool) -> VfsResult<Arc<dyn Inode>> {
        Err(Errno::EROFS)
    }
    fn open(&self, flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if writing && self.inner.file_type() == FileType::Regular {
            return Err(Errno::EROFS);
        }
        self.inner.open(flags)
    }
    fn create(&self, _: &[u8], _: u32, _: CreateCtx) -> VfsResult<Arc<dyn Inode>> {
        Err(Errno::EROFS)
    }
    fn mknod(&self, _: &[u8], _: u32, _: u64, _: CreateCtx) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn mkdir(&self, _: &[u8], _: u32, _: CreateCtx) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn symlink(&self, _: &[u8], _: &[u8], _: CreateCtx) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn link(&self, _: &[u8], _: &Arc<dyn Inode>) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn unlinked(&self) -> bool {
        self.inner.unlinked()
    }
    fn unlink(&self, _: &[u8]) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn rmdir(&self, _: &[u8]) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn rename(&self, _: &[u8], _: &Arc<dyn Inode>, _: &[u8]) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn set_attr(&self, _: &SetAttr) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn get_xattr(&self, name: &[u8]) -> VfsResult<Vec<u8>> {
        self.inner.get_xattr(name)
    }
    fn set_xattr(&self, _: &[u8], _: &[u8], _: i32) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn list_xattr(&self) -> VfsResult<Vec<Vec<u8>>> {
        self.inner.list_xattr()
    }
    fn remove_xattr(&self, _: &[u8]) -> VfsResult<()> {
        Err(Errno::EROFS)
    }
    fn statfs(&self) -> Option<FsStat> {
        self.inner.statfs()
    }
    fn read_only(&self) -> bool {
        true
    }
}
