//! Extended attributes: the get/set/list/remove families, by path
//! (following symlinks or not) and by fd. Stored by the in-memory overlay
//! (`fsimpl/overlay.rs`); other filesystems answer EOPNOTSUPP.

use std::sync::Arc;

use nix::errno::Errno;

use super::file::get_file;
use super::fs::{check_access, resolve_at};
use super::{arg_fd, SysResult};
use crate::kernel::lock;
use crate::kernel::task::Task;
use crate::vfs::{FileType, Inode};

const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;
const XATTR_LIST_MAX: usize = 65536;

enum How {
    Follow,
    NoFollow,
    Fd,
}

fn target(t: &Task, how: How, arg: u64) -> Result<Arc<dyn Inode>, Errno> {
    match how {
        How::Fd => get_file(t, arg_fd(arg))?
            .inode()
            .cloned()
            .ok_or(Errno::EBADF),
        How::Follow | How::NoFollow => {
            let path = t.read_path(arg)?;
            let loc = resolve_at(t, libc::AT_FDCWD, &path, matches!(how, How::Follow), false)?;
            Ok(loc.inode().clone())
        }
    }
}

/// Reads and checks an attribute name: its namespace decides who may
/// use it.
fn read_name(t: &Task, addr: u64) -> Result<Vec<u8>, Errno> {
    let name = t.read_cstr(addr, XATTR_NAME_MAX + 1).map_err(|e| {
        if e == Errno::ENAMETOOLONG {
            Errno::ERANGE
        } else {
            e
        }
    })?;
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    let known = [&b"user."[..], b"trusted.", b"security.", b"system."];
    if !known
        .iter()
        .any(|p| name.starts_with(p) && name.len() > p.len())
    {
        return Err(Errno::EOPNOTSUPP);
    }
    if name.starts_with(b"system.") {
        // POSIX ACLs are not supported.
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(name)
}

/// trusted.* needs CAP_SYS_ADMIN, as on Linux.
fn privileged(t: &Task) -> bool {
    lock(&t.proc.creds).has_cap(crate::kernel::cap::SYS_ADMIN)
}

/// user.* attributes live only on regular files and directories.
fn user_ok(inode: &Arc<dyn Inode>, name: &[u8]) -> bool {
    !name.starts_with(b"user.")
        || matches!(inode.file_type(), FileType::Regular | FileType::Directory)
}

/// What setting and removing both require: a writable filesystem, root
/// for trusted.*, and a file type that takes user.* attributes.
fn may_change(t: &Task, inode: &Arc<dyn Inode>, name: &[u8]) -> Result<(), Errno> {
    if inode.read_only() {
        return Err(Errno::EROFS);
    }
    if name.starts_with(b"trusted.") && !privileged(t) {
        return Err(Errno::EPERM);
    }
    if !user_ok(inode, name) {
        return Err(Errno::EPERM);
    }
    Ok(())
}

fn do_set(t: &Task, how: How, a: &[u64; 6]) -> SysResult {
    let inode = target(t, how, a[0])?;
    let name = read_name(t, a[1])?;
    let (value, size, flags) = (a[2], a[3] as usize, a[4] as i32);
    if flags & !(libc::XATTR_CREATE | libc::XATTR_REPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    if size > XATTR_SIZE_MAX {
        return Err(Errno::E2BIG);
    }
    let value = t.read_bytes(value, size)?;
    may_change(t, &inode, &name)?;
    let st = inode.stat()?;
    let creds = lock(&t.proc.creds).clone();
    if name.starts_with(b"security.")
        && !creds.has_cap(crate::kernel::cap::FOWNER)
        && creds.euid != st.uid
    {
        return Err(Errno::EPERM);
    }
    check_access(&creds, &st, 2, false)?;
    inode.set_xattr(&name, &value, flags)?;
    Ok(0)
}

fn do_get(t: &Task, how: How, a: &[u64; 6]) -> SysResult {
    let inode = target(t, how, a[0])?;
    let name = read_name(t, a[1])?;
    let (buf, size) = (a[2], a[3] as usize);
    if name.starts_with(b"trusted.") && !privileged(t) {
        return Err(Errno::ENODATA);
    }
    if !user_ok(&inode, &name) {
        return Err(Errno::ENODATA);
    }
    check_access(&lock(&t.proc.creds), &inode.stat()?, 4, false)?;
    let value = inode.get_xattr(&name)?;
    if size == 0 {
        return Ok(value.len() as u64);
    }
    if size < value.len() {
        return Err(Errno::ERANGE);
    }
    t.write_bytes(buf, &value)?;
    Ok(value.len() as u64)
}

fn do_list(t: &Task, how: How, a: &[u64; 6]) -> SysResult {
    let inode = target(t, how, a[0])?;
    let (buf, size) = (a[1], a[2] as usize);
    let names = match inode.list_xattr() {
        Ok(n) => n,
        // Linux lists nothing on filesystems without xattrs.
        Err(Errno::EOPNOTSUPP) => Vec::new(),
        Err(e) => return Err(e),
    };
    let show_trusted = privileged(t);
    let mut out = Vec::new();
    for n in names
        .iter()
        .filter(|n| show_trusted || !n.starts_with(b"trusted."))
    {
        out.extend_from_slice(n);
        out.push(0);
    }
    if out.len() > XATTR_LIST_MAX {
        return Err(Errno::E2BIG);
    }
    if size == 0 {
        return Ok(out.len() as u64);
    }
    if size < out.len() {
        return Err(Errno::ERANGE);
    }
    t.write_bytes(buf, &out)?;
    Ok(out.len() as u64)
}

fn do_remove(t: &Task, how: How, a: &[u64; 6]) -> SysResult {
    let inode = target(t, how, a[0])?;
    let name = read_name(t, a[1])?;
    may_change(t, &inode, &name)?;
    check_access(&lock(&t.proc.creds), &inode.stat()?, 2, false)?;
    inode.remove_xattr(&name)?;
    Ok(0)
}

pub fn setxattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_set(t, How::Follow, a)
}
pub fn lsetxattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_set(t, How::NoFollow, a)
}
pub fn fsetxattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_set(t, How::Fd, a)
}
pub fn getxattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_get(t, How::Follow, a)
}
pub fn lgetxattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_get(t, How::NoFollow, a)
}
pub fn fgetxattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_get(t, How::Fd, a)
}
pub fn listxattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_list(t, How::Follow, a)
}
pub fn llistxattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_list(t, How::NoFollow, a)
}
pub fn flistxattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_list(t, How::Fd, a)
}
pub fn removexattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_remove(t, How::Follow, a)
}
pub fn lremovexattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_remove(t, How::NoFollow, a)
}
pub fn fremovexattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_remove(t, How::Fd, a)
}
