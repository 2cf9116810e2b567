//! Path resolution: symlinks, `.`, `..`, mount crossings, trailing slashes.

use std::sync::Arc;

use nix::errno::Errno;

use super::{FileType, Inode, Vfs, VfsResult, MAX_SYMLINKS, NAME_MAX, PATH_MAX};

/// A resolved position in the tree: the chain of inodes from the root,
/// their names, and the mount namespace it lies in (whose mount table
/// every step from here consults). `..` pops the chain, so it can never
/// leave the root.
#[derive(Clone)]
pub struct Location {
    ns: Arc<Vfs>,
    /// The absolute path, each name preceded by a `/` ("" at the root):
    /// the names of the chain, and the key of the mount table at once.
    path: Vec<u8>,
    /// Each inode from the root, with where its `/` starts in `path`
    /// (the root's is 0, and it has no name).
    chain: Vec<(usize, Arc<dyn Inode>)>,
}

impl Location {
    pub(super) fn root(ns: Arc<Vfs>, root: Arc<dyn Inode>) -> Location {
        Location {
            ns,
            path: Vec::new(),
            chain: vec![(0, root)],
        }
    }

    /// The mount namespace this location lies in.
    pub fn ns(&self) -> &Arc<Vfs> {
        &self.ns
    }

    /// The same place in another mount namespace (a copy of this one).
    pub fn in_ns(&self, ns: &Arc<Vfs>) -> Location {
        Location {
            ns: ns.clone(),
            path: self.path.clone(),
            chain: self.chain.clone(),
        }
    }

    pub fn inode(&self) -> &Arc<dyn Inode> {
        // The chain always holds the root.
        &self.chain[self.chain.len() - 1].1
    }

    pub fn is_root(&self) -> bool {
        self.chain.len() == 1
    }

    /// The absolute path, as getcwd and /proc show it.
    pub fn path(&self) -> Vec<u8> {
        if self.is_root() {
            return b"/".to_vec();
        }
        self.path.clone()
    }

    /// The last component's name (empty for the root).
    pub fn name(&self) -> &[u8] {
        if self.is_root() {
            return &[];
        }
        &self.path[self.chain[self.chain.len() - 1].0 + 1..]
    }

    pub fn parent(&self) -> Location {
        let mut p = self.clone();
        p.pop();
        p
    }

    fn pop(&mut self) {
        if self.chain.len() > 1 {
            if let Some((start, _)) = self.chain.pop() {
                self.path.truncate(start);
            }
        }
    }

    /// `inode` as if named `name` in this directory: how an O_TMPFILE file,
    /// which has no name, gets a location.
    pub fn with_child(&self, name: &[u8], inode: Arc<dyn Inode>) -> Location {
        let mut l = self.clone();
        l.push(name, inode);
        l
    }

    fn push(&mut self, name: &[u8], inode: Arc<dyn Inode>) {
        self.chain.push((self.path.len(), inode));
        self.path.push(b'/');
        self.path.extend_from_slice(name);
    }

    /// Replaces the last inode (by what is mounted over it).
    fn replace_top(&mut self, inode: Arc<dyn Inode>) {
        if let Some(top) = self.chain.last_mut() {
            top.1 = inode;
        }
    }

    /// Whether any directory on the chain was removed (getcwd's ENOENT).
    pub fn unlinked(&self) -> bool {
        self.chain.iter().any(|(_, i)| i.unlinked())
    }

    /// Whether `self` is `other` or lies below it (for rename's EINVAL).
    pub fn is_within(&self, other: &Location) -> bool {
        self.chain.len() >= other.chain.len()
            && self
                .chain
                .iter()
                .zip(other.chain.iter())
                .all(|(a, b)| Arc::ptr_eq(&a.1, &b.1))
    }
}

/// openat2's RESOLVE_* restrictions on a path walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resolve {
    /// RESOLVE_NO_XDEV: never cross a mount point (EXDEV).
    pub no_xdev: bool,
    /// RESOLVE_NO_MAGICLINKS: never follow a /proc magic link (ELOOP).
    pub no_magiclinks: bool,
    /// RESOLVE_NO_SYMLINKS: never follow any symlink (ELOOP).
    pub no_symlinks: bool,
    /// RESOLVE_BENEATH: absolute paths and links, and `..` above the
    /// starting directory, are refused (EXDEV).
    pub beneath: bool,
    /// RESOLVE_IN_ROOT: the starting directory is the root for this walk.
    pub in_root: bool,
}

