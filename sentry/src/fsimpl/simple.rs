//! Small building blocks shared by synthetic filesystems (dev, proc, sys).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::errno::Errno;

use crate::vfs::{DirEntry, FileOps, FileStat, FileType, Inode, Location, VfsResult};

/// Device number shared by the synthetic filesystems.
pub const SYNTHETIC_DEV: u64 = 0x2a;

static NEXT_INO: AtomicU64 = AtomicU64::new(1 << 40);

pub fn next_ino() -> u64 {
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

pub fn synthetic_stat(ino: u64, mode: u32, size: i64) -> FileStat {
    let (s, ns) = boot_time();
    FileStat {
        dev: SYNTHETIC_DEV,
        ino,
        mode,
        nlink: if mode & libc::S_IFMT == libc::S_IFDIR {
            2
        } else {
            1
        },
        uid: 0,
        gid: 0,
        rdev: 0,
        size,
        blksize: 4096,
        blocks: 0,
        atime_sec: s,
        atime_nsec: ns,
        mtime_sec: s,
        mtime_nsec: ns,
        ctime_sec: s,
        ctime_nsec: ns,
    }
}

fn boot_time() -> (i64, i64) {
    static BOOT: std::sync::OnceLock<(i64, i64)> = std::sync::OnceLock::new();
    *BOOT.get_or_init(crate::vfs::now)
}

/// The description of an open directory: no data, only getdents.
pub struct DirFile {
    pub stat: FileStat,
}

impl FileOps for DirFile {
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.stat.clone())
    }
    fn is_dir(&self) -> bool {
        true
    }
}

/// A directory whose entries are fixed when it is built.
pub struct StaticDir {
    ino: u64,
    mode: u32,
    entries: BTreeMap<Vec<u8>, Arc<dyn Inode>>,
    /// The statfs(2) f_type of a filesystem rooted here (cgroup2's magic
    /// is how programs recognise the cgroup mount).
    fs_magic: Option<i64>,
}

impl StaticDir {
    pub fn new(mode: u32) -> StaticDir {
        StaticDir {
            ino: next_ino(),
            mode: libc::S_IFDIR | (mode & 0o7777),
            entries: BTreeMap::new(),
            fs_magic: None,
        }
    }

    /// Makes statfs(2) of this directory report `magic` as f_type.
    pub fn with_fs_magic(mut self, magic: i64) -> StaticDir {
        self.fs_magic = Some(magic);
        self
    }

    pub fn with(mut self, name: &str, inode: Arc<dyn Inode>) -> StaticDir {
        self.entries.insert(name.as_bytes().to_vec(), inode);
        self
    }
}

impl Inode for StaticDir {
    fn stat(&self) -> VfsResult<FileStat> {
        let mut st = synthetic_stat(self.ino, self.mode, 0);
        st.nlink = 2 + self
            .entries
            .values()
            .filter(|i| i.file_type() == FileType::Directory)
            .count() as u64;
        Ok(st)
    }
    fn file_type(&self) -> FileType {
        FileType::Directory
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn lookup(&self, name: &[u8]) -> VfsResult<Arc<dyn Inode>> {
        self.entries.get(name).cloned().ok_or(Errno::ENOENT)
    }
    fn readdir(&self) -> VfsResult<Vec<DirEntry>> {
        Ok(self
            .entries
            .iter()
            .map(|(n, i)| DirEntry {
                name: n.clone(),
                ino: i.stat().map(|s| s.ino).unwrap_or(0),
                ftype: i.file_type(),
            })
            .collect())
    }
    fn open(&self, _flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        Ok(Arc::new(DirFile { stat: self.stat()? }))
    }
    fn read_only(&self) -> bool {
        true
    }
    fn statfs(&self) -> Option<crate::vfs::FsStat> {
        self.fs_magic.map(|fs_type| crate::vfs::FsStat {
            fs_type,
            block_size: 4096,
            name_max: 255,
            fragment_size: 4096,
            ..Default::default()
        })
    }
}

/// A symlink with a fixed or computed target.
pub struct Symlink {
    ino: u64,
    target: Box<dyn Fn() -> VfsResult<Vec<u8>> + Send + Sync>,
    /// A /proc magic link (fd/N, cwd, exe, root): refused by openat2's
    /// RESOLVE_NO_MAGICLINKS.
    magic: bool,
    /// Where following the link jumps (see [`Inode::magic_target`]).
    jump: Option<Box<dyn Fn() -> Option<Location> + Send + Sync>>,
}

impl Symlink {
    pub fn fixed(target: &str) -> Symlink {
        let t = target.as_bytes().to_vec();
        Symlink {
            ino: next_ino(),
            target: Box::new(move || Ok(t.clone())),
            magic: false,
            jump: None,
        }
    }

