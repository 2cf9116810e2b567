//! inotify_init, inotify_init1, inotify_add_watch, inotify_rm_watch. The
//! watches and queues are in `vfs/inotify.rs`; the events come from the
//! file syscalls.

use nix::errno::Errno;

use super::file::{get_file, install_fd};
use super::fs::{check_access, resolve_at};
use super::{arg_fd, SysResult};
use crate::kernel::lock;
use crate::kernel::task::Task;
use crate::vfs::inotify::{
    Inotify, IN_ALL_EVENTS, IN_DONT_FOLLOW, IN_MASK_ADD, IN_MASK_CREATE, IN_ONLYDIR,
};
use crate::vfs::{FileType, OpenFile};

fn do_init(t: &mut Task, flags: i32) -> SysResult {
    if flags & !(libc::IN_NONBLOCK | libc::IN_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let inst = Inotify::new(flags & libc::IN_NONBLOCK != 0)?;
    let file = OpenFile::with_display(
        inst,
        b"anon_inode:inotify".to_vec(),
        libc::O_RDONLY | (flags & libc::IN_NONBLOCK),
    );
    install_fd(t, file, flags & libc::IN_CLOEXEC != 0)
}

pub fn inotify_init(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    do_init(t, 0)
}

pub fn inotify_init1(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_init(t, a[0] as i32)
}

fn instance(t: &Task, fd: i32) -> Result<std::sync::Arc<Inotify>, Errno> {
    get_file(t, fd)?.ops.clone().inotify().ok_or(Errno::EINVAL)
}

pub fn inotify_add_watch(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, path_addr, mask) = (arg_fd(a[0]), a[1], a[2] as u32);
    let inst = instance(t, fd)?;
    if mask & IN_ALL_EVENTS == 0 || (mask & IN_MASK_ADD != 0 && mask & IN_MASK_CREATE != 0) {
        return Err(Errno::EINVAL);
    }
    let path = t.read_path(path_addr)?;
    let loc = resolve_at(t, libc::AT_FDCWD, &path, mask & IN_DONT_FOLLOW == 0, false)?;
    let inode = loc.inode().clone();
    if mask & IN_ONLYDIR != 0 && inode.file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    check_access(&lock(&t.proc.creds), &inode.stat()?, 4, false)?;
    Ok(inst.add_watch(&inode, mask)? as u64)
}

pub fn inotify_rm_watch(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let inst = instance(t, arg_fd(a[0]))?;
    inst.rm_watch(a[1] as i32)?;
    Ok(0)
}