/// One walk's fixed parameters.
struct WalkCtx<'a> {
    root: &'a Location,
    /// RESOLVE_BENEATH's floor: the starting directory.
    floor: Option<&'a Location>,
    how: Resolve,
}

impl Vfs {
    /// Resolves `path` relative to `start` (ignored for absolute paths).
    /// `follow` says whether a symlink in the last component is followed.
    pub fn resolve(
        &self,
        root: &Location,
        start: &Location,
        path: &[u8],
        follow: bool,
    ) -> VfsResult<Location> {
        self.resolve_with(root, start, path, follow, Resolve::default())
    }

    /// [`Vfs::resolve`] under openat2's restrictions.
    pub fn resolve_with(
        &self,
        root: &Location,
        start: &Location,
        path: &[u8],
        follow: bool,
        how: Resolve,
    ) -> VfsResult<Location> {
        check_path(path)?;
        let mut depth = 0;
        let root = if how.in_root { start } else { root };
        let ctx = WalkCtx {
            root,
            floor: how.beneath.then_some(start),
            how,
        };
        self.walk(&ctx, start, path, follow, &mut depth)
    }

    /// Resolves everything but the last component: returns the parent
    /// directory and the final name ("." or ".." possible, and "" for "/").
    pub fn resolve_parent(
        &self,
        root: &Location,
        start: &Location,
        path: &[u8],
    ) -> VfsResult<(Location, Vec<u8>)> {
        self.resolve_parent_with(root, start, path, Resolve::default())
    }

    /// [`Vfs::resolve_parent`] under openat2's restrictions.
    pub fn resolve_parent_with(
        &self,
        root: &Location,
        start: &Location,
        path: &[u8],
        how: Resolve,
    ) -> VfsResult<(Location, Vec<u8>)> {
        let root = if how.in_root { start } else { root };
        self.resolve_parent_below(root, how.beneath.then_some(start), start, path, how)
    }

