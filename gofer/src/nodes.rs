//! The gofer's handles and the `O_PATH` fds behind them.
//!
//! The sentry keeps a handle for every node of an image it has walked (a
//! `du` of a large tree walks hundreds of thousands), so the gofer cannot
//! keep an fd open for each: past a budget derived from its fd limit, the
//! least recently used are closed, and reopened on their next use by a
//! single-component `O_NOFOLLOW` walk from their parent (itself reopened
//! the same way if need be), as the walk that made them did. A reopened
//! node must be the same inode (device and inode number), or the handle is
//! stale (ESTALE): nothing is ever reached by a path the handle did not
//! name when it was made. (With no generation number to compare, a file
//! made outside the sandbox under the same name that reuses the freed
//! inode number passes the check; it is still inside the mount.)
//!
//! Renames and unlinks through the gofer keep the origins true: a node
//! whose name goes away is pinned open first (its inode lives on, as on
//! Linux), and a renamed node remembers its new name. Nodes with no name
//! (the root, O_TMPFILE files, created files adopted through their open
//! fd's magic link) are pinned too.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::protocol::Handle;
use crate::sys;

/// Where a node can be walked to again: its parent's handle and its name.
type Origin = (Handle, CString);

struct Node {
    /// The open `O_PATH` fd, or None once closed for the budget.
    fd: Option<Arc<OwnedFd>>,
    /// None: pinned open (no name to walk again by).
    origin: Option<Origin>,
    dev: u64,
    ino: u64,
    /// Last use, the key of its entry in `NodeTable::lru` while open and
    /// evictable.
    used: u64,
}

pub struct NodeTable {
    nodes: HashMap<Handle, Node>,
    /// Open, evictable nodes by last use.
    lru: BTreeMap<u64, Handle>,
    /// Handles by origin (a name may have been walked more than once).
    by_origin: HashMap<Origin, Vec<Handle>>,
    tick: u64,
    open: usize,
    budget: usize,
    next: Handle,
}

/// How deep a chain of closed parents may be reopened.
const MAX_DEPTH: usize = 4096;

impl NodeTable {
    /// A table whose first handle is `root` (pinned), keeping at most
    /// `budget` evictable fds open.
    pub fn new(root_handle: Handle, root: OwnedFd, budget: usize) -> Result<NodeTable, Errno> {
        let mut t = NodeTable {
            nodes: HashMap::new(),
            lru: BTreeMap::new(),
            by_origin: HashMap::new(),
            tick: 0,
            open: 0,
            budget: budget.max(16),
            next: root_handle,
        };
        t.insert(root, None)?;
        Ok(t)
    }

    /// Gives `fd` (an `O_PATH` fd) the next handle; `origin` says how to
    /// walk to it again (None pins it open).
    pub fn insert(&mut self, fd: OwnedFd, origin: Option<Origin>) -> Result<Handle, Errno> {
        let st = sys::fstat(fd.as_fd())?;
        let handle = self.next;
        self.next = handle.checked_add(1).ok_or(Errno::EMFILE)?;
        self.tick += 1;
        if let Some(o) = &origin {
            self.by_origin.entry(o.clone()).or_default().push(handle);
            self.lru.insert(self.tick, handle);
        }
        self.nodes.insert(
            handle,
            Node {
                fd: Some(Arc::new(fd)),
                origin,
                dev: st.st_dev,
                ino: st.st_ino,
                used: self.tick,
            },
        );
        self.open += 1;
        self.evict_over_budget();
        Ok(handle)
    }

    /// The node's fd, reopened if it was closed.
    pub fn get(&mut self, handle: Handle) -> Result<Arc<OwnedFd>, Errno> {
        self.get_at(handle, 0)
    }

    fn get_at(&mut self, handle: Handle, depth: usize) -> Result<Arc<OwnedFd>, Errno> {
        let node = self.nodes.get(&handle).ok_or(Errno::EBADF)?;
        if let Some(fd) = node.fd.clone() {
            self.touch(handle);
            return Ok(fd);
        }
        if depth > MAX_DEPTH {
            return Err(Errno::ELOOP);
        }
        let (parent, name) = node.origin.clone().ok_or(Errno::ESTALE)?;
        let (dev, ino) = (node.dev, node.ino);
        let dir = self.get_at(parent, depth + 1)?;
        let fd = match sys::openat(
            dir.as_fd(),
            &name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Err(Errno::ESTALE),
            Err(e) => return Err(e),
        };
        let st = sys::fstat(fd.as_fd())?;
        if st.st_dev != dev || st.st_ino != ino {
            return Err(Errno::ESTALE);
        }
        let fd = Arc::new(fd);
        self.tick += 1;
        let tick = self.tick;
        if let Some(node) = self.nodes.get_mut(&handle) {
            node.fd = Some(fd.clone());
            node.used = tick;
        }
        self.lru.insert(tick, handle);
        self.open += 1;
        self.evict_over_budget();
        Ok(fd)
    }

    /// Marks an open node as just used.
    fn touch(&mut self, handle: Handle) {
        self.tick += 1;
        let tick = self.tick;
        let Some(node) = self.nodes.get_mut(&handle) else {
            return;
        };
        if node.origin.is_none() || node.fd.is_none() {
            return;
        }
        self.lru.remove(&node.used);
        node.used = tick;
        self.lru.insert(tick, handle);
    }

