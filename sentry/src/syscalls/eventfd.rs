//! eventfd and timerfd: host objects the sentry creates and owns, so reads,
//! writes and polling behave exactly as Linux's; the application reaches
//! them only through the sentry's fd table.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;

use super::file::{get_file, install_fd};
use super::{arg_fd, SysResult};
use crate::fsimpl::host::{HostFile, HostKind};
use crate::kernel::task::{pod_zeroed, Task};
use crate::vfs::OpenFile;

fn install_host(t: &Task, raw: i32, name: &str, cloexec: bool, nonblock: bool) -> SysResult {
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the fd was just created for us.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let flags = libc::O_RDWR | if nonblock { libc::O_NONBLOCK } else { 0 };
    let file = OpenFile::with_display(
        Arc::new(HostFile::new(fd, HostKind::Event)),
        format!("anon_inode:[{name}]").into_bytes(),
        flags,
    );
    install_fd(t, file, cloexec)
}

pub fn eventfd(t: &mut Task, a: &[u64; 6]) -> SysResult {
    eventfd2(t, &[a[0], 0, 0, 0, 0, 0])
}

pub fn eventfd2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (init, flags) = (a[0] as u32, a[1] as i32);
    if flags & !(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: eventfd with validated flags; always close-on-exec for the sentry.
    let raw = unsafe {
        libc::eventfd(
            init,
            (flags & (libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE)) | libc::EFD_CLOEXEC,
        )
    };
    install_host(
        t,
        raw,
        "eventfd",
        flags & libc::EFD_CLOEXEC != 0,
        flags & libc::EFD_NONBLOCK != 0,
    )
}

pub fn timerfd_create(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (clock, flags) = (a[0] as i32, a[1] as i32);
    if !matches!(
        clock,
        libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME
    ) {
        return Err(
            if matches!(
                clock,
                libc::CLOCK_REALTIME_ALARM | libc::CLOCK_BOOTTIME_ALARM
            ) {
                Errno::EPERM
            } else {
                Errno::EINVAL
            },
        );
    }
    if flags & !(libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: timerfd_create with validated arguments.
    let raw =
        unsafe { libc::timerfd_create(clock, (flags & libc::TFD_NONBLOCK) | libc::TFD_CLOEXEC) };
    install_host(
        t,
        raw,
        "timerfd",
        flags & libc::TFD_CLOEXEC != 0,
        flags & libc::TFD_NONBLOCK != 0,
    )
}

fn timer_host_fd(t: &Task, fd: i32) -> Result<(Arc<OpenFile>, i32), Errno> {
    let f = get_file(t, fd)?;
    if f.ops.host_kind() != Some(HostKind::Event) || !f.display.starts_with(b"anon_inode:[timerfd]")
    {
        return Err(Errno::EINVAL);
    }
    let h = f.ops.host_fd().ok_or(Errno::EINVAL)?;
    Ok((f, h))
}

pub fn timerfd_settime(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, flags, new_addr, old_addr) = (arg_fd(a[0]), a[1] as i32, a[2], a[3]);
    if flags & !(libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    let (_f, h) = timer_host_fd(t, fd)?;
    let new: libc::itimerspec = t.read_obj(new_addr)?;
    let mut old: libc::itimerspec = pod_zeroed();
    // SAFETY: settime on our own timerfd with structs we own; the kernel
    // validates the values (EINVAL).
    if unsafe { libc::timerfd_settime(h, flags, &new, &mut old) } < 0 {
        return Err(Errno::last());
    }
    if old_addr != 0 {
        t.write_obj(old_addr, &old)?;
    }
    Ok(0)
}

pub fn timerfd_gettime(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (_f, h) = timer_host_fd(t, arg_fd(a[0]))?;
    let mut cur: libc::itimerspec = pod_zeroed();
    // SAFETY: gettime fills a struct we own.
    if unsafe { libc::timerfd_gettime(h, &mut cur) } < 0 {
        return Err(Errno::last());
    }
    t.write_obj(a[1], &cur)?;
    Ok(0)
}