    /// [`Vfs::resolve_parent_with`] for a walk that continues another one
    /// (a symlink's target): `root` is the walk's root as it is, and
    /// `floor` the first walk's RESOLVE_BENEATH floor, which a later walk
    /// from deeper down must not climb above either.
    pub fn resolve_parent_below(
        &self,
        root: &Location,
        floor: Option<&Location>,
        start: &Location,
        path: &[u8],
        how: Resolve,
    ) -> VfsResult<(Location, Vec<u8>)> {
        check_path(path)?;
        let ctx = WalkCtx { root, floor, how };
        let trimmed = trim_trailing_slashes(path);
        let (dir, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let parent = if dir.is_empty() {
            start.clone()
        } else {
            let mut depth = 0;
            self.walk(&ctx, start, dir, true, &mut depth)?
        };
        if parent.inode().file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        // The final name is looked up in `parent` too.
        if !name.is_empty() {
            Searcher::current().check(parent.inode())?;
        }
        Ok((parent, name.to_vec()))
    }

    /// Looks up one name in a directory location, crossing mounts.
    pub fn step(&self, loc: &Location, name: &[u8]) -> VfsResult<Location> {
        let mut next = loc.clone();
        self.step_into(&mut next, name)?;
        Ok(next)
    }

    /// The mount point a location lies in ("/" for the root filesystem).
    pub fn mount_of(&self, loc: &Location) -> Vec<u8> {
        let path = loc.path();
        let mut best = b"/".to_vec();
        for m in loc.ns.mount_points() {
            let inside = path == m || (path.starts_with(&m) && path.get(m.len()) == Some(&b'/'));
            if inside && m.len() > best.len() {
                best = m;
            }
        }
        best
    }

    /// Moves `loc` to its child `name`, or to what is mounted there;
    /// true when it stepped onto a mount. `loc` is left as it was on
    /// error.
    fn step_into(&self, loc: &mut Location, name: &[u8]) -> VfsResult<bool> {
        let dir = loc.inode();
        if dir.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let child = match dir.lookup(name) {
            Ok(c) => c,
            // A mount whose mount point the image lacks (runc would have
            // created it): the mounted tree is there all the same.
            Err(Errno::ENOENT) => {
                let mut path = loc.path();
                if path.last() != Some(&b'/') {
                    path.push(b'/');
                }
                path.extend_from_slice(name);
                let mounted = match loc.ns.mount_at(&path) {
                    Some(m) => m,
                    // A directory on the way to such a mount point (the
                    // spec mounts /sys/fs/cgroup over an empty /sys):
                    // an empty read-only directory, as runc would have
                    // made one.
                    None if loc.ns.has_mount_below(&path) => {
                        Arc::new(crate::fsimpl::simple::StaticDir::new(0o755))
                    }
                    None => return Err(Errno::ENOENT),
                };
                loc.push(name, mounted);
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        loc.push(name, child);
        match loc.ns.mount_at(&loc.path) {
            Some(mounted) => {
                loc.replace_top(mounted);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn walk(
        &self,
        ctx: &WalkCtx<'_>,
        start: &Location,
        path: &[u8],
        follow: bool,
        depth: &mut u32,
    ) -> VfsResult<Location> {
        let root = ctx.root;
        let how = ctx.how;
        let mut loc = if path.first() == Some(&b'/') {
            if how.beneath {
                return Err(Errno::EXDEV);
            }
            if how.no_xdev && self.mount_of(start) != self.mount_of(root) {
                return Err(Errno::EXDEV);
            }
            root.clone()
        } else {
            start.clone()
        };
        let trailing_slash = path.len() > 1 && path.last() == Some(&b'/');
        let mut comps = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .peekable();
        let searcher = Searcher::current();
        while let Some(comp) = comps.next() {
            let last = comps.peek().is_none();
            if loc.inode().file_type() != FileType::Directory {
                return Err(Errno::ENOTDIR);
            }
            searcher.check(loc.inode())?;
            if comp == b"." {
                continue;
            }
            if comp == b".." {
                if let Some(floor) = ctx.floor {
                    if loc.chain.len() <= floor.chain.len() {
                        return Err(Errno::EXDEV);
                    }
                }
                // Never above the task's root.
                if loc.chain.len() > root.chain.len() || !loc.is_within(root) {
                    if how.no_xdev && loc.chain.len() > 1 && loc.ns.mount_at(&loc.path()).is_some()
                    {
                        return Err(Errno::EXDEV);
                    }
                    loc.pop();
                }
                continue;
            }
            if comp.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            let crossed = self.step_into(&mut loc, comp)?;
            if crossed && how.no_xdev {
                return Err(Errno::EXDEV);
            }
            if loc.inode().file_type() == FileType::Symlink && (!last || follow || trailing_slash) {
                // The link is resolved from the directory it lies in.
                let link = loc.inode().clone();
                loc.pop();
                if how.no_symlinks || (how.no_magiclinks && link.is_magic_link()) {
                    return Err(Errno::ELOOP);
                }
                *depth += 1;
                if *depth > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                if let Some(jump) = link.magic_target() {
                    // Where the fd points, whatever its name says now. A
                    // walk confined by BENEATH or IN_ROOT never gets here
                    // (they refuse magic links); NO_XDEV refuses a jump to
                    // another mount.
                    if how.no_xdev && self.mount_of(&jump) != self.mount_of(&loc) {
                        return Err(Errno::EXDEV);
                    }
                    loc = jump;
                    continue;
                }
                let target = link.readlink()?;
                if target.is_empty() {
                    return Err(Errno::ENOENT);
                }
                loc = self.walk(ctx, &loc, &target, true, depth)?;
                continue;
            }
        }
        if trailing_slash && loc.inode().file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(loc)
    }
}

/// Who is walking a path, for the search (execute) permission Linux
/// requires on every directory a name is looked up in. Privileged callers
/// (euid 0: CAP_DAC_OVERRIDE) and the sentry's own lookups skip the check.
struct Searcher(Option<(u32, u32, Vec<u32>)>);

impl Searcher {
    fn current() -> Searcher {
        Searcher(crate::kernel::current().and_then(|p| {
            let c = crate::kernel::lock(&p.creds);
            // CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH both grant search.
            let bypass = c.has_cap(crate::kernel::cap::DAC_OVERRIDE)
                || c.has_cap(crate::kernel::cap::DAC_READ_SEARCH);
            (!bypass).then(|| (c.euid, c.egid, c.groups.clone()))
        }))
    }

    fn check(&self, dir: &std::sync::Arc<dyn super::Inode>) -> VfsResult<()> {
        let Some((uid, gid, groups)) = &self.0 else {
            return Ok(());
        };
        let st = dir.access_stat()?;
        let bits = if *uid == st.uid {
            st.mode >> 6
        } else if *gid == st.gid || groups.contains(&st.gid) {
            st.mode >> 3
        } else {
            st.mode
        };
        if bits & 1 == 0 {
            return Err(Errno::EACCES);
        }
        Ok(())
    }
}

fn check_path(path: &[u8]) -> VfsResult<()> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

fn trim_trailing_slashes(p: &[u8]) -> &[u8] {
    let mut end = p.len();
    while end > 1 && p[end - 1] == b'/' {
        end -= 1;
    }
    &p[..end]
}