    /// Closes the least recently used evictable fds beyond the budget (an
    /// fd a request still holds closes when it lets go).
    fn evict_over_budget(&mut self) {
        while self.open > self.budget {
            let Some((_, handle)) = self.lru.pop_first() else {
                return;
            };
            if let Some(node) = self.nodes.get_mut(&handle) {
                if node.fd.take().is_some() {
                    self.open -= 1;
                }
            }
        }
    }

    /// Drops a handle (the root is never dropped by the caller).
    pub fn remove(&mut self, handle: Handle) -> bool {
        let Some(node) = self.nodes.remove(&handle) else {
            return false;
        };
        if node.fd.is_some() {
            self.open -= 1;
            if node.origin.is_some() {
                self.lru.remove(&node.used);
            }
        }
        if let Some(o) = node.origin {
            self.drop_origin(&o, handle);
        }
        true
    }

    fn drop_origin(&mut self, origin: &Origin, handle: Handle) {
        if let Some(v) = self.by_origin.get_mut(origin) {
            v.retain(|h| *h != handle);
            if v.is_empty() {
                self.by_origin.remove(origin);
            }
        }
    }

    /// Pins open every node named `name` in `dir`, which is about to lose
    /// that name (unlink, or the target of a rename): afterwards it can
    /// only be reached through its fd. Nodes that can no longer be
    /// reopened stay stale.
    pub fn pin_named(&mut self, dir: Handle, name: &CString) {
        let origin = (dir, name.clone());
        let Some(handles) = self.by_origin.remove(&origin) else {
            return;
        };
        for h in handles {
            let _ = self.get(h);
            if let Some(node) = self.nodes.get_mut(&h) {
                node.origin = None;
                if node.fd.is_some() {
                    self.lru.remove(&node.used);
                }
            }
        }
    }

    /// Follows a rename of `old` to `new` (both ways for an exchange).
    pub fn renamed(&mut self, old: Origin, new: Origin, exchange: bool) {
        let moved = self.by_origin.remove(&old).unwrap_or_default();
        let back = if exchange {
            self.by_origin.remove(&new).unwrap_or_default()
        } else {
            Vec::new()
        };
        for h in &moved {
            if let Some(node) = self.nodes.get_mut(h) {
                node.origin = Some(new.clone());
            }
        }
        for h in &back {
            if let Some(node) = self.nodes.get_mut(h) {
                node.origin = Some(old.clone());
            }
        }
        if !moved.is_empty() {
            self.by_origin.entry(new).or_default().extend(moved);
        }
        if !back.is_empty() {
            self.by_origin.entry(old).or_default().extend(back);
        }
    }

    #[cfg(test)]
    fn open_fds(&self) -> usize {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn o_path(dir: std::os::fd::BorrowedFd<'_>, name: &str) -> OwnedFd {
        sys::openat(
            dir,
            &CString::new(name).expect("name"),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        )
        .expect("open")
    }

    fn tree(files: usize) -> (std::path::PathBuf, OwnedFd) {
        let dir =
            std::env::temp_dir().join(format!("rvisor-nodes-{}-{}", std::process::id(), files));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        for i in 0..files {
            std::fs::write(dir.join("sub").join(format!("f{i}")), b"x").expect("write");
        }
        let root = std::fs::File::open(&dir).expect("open root");
        (dir, OwnedFd::from(root))
    }

    /// Walks to `name` in `dir` and gives it a handle, as the server does.
    fn walk(t: &mut NodeTable, dir: Handle, name: &str) -> Handle {
        let dir_fd = t.get(dir).expect("dir fd");
        let fd = o_path(dir_fd.as_fd(), name);
        t.insert(fd, Some((dir, CString::new(name).expect("name"))))
            .expect("insert")
    }

    #[test]
    fn closed_nodes_reopen_as_the_same_inode_within_the_budget() {
        let (dir, root) = tree(50);
        let mut t = NodeTable::new(1, root, 16).expect("table");
        let sub = walk(&mut t, 1, "sub");
        let handles: Vec<Handle> = (0..50)
            .map(|i| walk(&mut t, sub, &format!("f{i}")))
            .collect();
        assert!(t.open_fds() <= 17, "{} fds open", t.open_fds());
        for (i, h) in handles.iter().enumerate() {
            let fd = t.get(*h).expect("reopen");
            let st = sys::fstat(fd.as_fd()).expect("stat");
            let want = std::fs::metadata(dir.join("sub").join(format!("f{i}"))).expect("meta");
            assert_eq!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&want));
            assert!(fd.as_raw_fd() >= 0);
        }
        assert!(t.open_fds() <= 17);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_name_given_to_another_inode_makes_the_closed_handle_stale() {
        let (dir, root) = tree(20);
        let mut t = NodeTable::new(1, root, 16).expect("table");
        let sub = walk(&mut t, 1, "sub");
        let f0 = walk(&mut t, sub, "f0");
        for i in 1..20 {
            walk(&mut t, sub, &format!("f{i}"));
        }
        // Behind the gofer's back: the name f0 goes to another inode (f1's:
        // a file made afresh could reuse f0's freed inode number).
        std::fs::rename(dir.join("sub/f1"), dir.join("sub/f0")).expect("rename");
        assert_eq!(t.get(f0).err(), Some(Errno::ESTALE));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