    pub fn dynamic(f: impl Fn() -> VfsResult<Vec<u8>> + Send + Sync + 'static) -> Symlink {
        Symlink {
            ino: next_ino(),
            target: Box::new(f),
            magic: false,
            jump: None,
        }
    }

    /// Marks a /proc magic link.
    pub fn magic(mut self) -> Symlink {
        self.magic = true;
        self
    }

    /// A magic link that jumps to the location `f` gives (when it gives one).
    pub fn jumping(mut self, f: impl Fn() -> Option<Location> + Send + Sync + 'static) -> Symlink {
        self.magic = true;
        self.jump = Some(Box::new(f));
        self
    }
}

impl Inode for Symlink {
    fn stat(&self) -> VfsResult<FileStat> {
        let len = (self.target)().map(|t| t.len()).unwrap_or(0) as i64;
        Ok(synthetic_stat(self.ino, libc::S_IFLNK | 0o777, len))
    }
    fn file_type(&self) -> FileType {
        FileType::Symlink
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn readlink(&self) -> VfsResult<Vec<u8>> {
        (self.target)()
    }
    fn is_magic_link(&self) -> bool {
        self.magic
    }
    fn magic_target(&self) -> Option<Location> {
        self.jump.as_ref().and_then(|f| f())
    }
    fn open(&self, _flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        Err(Errno::ELOOP)
    }
    fn read_only(&self) -> bool {
        true
    }
}

/// A read-only file whose content is generated when it is opened (the
/// /proc pattern: each open sees a consistent snapshot).
pub struct GeneratedFile {
    ino: u64,
    mode: u32,
    gen: Box<dyn Fn() -> VfsResult<Vec<u8>> + Send + Sync>,
}

impl GeneratedFile {
    pub fn new(gen: impl Fn() -> VfsResult<Vec<u8>> + Send + Sync + 'static) -> GeneratedFile {
        GeneratedFile {
            ino: next_ino(),
            mode: libc::S_IFREG | 0o444,
            gen: Box::new(gen),
        }
    }
}

impl Inode for GeneratedFile {
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(synthetic_stat(self.ino, self.mode, 0))
    }
    fn file_type(&self) -> FileType {
        FileType::Regular
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn open(&self, flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(Errno::EACCES);
        }
        Ok(Arc::new(BufferFile {
            data: (self.gen)()?,
            stat: self.stat()?,
        }))
    }
    fn read_only(&self) -> bool {
        true
    }
}

/// An open snapshot of generated content.
pub struct BufferFile {
    data: Vec<u8>,
    stat: FileStat,
}

impl FileOps for BufferFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> VfsResult<usize> {
        let off = off.min(self.data.len() as u64) as usize;
        let n = buf.len().min(self.data.len() - off);
        buf[..n].copy_from_slice(&self.data[off..off + n]);
        Ok(n)
    }
    fn size(&self) -> VfsResult<u64> {
        Ok(self.data.len() as u64)
    }
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.stat.clone())
    }
}
