//! An overlay with an in-memory upper layer: the container's rootfs (lower =
//! the gofer's read-only tree) and, with no lower layer at all, tmpfs.
//!
//! Every node that has been looked up stays in its parent's `children`
//! map, together with whiteouts for removed names, so the upper layer is
//! just the tree of nodes plus their copied-up metadata and data. Lower
//! files are copied up (whole) the first time they are opened for writing
//! or their attributes change; until then reads go straight to the host fd
//! the gofer donated.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use nix::errno::Errno;

use super::file_data::{FileData, Filestore};
use super::simple::DirFile;
use crate::vfs::{
    now, CreateCtx, DirEntry, FileOps, FileStat, FileType, Inode, MmapBacking, SetAttr, VfsResult,
};

pub struct OverlayFs {
    dev: u64,
    next_ino: AtomicU64,
    /// Where file contents go: the filestore (`--overlay self`) or memory.
    store: Option<Arc<Filestore>>,
}

static NEXT_DEV: AtomicU64 = AtomicU64::new(0x100);

impl OverlayFs {
    fn new(store: Option<Arc<Filestore>>) -> Arc<OverlayFs> {
        Arc::new(OverlayFs {
            dev: NEXT_DEV.fetch_add(1, Ordering::Relaxed),
            next_ino: AtomicU64::new(1 << 32),
            store,
        })
    }

    /// The rootfs: `lower` seen through a writable upper layer whose file
    /// contents live in `store` (on the disk) or, without one, in memory.
    pub fn over(lower: Arc<dyn Inode>, store: Option<Arc<Filestore>>) -> VfsResult<Arc<OvNode>> {
        OvNode::wrap_lower(&OverlayFs::new(store), lower)
    }

    fn new_data(&self) -> FileData {
        FileData::new_in(self.store.as_ref())
    }

    /// An empty tmpfs whose root has `mode`.
    pub fn tmpfs(mode: u32) -> Arc<OvNode> {
        let fs = OverlayFs::new(None);
        let ino = fs.next_ino.fetch_add(1, Ordering::Relaxed);
        let meta = new_meta(
            fs.dev,
            ino,
            libc::S_IFDIR | (mode & 0o7777),
            CreateCtx {
                uid: 0,
                gid: 0,
                privileged: true,
            },
        );
        OvNode::new(
            fs,
            FileType::Directory,
            None,
            ino,
            OvState {
                meta: Some(meta),
                opaque: true,
                ..Default::default()
            },
        )
    }
}

enum Child {
    Node(Arc<OvNode>),
    Whiteout,
}

#[derive(Default)]
struct OvState {
    /// Upper metadata; None while the node is only in the lower layer.
    meta: Option<FileStat>,
    /// Upper data of a regular file; None while reads go to the lower file.
    data: Option<FileData>,
    /// Upper symlink target.
    link: Option<Vec<u8>>,
    /// Extended attributes of the upper node (the lower layer's are not
    /// served by the gofer yet).
    xattrs: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    /// The pipe behind a FIFO node, made at its first open.
    fifo: Option<Arc<super::pipe::Fifo>>,
    children: HashMap<Vec<u8>, Child>,
    /// A directory created in the upper layer hides the lower one.
    opaque: bool,
    /// Removed from the tree (last link gone, or an rmdir'ed directory).
    unlinked: bool,
    /// An O_TMPFILE file linkat may still give a name.
    linkable_tmpfile: bool,
}

pub struct OvNode {
    fs: Arc<OverlayFs>,
    ftype: FileType,
    ino: u64,
    lower: Option<Arc<dyn Inode>>,
    me: Weak<OvNode>,
    state: Mutex<OvState>,
}

