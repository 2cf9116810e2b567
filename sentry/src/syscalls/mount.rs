//! mount(2) and umount2(2) inside the sandbox: tmpfs, proc, sysfs and bind
//! mounts, read-only remounts, moves, and propagation changes (accepted:
//! the sandbox has no mount propagation to change). All need
//! CAP_SYS_ADMIN; all act on the sandbox's own mount table, never the
//! host's.

use std::sync::Arc;

use nix::errno::Errno;

use super::fs::resolve_at;
use super::SysResult;
use crate::fsimpl::overlay::OverlayFs;
use crate::fsimpl::readonly::ReadOnlyView;
use crate::kernel::task::Task;
use crate::kernel::{cap, lock};
use crate::vfs::{FileType, Inode};

const MS_RDONLY: u64 = 1;
const MS_REMOUNT: u64 = 32;
const MS_BIND: u64 = 4096;
const MS_MOVE: u64 = 8192;
const MS_UNBINDABLE: u64 = 1 << 17;
const MS_PRIVATE: u64 = 1 << 18;
const MS_SLAVE: u64 = 1 << 19;
const MS_SHARED: u64 = 1 << 20;
/// The magic number old callers put in the top 16 bits of the flags.
const MS_MGC_MSK: u64 = 0xffff_0000;
const MS_MGC_VAL: u64 = 0xC0ED_0000;

const MNT_FORCE: u64 = 1;
const MNT_DETACH: u64 = 2;
const MNT_EXPIRE: u64 = 4;
const UMOUNT_NOFOLLOW: u64 = 8;

fn require_admin(t: &Task) -> Result<(), Errno> {
    if lock(&t.proc.creds).has_cap(cap::SYS_ADMIN) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// Reads an optional NUL-terminated string argument (NULL is empty).
fn opt_string(t: &Task, addr: u64) -> Result<Vec<u8>, Errno> {
    if addr == 0 {
        return Ok(Vec::new());
    }
    t.read_path(addr)
}

/// The `mode=` option of tmpfs data ("size=64k,mode=1777"), default 1777.
fn tmpfs_mode(data: &[u8]) -> Result<u32, Errno> {
    let mut mode = 0o1777;
    for opt in data.split(|&b| b == b',') {
        if let Some(m) = opt.strip_prefix(b"mode=") {
            let s = std::str::from_utf8(m).map_err(|_| Errno::EINVAL)?;
            mode = u32::from_str_radix(s, 8).map_err(|_| Errno::EINVAL)? & 0o7777;
        }
    }
    Ok(mode)
}

pub fn mount(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let mut flags = a[3];
    if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags &= !MS_MGC_MSK;
    }
    require_admin(t)?;
    let target_path = t.read_path(a[1])?;
    let target = resolve_at(t, libc::AT_FDCWD, &target_path, true, false)?;
    let at = target.path();
    let vfs = target.ns().clone();
    let is_mount_point = at == b"/" || vfs.mount_at(&at).is_some();

    // Propagation types: the sandbox's mounts propagate nowhere.
    if flags & (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE) != 0 {
        return if is_mount_point {
            Ok(0)
        } else {
            Err(Errno::EINVAL)
        };
    }
    if flags & MS_REMOUNT != 0 {
        if at == b"/" {
            // The root's writability is the container's configuration.
            return Err(Errno::EPERM);
        }
        let fs = vfs.mount_at(&at).ok_or(Errno::EINVAL)?;
        let fs = if flags & MS_RDONLY != 0 {
            ReadOnlyView::of(fs)
        } else {
            ReadOnlyView::unwrap(&fs)
        };
        vfs.replace_mount(&at, fs);
        return Ok(0);
    }
    if flags & MS_MOVE != 0 {
        let source = opt_string(t, a[0])?;
        let from = resolve_at(t, libc::AT_FDCWD, &source, true, false)?.path();
        if from == b"/" {
            return Err(Errno::EINVAL);
        }
        let fs = vfs.mount_at(&from).ok_or(Errno::EINVAL)?;
        if target.is_within(&resolve_at(t, libc::AT_FDCWD, &source, true, false)?) {
            return Err(Errno::EINVAL);
        }
        vfs.unmount(&from);
        vfs.mount(&at, fs);
        return Ok(0);
    }
    let fs: Arc<dyn Inode> = if flags & MS_BIND != 0 {
        let source = opt_string(t, a[0])?;
        let src = resolve_at(t, libc::AT_FDCWD, &source, true, false)?;
        let src_dir = src.inode().file_type() == FileType::Directory;
        let dst_dir = target.inode().file_type() == FileType::Directory;
        if src_dir != dst_dir {
            return Err(if src_dir {
                Errno::ENOTDIR
            } else {
                Errno::EISDIR
            });
        }
        // As on Linux, MS_RDONLY on the bind itself is ignored: a
        // read-only bind takes a remount.
        src.inode().clone()
    } else {
        if target.inode().file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let fstype = opt_string(t, a[2])?;
        let data = opt_string(t, a[4])?;
        let fs: Arc<dyn Inode> = match fstype.as_slice() {
            b"tmpfs" => OverlayFs::tmpfs(tmpfs_mode(&data)?),
            b"proc" => crate::fsimpl::proc::new_procfs(t.proc.pidns.clone()),
            b"sysfs" => Arc::new(crate::fsimpl::simple::StaticDir::new(0o555)),
            b"" => return Err(Errno::EINVAL),
            _ => return Err(Errno::ENODEV),
        };
        if flags & MS_RDONLY != 0 {
            ReadOnlyView::of(fs)
        } else {
            fs
        }
    };
    vfs.mount(&at, fs);
    Ok(0)
}

pub fn umount2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let flags = a[1];
    if flags & !(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW) != 0
        || (flags & MNT_EXPIRE != 0 && flags & (MNT_FORCE | MNT_DETACH) != 0)
    {
        return Err(Errno::EINVAL);
    }
    require_admin(t)?;
    let path = t.read_path(a[0])?;
    let follow = flags & UMOUNT_NOFOLLOW == 0;
    let loc = resolve_at(t, libc::AT_FDCWD, &path, follow, false)?;
    let at = loc.path();
    if at == b"/" {
        return Err(Errno::EBUSY);
    }
    if !loc.ns().unmount(&at) {
        return Err(Errno::EINVAL);
    }
    // Files still open below it keep their filesystem (a lazy unmount).
    Ok(0)
}

/// Namespaces unshare(2) cannot make (yet): it answers EPERM, as to a
/// caller without the privilege, which programs that probe take in stride.
const UNSHARE_UNSUPPORTED: i32 = libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWCGROUP
    | 0x80; // CLONE_NEWTIME

/// What the sentry's tasks already have unshared (each process its own fd
/// table and fs context, no SysV undo sharing): accepted as they are.
const UNSHARE_NOOP: i32 = libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SYSVSEM
    | libc::CLONE_THREAD
    | libc::CLONE_SIGHAND
    | libc::CLONE_VM;

pub fn unshare(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let flags = a[0] as i32;
    if flags & !(UNSHARE_NOOP | UNSHARE_UNSUPPORTED | libc::CLONE_NEWNS) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & UNSHARE_UNSUPPORTED != 0 {
        crate::kernel::kernel().log_unimplemented(
            libc::SYS_unshare as u64 | 1 << 32,
            "unshare (namespaces other than mount)",
        );
        return Err(Errno::EPERM);
    }
    if flags & libc::CLONE_NEWNS != 0 {
        require_admin(t)?;
        // A copy of the caller's namespace, its own from now on: the root
        // and cwd are the same places in the copy.
        let mut fs = lock(&t.proc.fs);
        let ns = fs.root.ns().copy();
        fs.root = fs.root.in_ns(&ns);
        fs.cwd = fs.cwd.in_ns(&ns);
    }
    Ok(0)
}

pub fn pivot_root(t: &mut Task, a: &[u64; 6]) -> SysResult {
    require_admin(t)?;
    let new_path = t.read_path(a[0])?;
    let old_path = t.read_path(a[1])?;
    let new_root = resolve_at(t, libc::AT_FDCWD, &new_path, true, false)?;
    let put_old = resolve_at(t, libc::AT_FDCWD, &old_path, true, false)?;
    for l in [&new_root, &put_old] {
        if l.inode().file_type() != crate::vfs::FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
    }
    let ns = new_root.ns().clone();
    // Both in the caller's namespace, whose root it must have (not a
    // chroot inside it).
    let caller_root = lock(&t.proc.fs).root.clone();
    if !Arc::ptr_eq(put_old.ns(), &ns) || !Arc::ptr_eq(caller_root.ns(), &ns) {
        return Err(Errno::EINVAL);
    }
    if !caller_root.is_root() {
        return Err(Errno::EINVAL);
    }
    let (newp, oldp) = (new_root.path(), put_old.path());
    // Linux's order: either on the root's own filesystem is EBUSY; then
    // new_root must be a mount point and put_old reachable under it.
    if ns.mount_of(&new_root) == b"/" || ns.mount_of(&put_old) == b"/" {
        return Err(Errno::EBUSY);
    }
    if ns.mount_of(&new_root) != newp {
        return Err(Errno::EINVAL);
    }
    ns.pivot_root(&newp, &oldp)?;
    // Every process of the namespace: a root or cwd at the old root or at
    // new_root is now at the new root; others keep their place, under its
    // new path.
    let top = ns.root();
    let old_at = &oldp[newp.len()..];
    let rebase = |l: &crate::vfs::Location| -> crate::vfs::Location {
        let p = l.path();
        let inside = p == newp || (p.starts_with(&newp) && p.get(newp.len()) == Some(&b'/'));
        let moved = if l.is_root() || p == newp {
            b"/".to_vec()
        } else if inside {
            p[newp.len()..].to_vec()
        } else {
            [old_at, &p[..]].concat()
        };
        ns.resolve(&top, &top, &moved, true)
            .unwrap_or_else(|_| top.clone())
    };
    for p in crate::kernel::kernel().live_processes() {
        let mut fs = lock(&p.fs);
        if !Arc::ptr_eq(fs.root.ns(), &ns) {
            continue;
        }
        fs.root = rebase(&fs.root);
        fs.cwd = rebase(&fs.cwd);
    }
    Ok(0)
}