/// Metadata of a node created now in the upper layer.
fn new_meta(dev: u64, ino: u64, mode: u32, ctx: CreateCtx) -> FileStat {
    let (s, ns) = now();
    FileStat {
        dev,
        ino,
        mode,
        nlink: if mode & libc::S_IFMT == libc::S_IFDIR {
            2
        } else {
            1
        },
        uid: ctx.uid,
        gid: ctx.gid,
        rdev: 0,
        size: 0,
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

impl OvNode {
    fn new(
        fs: Arc<OverlayFs>,
        ftype: FileType,
        lower: Option<Arc<dyn Inode>>,
        ino: u64,
        state: OvState,
    ) -> Arc<OvNode> {
        Arc::new_cyclic(|me| OvNode {
            fs,
            ftype,
            ino,
            lower,
            me: me.clone(),
            state: Mutex::new(state),
        })
    }

    fn wrap_lower(fs: &Arc<OverlayFs>, lower: Arc<dyn Inode>) -> VfsResult<Arc<OvNode>> {
        let ino = lower.stat()?.ino;
        Ok(OvNode::new(
            fs.clone(),
            lower.file_type(),
            Some(lower),
            ino,
            OvState::default(),
        ))
    }

    /// State of a node that exists only in the upper layer.
    fn upper_state(mode: u32, ctx: CreateCtx) -> OvState {
        // dev and ino are filled in when the node is inserted.
        OvState {
            meta: Some(new_meta(0, 0, mode, ctx)),
            ..Default::default()
        }
    }

    /// Owner and mode of a node created in this directory.
    fn new_owner(&self, mode: u32, ctx: CreateCtx) -> (u32, CreateCtx) {
        match self.stat() {
            Ok(dir) => crate::vfs::init_owner(&dir, mode, ctx),
            Err(_) => (mode, ctx),
        }
    }

    fn lock(&self) -> VfsResult<MutexGuard<'_, OvState>> {
        self.state.lock().map_err(|_| Errno::EIO)
    }

    fn arc(&self) -> VfsResult<Arc<OvNode>> {
        self.me.upgrade().ok_or(Errno::ESTALE)
    }

    fn lower_visible(&self, st: &OvState) -> Option<&Arc<dyn Inode>> {
        if st.opaque {
            None
        } else {
            self.lower.as_ref()
        }
    }

    fn child(&self, name: &[u8]) -> VfsResult<Arc<OvNode>> {
        let mut st = self.lock()?;
        match st.children.get(name) {
            Some(Child::Node(n)) => return Ok(n.clone()),
            Some(Child::Whiteout) => return Err(Errno::ENOENT),
            None => {}
        }
        let lower = self.lower_visible(&st).ok_or(Errno::ENOENT)?.lookup(name)?;
        let node = OvNode::wrap_lower(&self.fs, lower)?;
        st.children.insert(name.to_vec(), Child::Node(node.clone()));
        Ok(node)
    }

    /// A new entry may be made: the directory still exists and `name` is
    /// free (a lower entry of that name is looked up before deciding so).
    fn check_new_name(&self, name: &[u8]) -> VfsResult<()> {
        if self.lock()?.unlinked {
            return Err(Errno::ENOENT);
        }
        match self.child(name) {
            Ok(_) => Err(Errno::EEXIST),
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Enters `node` as `name`, unless another thread entered that name
    /// since `check_new_name` (EEXIST: two creates of one name must not
    /// both succeed, the second dropping the first's file from the tree).
    fn insert_checked(&self, name: &[u8], node: Arc<OvNode>) -> VfsResult<()> {
        let mut st = self.lock()?;
        if st.unlinked {
            return Err(Errno::ENOENT);
        }
        if let Some(Child::Node(_)) = st.children.get(name) {
            return Err(Errno::EEXIST);
        }
        st.children.insert(name.to_vec(), Child::Node(node));
        Ok(())
    }

    fn insert_new(&self, name: &[u8], ftype: FileType, state: OvState) -> VfsResult<Arc<OvNode>> {
        if self.ftype != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        self.check_new_name(name)?;
        let ino = self.fs.next_ino.fetch_add(1, Ordering::Relaxed);
        let mut state = state;
        if let Some(m) = state.meta.as_mut() {
            m.ino = ino;
            m.dev = self.fs.dev;
        }
        let node = OvNode::new(self.fs.clone(), ftype, None, ino, state);
        self.insert_checked(name, node.clone())?;
        self.touch()?;
        Ok(node)
    }

    /// Removes `name`, dropping one link of the node it named.
    fn remove_entry(&self, name: &[u8]) -> VfsResult<()> {
        if let Ok(child) = self.child(name) {
            let mut cs = child.lock()?;
            child.copy_up_meta(&mut cs)?;
            if let Some(m) = cs.meta.as_mut() {
                m.nlink = m.nlink.saturating_sub(1);
                let (s, ns) = now();
                m.ctime_sec = s;
                m.ctime_nsec = ns;
                if m.nlink == 0 || child.ftype == FileType::Directory {
                    cs.unlinked = true;
                }
            }
        }
        self.unlink_name(name)
    }

    /// Takes `name` out of the directory without touching the node (rename).
    fn unlink_name(&self, name: &[u8]) -> VfsResult<()> {
        let mut st = self.lock()?;
        if self.lower_visible(&st).is_some() {
            st.children.insert(name.to_vec(), Child::Whiteout);
        } else {
            st.children.remove(name);
        }
        drop(st);
        self.touch()
    }

    /// Gives the node its own metadata (copy-up of attributes).
    fn copy_up_meta(&self, st: &mut OvState) -> VfsResult<()> {
        if st.meta.is_none() {
            let lower = self.lower.as_ref().ok_or(Errno::EIO)?;
            st.meta = Some(lower.stat()?);
            if self.ftype == FileType::Symlink {
                st.link = Some(lower.readlink()?);
            }
        }
        Ok(())
    }

    /// Copies the whole lower file into memory before the first write.
    fn copy_up_data(&self, st: &mut OvState) -> VfsResult<()> {
        self.copy_up_meta(st)?;
        if st.data.is_none() {
            let mut data = self.fs.new_data();
            if let Some(lower) = &self.lower {
                let f = lower.open(libc::O_RDONLY)?;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = f.read_at(&mut buf, data.len())?;
                    if n == 0 {
                        break;
                    }
                    data.write_at(&buf[..n], data.len())?;
                }
            }
            st.data = Some(data);
        }
        Ok(())
    }

    /// Updates mtime/ctime of a directory whose entries changed.
    fn touch(&self) -> VfsResult<()> {
        let mut st = self.lock()?;
        self.copy_up_meta(&mut st)?;
        let (s, ns) = now();
        if let Some(m) = st.meta.as_mut() {
            m.mtime_sec = s;
            m.mtime_nsec = ns;
            m.ctime_sec = s;
            m.ctime_nsec = ns;
        }
        Ok(())
    }

    fn downcast(inode: &Arc<dyn Inode>) -> VfsResult<Arc<OvNode>> {
        inode
            .as_any()
            .downcast_ref::<OvNode>()
            .ok_or(Errno::EXDEV)?
            .arc()
    }
}

impl Inode for OvNode {
    fn stat(&self) -> VfsResult<FileStat> {
        let st = self.lock()?;
        if let Some(m) = &st.meta {
            let mut m = m.clone();
            if let Some(d) = &st.data {
                m.size = d.len() as i64;
                m.blocks = (d.len() as i64 + 511) / 512;
            }
            if let Some(l) = &st.link {
                m.size = l.len() as i64;
            }
            return Ok(m);
        }
        drop(st);
        self.lower.as_ref().ok_or(Errno::EIO)?.stat()
    }

    fn file_type(&self) -> FileType {
        self.ftype
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn lookup(&self, name: &[u8]) -> VfsResult<Arc<dyn Inode>> {
        if self.ftype != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(self.child(name)?)
    }

    fn readdir(&self) -> VfsResult<Vec<DirEntry>> {
        if self.ftype != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let lower = {
            let st = self.lock()?;
            self.lower_visible(&st).cloned()
        };
        let lower_entries = match lower {
            Some(l) => l.readdir()?,
            None => Vec::new(),
        };
        let st = self.lock()?;
        let mut out = Vec::with_capacity(lower_entries.len());
        let mut seen = HashSet::new();
        for e in lower_entries {
            match st.children.get(&e.name) {
                Some(Child::Whiteout) => {}
                Some(Child::Node(n)) => out.push(DirEntry {
                    name: e.name.clone(),
                    ino: n.ino,
                    ftype: n.ftype,
                }),
                None => out.push(e.clone()),
            }
            seen.insert(e.name);
        }
        let mut extra: Vec<DirEntry> = st
            .children
            .iter()
            .filter_map(|(name, c)| match c {
                Child::Node(n) if !seen.contains(name) => Some(DirEntry {
                    name: name.clone(),
                    ino: n.ino,
                    ftype: n.ftype,
                }),
                _ => None,
            })
            .collect();
        extra.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(extra);
        Ok(out)
    }

    fn readlink(&self) -> VfsResult<Vec<u8>> {
        if self.ftype != FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        let st = self.lock()?;
        if let Some(l) = &st.link {
            return Ok(l.clone());
        }
        drop(st);
        self.lower.as_ref().ok_or(Errno::EIO)?.readlink()
    }

    fn open(&self, flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        match self.ftype {
            FileType::Directory => return Ok(Arc::new(DirFile { stat: self.stat()? })),
            FileType::Regular => {}
            FileType::Symlink => return Err(Errno::ELOOP),
            FileType::Fifo => {
                let stat = self.stat()?;
                let fifo = {
                    let mut st = self.lock()?;
                    match &st.fifo {
                        Some(f) => f.clone(),
                        None => {
                            let f = super::pipe::Fifo::new()?;
                            st.fifo = Some(f.clone());
                            f
                        }
                    }
                };
                return fifo.open(flags, stat);
            }
            FileType::Socket => return Err(Errno::ENXIO),
            // Device nodes (made with mknod, or in the image) reach only
            // the sandbox's own devices.
            FileType::CharDev | FileType::BlockDev => {
                return super::dev::open_by_number(self.stat()?.rdev, flags);
            }
        }
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let mut st = self.lock()?;
        if writing {
            self.copy_up_data(&mut st)?;
            if flags & libc::O_TRUNC != 0 {
                if let Some(d) = st.data.as_mut() {
                    d.resize(0)?;
                }
            }
        }
        if st.data.is_some() {
            return Ok(Arc::new(MemFile { node: self.arc()? }));
        }
        drop(st);
        self.lower.as_ref().ok_or(Errno::EIO)?.open(flags)
    }

    fn create_tmpfile(
        &self,
        mode: u32,
        ctx: CreateCtx,
        linkable: bool,
    ) -> VfsResult<Arc<dyn Inode>> {
        if self.ftype != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let (mode, ctx) = self.new_owner(libc::S_IFREG | (mode & 0o7777), ctx);
        let mut state = OvNode::upper_state(mode, ctx);
        state.data = Some(self.fs.new_data());
        state.unlinked = true;
        state.linkable_tmpfile = linkable;
        let ino = self.fs.next_ino.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = state.meta.as_mut() {
            m.ino = ino;
            m.dev = self.fs.dev;
            m.nlink = 0;
        }
        Ok(OvNode::new(
            self.fs.clone(),
            FileType::Regular,
            None,
            ino,
            state,
        ))
    }

    fn create(&self, name: &[u8], mode: u32, ctx: CreateCtx) -> VfsResult<Arc<dyn Inode>> {
        let (mode, ctx) = self.new_owner(libc::S_IFREG | (mode & 0o7777), ctx);
        let mut state = OvNode::upper_state(mode, ctx);
        state.data = Some(self.fs.new_data());
        Ok(self.insert_new(name, FileType::Regular, state)?)
    }

    fn mknod(&self, name: &[u8], mode: u32, rdev: u64, ctx: CreateCtx) -> VfsResult<()> {
        let ftype = match mode & libc::S_IFMT {
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            libc::S_IFCHR => FileType::CharDev,
            libc::S_IFBLK => FileType::BlockDev,
            _ => return Err(Errno::EPERM),
        };
        let (mode, ctx) = self.new_owner(mode, ctx);
        let mut state = OvNode::upper_state(mode, ctx);
        if let Some(m) = state.meta.as_mut() {
            m.rdev = rdev;
        }
        self.insert_new(name, ftype, state)?;
        Ok(())
    }

    fn mkdir(&self, name: &[u8], mode: u32, ctx: CreateCtx) -> VfsResult<()> {
        let (mode, ctx) = self.new_owner(libc::S_IFDIR | (mode & 0o7777), ctx);
        let mut state = OvNode::upper_state(mode, ctx);
        state.opaque = true;
        self.insert_new(name, FileType::Directory, state)?;
        Ok(())
    }

    fn symlink(&self, name: &[u8], target: &[u8], ctx: CreateCtx) -> VfsResult<()> {
        let (_, ctx) = self.new_owner(libc::S_IFLNK | 0o777, ctx);
        let mut state = OvNode::upper_state(libc::S_IFLNK | 0o777, ctx);
        state.link = Some(target.to_vec());
        self.insert_new(name, FileType::Symlink, state)?;
        Ok(())
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> VfsResult<()> {
        let target = OvNode::downcast(target)?;
        if !Arc::ptr_eq(&self.fs, &target.fs) {
            return Err(Errno::EXDEV);
        }
        if target.ftype == FileType::Directory {
            return Err(Errno::EPERM);
        }
        self.check_new_name(name)?;
        let tmpfile = {
            let mut ts = target.lock()?;
            let tmpfile = ts.unlinked;
            if tmpfile {
                if !ts.linkable_tmpfile {
                    return Err(Errno::ENOENT);
                }
                ts.unlinked = false;
                ts.linkable_tmpfile = false;
            }
            target.copy_up_meta(&mut ts)?;
            if let Some(m) = ts.meta.as_mut() {
                m.nlink += 1;
                let (s, ns) = now();
                m.ctime_sec = s;
                m.ctime_nsec = ns;
            }
            tmpfile
        };
        if let Err(e) = self.insert_checked(name, target.clone()) {
            // Another thread took the name: the link never happened.
            let mut ts = target.lock()?;
            if let Some(m) = ts.meta.as_mut() {
                m.nlink -= 1;
            }
            if tmpfile {
                ts.unlinked = true;
                ts.linkable_tmpfile = true;
            }
            return Err(e);
        }
        self.touch()
    }

    fn unlinked(&self) -> bool {
        self.lock().map(|s| s.unlinked).unwrap_or(false)
    }

    fn unlink(&self, name: &[u8]) -> VfsResult<()> {
        let child = self.child(name)?;
        if child.ftype == FileType::Directory {
            return Err(Errno::EISDIR);
        }
        self.remove_entry(name)
    }

    fn rmdir(&self, name: &[u8]) -> VfsResult<()> {
        let child = self.child(name)?;
        if child.ftype != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if !child.readdir()?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.remove_entry(name)
    }

    fn rename(&self, old: &[u8], new_dir: &Arc<dyn Inode>, new: &[u8]) -> VfsResult<()> {
        let new_dir = OvNode::downcast(new_dir)?;
        if !Arc::ptr_eq(&self.fs, &new_dir.fs) {
            return Err(Errno::EXDEV);
        }
        let node = self.child(old)?;
        match new_dir.child(new) {
            Ok(target) => {
                if Arc::ptr_eq(&target, &node) {
                    return Ok(());
                }
                match (
                    node.ftype == FileType::Directory,
                    target.ftype == FileType::Directory,
                ) {
                    (true, false) => return Err(Errno::ENOTDIR),
                    (false, true) => return Err(Errno::EISDIR),
                    (true, true) if !target.readdir()?.is_empty() => return Err(Errno::ENOTEMPTY),
                    _ => {}
                }
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        if let Ok(target) = new_dir.child(new) {
            if !Arc::ptr_eq(&target, &node) {
                new_dir.remove_entry(new)?;
            }
        }
        self.unlink_name(old)?;
        new_dir
            .lock()?
            .children
            .insert(new.to_vec(), Child::Node(node));
        new_dir.touch()
    }

    fn exchange(&self, old: &[u8], new_dir: &Arc<dyn Inode>, new: &[u8]) -> VfsResult<()> {
        let new_dir = OvNode::downcast(new_dir)?;
        if !Arc::ptr_eq(&self.fs, &new_dir.fs) {
            return Err(Errno::EXDEV);
        }
        let a = self.child(old)?;
        let b = new_dir.child(new)?;
        if Arc::ptr_eq(&a, &b) {
            return Ok(());
        }
        // Both names stay taken: no whiteout, each entry names the other node.
        self.lock()?
            .children
            .insert(old.to_vec(), Child::Node(b.clone()));
        new_dir
            .lock()?
            .children
            .insert(new.to_vec(), Child::Node(a.clone()));
        for node in [&a, &b] {
            let mut st = node.lock()?;
            node.copy_up_meta(&mut st)?;
            if let Some(m) = st.meta.as_mut() {
                let (s, ns) = now();
                m.ctime_sec = s;
                m.ctime_nsec = ns;
            }
        }
        self.touch()?;
        new_dir.touch()
    }

    fn get_xattr(&self, name: &[u8]) -> VfsResult<Vec<u8>> {
        self.lock()?.xattrs.get(name).cloned().ok_or(Errno::ENODATA)
    }

    fn set_xattr(&self, name: &[u8], value: &[u8], flags: i32) -> VfsResult<()> {
        let mut st = self.lock()?;
        self.copy_up_meta(&mut st)?;
        let exists = st.xattrs.contains_key(name);
        if flags & libc::XATTR_CREATE != 0 && exists {
            return Err(Errno::EEXIST);
        }
        if flags & libc::XATTR_REPLACE != 0 && !exists {
            return Err(Errno::ENODATA);
        }
        st.xattrs.insert(name.to_vec(), value.to_vec());
        if let Some(m) = st.meta.as_mut() {
            let (s, ns) = now();
            m.ctime_sec = s;
            m.ctime_nsec = ns;
        }
        Ok(())
    }

    fn list_xattr(&self) -> VfsResult<Vec<Vec<u8>>> {
        Ok(self.lock()?.xattrs.keys().cloned().collect())
    }

    fn remove_xattr(&self, name: &[u8]) -> VfsResult<()> {
        let mut st = self.lock()?;
        self.copy_up_meta(&mut st)?;
        st.xattrs.remove(name).map(|_| ()).ok_or(Errno::ENODATA)
    }

    fn set_attr(&self, attr: &SetAttr) -> VfsResult<()> {
        let mut st = self.lock()?;
        if attr.size.is_some() {
            if self.ftype != FileType::Regular {
                return Err(if self.ftype == FileType::Directory {
                    Errno::EISDIR
                } else {
                    Errno::EINVAL
                });
            }
            self.copy_up_data(&mut st)?;
        } else {
            self.copy_up_meta(&mut st)?;
        }
        let (s, ns) = now();
        if let (Some(size), Some(d)) = (attr.size, st.data.as_mut()) {
            d.resize(size)?;
        }
        let m = st.meta.as_mut().ok_or(Errno::EIO)?;
        if let Some(mode) = attr.mode {
            m.mode = (m.mode & libc::S_IFMT) | (mode & 0o7777);
        }
        if let Some(uid) = attr.uid {
            m.uid = uid;
        }
        if let Some(gid) = attr.gid {
            m.gid = gid;
        }
        if let Some((a, an)) = attr.atime {
            m.atime_sec = a;
            m.atime_nsec = an;
        }
        if let Some((t, tn)) = attr.mtime {
            m.mtime_sec = t;
            m.mtime_nsec = tn;
        } else if attr.size.is_some() {
            m.mtime_sec = s;
            m.mtime_nsec = ns;
        }
        m.ctime_sec = s;
        m.ctime_nsec = ns;
        Ok(())
    }
}

/// An open regular file of the upper layer.
pub struct MemFile {
    node: Arc<OvNode>,
}

impl MemFile {
    fn with_data<T>(
        &self,
        f: impl FnOnce(&mut FileData, &mut Option<FileStat>) -> VfsResult<T>,
    ) -> VfsResult<T> {
        let mut st = self.node.lock()?;
        let OvState { data, meta, .. } = &mut *st;
        let d = data.as_mut().ok_or(Errno::EIO)?;
        f(d, meta)
    }
}

fn touch_mtime(meta: &mut Option<FileStat>) {
    if let Some(m) = meta.as_mut() {
        let (s, ns) = now();
        m.mtime_sec = s;
        m.mtime_nsec = ns;
        m.ctime_sec = s;
        m.ctime_nsec = ns;
    }
}

impl FileOps for MemFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> VfsResult<usize> {
        self.with_data(|d, _| d.read_at(buf, off))
    }

    fn write_at(&self, buf: &[u8], off: u64) -> VfsResult<usize> {
        self.with_data(|d, meta| {
            let n = d.write_at(buf, off)?;
            touch_mtime(meta);
            Ok(n)
        })
    }

    fn append(&self, buf: &[u8]) -> VfsResult<(usize, u64)> {
        self.with_data(|d, meta| {
            let n = d.write_at(buf, d.len())?;
            touch_mtime(meta);
            Ok((n, d.len()))
        })
    }

    fn size(&self) -> VfsResult<u64> {
        self.with_data(|d, _| Ok(d.len()))
    }

    fn stat(&self) -> VfsResult<FileStat> {
        self.node.stat()
    }

    fn fallocate(&self, mode: i32, off: u64, len: u64) -> VfsResult<()> {
        let end = off.checked_add(len).ok_or(Errno::EFBIG)?;
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let zero = mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0;
        self.with_data(|d, meta| {
            if !keep_size && end > d.len() {
                d.resize(end)?;
            }
            if zero {
                d.zero_range(off, end)?;
                touch_mtime(meta);
            }
            Ok(())
        })
    }

    fn truncate(&self, size: u64) -> VfsResult<()> {
        self.node.set_attr(&SetAttr {
            size: Some(size),
            ..Default::default()
        })
    }

    fn mmap_backing(&self) -> VfsResult<Option<MmapBacking>> {
        self.with_data(|d, _| {
            let (fd, id) = d.mappable()?;
            // The memfd belongs to the file's data, which may drop it.
            Ok(Some(MmapBacking { fd, id, file: None }))
        })
    }
}
