//! Waiting on fds: poll, ppoll, select, pselect6 and epoll.

use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;

use super::file::{get_file, install_fd};
use super::{arg_fd, SysResult};
use crate::kernel::epoll::{wait_ready, EpollFile};
use crate::kernel::lock;
use crate::kernel::signals::UNBLOCKABLE;
use crate::kernel::task::Task;
use crate::vfs::OpenFile;

fn timespec_timeout(t: &Task, addr: u64) -> Result<Option<Duration>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let ts: libc::timespec = t.read_obj(addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)))
}

/// ppoll/pselect6/epoll_pwait: the mask holds during the wait; the old one
/// comes back after (or after the handler the wait was interrupted for).
fn set_temp_mask(t: &mut Task, addr: u64, size: u64) -> Result<(), Errno> {
    if addr == 0 {
        return Ok(());
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let mask: u64 = t.read_obj(addr)?;
    let mut ts = lock(&t.thread.sig);
    t.saved_mask = Some(ts.mask);
    ts.mask = mask & !UNBLOCKABLE;
    Ok(())
}

fn do_poll(t: &mut Task, fds_addr: u64, nfds: u64, timeout: Option<Duration>) -> SysResult {
    if nfds > t.proc.nofile_limit() || nfds > 1 << 20 {
        return Err(Errno::EINVAL);
    }
    let raw = t.read_bytes(fds_addr, nfds as usize * 8)?;
    let mut pfds: Vec<(i32, i16, i16)> = raw
        .chunks_exact(8)
        .map(|c| {
            (
                i32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                i16::from_le_bytes([c[4], c[5]]),
                0,
            )
        })
        .collect();
    let mut files: Vec<(Arc<OpenFile>, i16)> = Vec::new();
    let mut which = Vec::new();
    for (i, (fd, ev, re)) in pfds.iter_mut().enumerate() {
        if *fd < 0 {
            continue;
        }
        match get_file(t, *fd) {
            Ok(f) => {
                files.push((f, *ev | libc::POLLHUP | libc::POLLERR));
                which.push(i);
            }
            Err(_) => *re = libc::POLLNVAL,
        }
    }
    let nval = pfds.iter().any(|p| p.2 != 0);
    let revents = wait_ready(&files, if nval { Some(Duration::ZERO) } else { timeout })?;
    for (re, i) in revents.iter().zip(&which) {
        pfds[*i].2 = *re & (pfds[*i].1 | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (fd, ev, re) in &pfds {
        out.extend_from_slice(&fd.to_le_bytes());
        out.extend_from_slice(&ev.to_le_bytes());
        out.extend_from_slice(&re.to_le_bytes());
    }
    t.write_bytes(fds_addr, &out)?;
    Ok(pfds.iter().filter(|p| p.2 != 0).count() as u64)
}

pub fn poll(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let ms = a[2] as i32;
    let timeout = if ms < 0 {
        None
    } else {
        Some(Duration::from_millis(ms as u64))
    };
    do_poll(t, a[0], a[1], timeout)
}

pub fn ppoll(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let timeout = timespec_timeout(t, a[2])?;
    set_temp_mask(t, a[3], a[4])?;
    do_poll(t, a[0], a[1], timeout)
}

fn read_set(t: &Task, addr: u64, nfds: usize) -> Result<Vec<u64>, Errno> {
    let words = nfds.div_ceil(64);
    if addr == 0 {
        return Ok(vec![0; words]);
    }
    let raw = t.read_bytes(addr, words * 8)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

fn do_select(t: &mut Task, a: &[u64; 6], timeout: Option<Duration>) -> SysResult {
    let nfds = a[0] as i64;
    if nfds < 0 || nfds as u64 > t.proc.nofile_limit().max(1024) {
        return Err(Errno::EINVAL);
    }
    let n = nfds as usize;
    let sets = [
        read_set(t, a[1], n)?,
        read_set(t, a[2], n)?,
        read_set(t, a[3], n)?,
    ];
    let mut files = Vec::new();
    let mut fds = Vec::new();
    for fd in 0..n {
        let bit = |s: &Vec<u64>| s[fd / 64] & (1 << (fd % 64)) != 0;
        let (r, w, x) = (bit(&sets[0]), bit(&sets[1]), bit(&sets[2]));
        if !(r || w || x) {
            continue;
        }
        let f = get_file(t, fd as i32)?; // EBADF, as Linux
        let mut ev = 0i16;
        if r {
            ev |= libc::POLLIN;
        }
        if w {
            ev |= libc::POLLOUT;
        }
        if x {
            ev |= libc::POLLPRI;
        }
        files.push((f, ev));
        fds.push((fd, r, w, x));
    }
    let revents = wait_ready(&files, timeout)?;
    let mut out = [
        vec![0u64; sets[0].len()],
        vec![0u64; sets[0].len()],
        vec![0u64; sets[0].len()],
    ];
    let mut count = 0;
    for ((fd, r, w, x), re) in fds.iter().zip(revents) {
        let set = |o: &mut Vec<u64>| o[fd / 64] |= 1 << (fd % 64);
        if *r && re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            set(&mut out[0]);
            count += 1;
        }
        if *w && re & (libc::POLLOUT | libc::POLLERR) != 0 {
            set(&mut out[1]);
            count += 1;
        }
        if *x && re & libc::POLLPRI != 0 {
            set(&mut out[2]);
            count += 1;
        }
    }
    for (i, addr) in [a[1], a[2], a[3]].iter().enumerate() {
        if *addr != 0 {
            let bytes: Vec<u8> = out[i].iter().flat_map(|w| w.to_le_bytes()).collect();
            t.write_bytes(*addr, &bytes)?;
        }
    }
    Ok(count)
}

pub fn select(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let timeout = if a[4] == 0 {
        None
    } else {
        let tv: libc::timeval = t.read_obj(a[4])?;
        if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
            return Err(Errno::EINVAL);
        }
        Some(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
    };
    do_select(t, a, timeout)
}

pub fn pselect6(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let timeout = timespec_timeout(t, a[4])?;
    if a[5] != 0 {
        // struct { const sigset_t *ss; size_t ss_len; }
        let raw: [u64; 2] = [t.read_obj(a[5])?, t.read_obj(a[5] + 8)?];
        set_temp_mask(t, raw[0], raw[1])?;
    }
    do_select(t, a, timeout)
}

// ---- epoll --------------------------------------------------------------------

pub fn epoll_create(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if (a[0] as i32) <= 0 {
        return Err(Errno::EINVAL);
    }
    install_fd(
        t,
        OpenFile::with_display(
            Arc::new(EpollFile::new()),
            b"anon_inode:[eventpoll]".to_vec(),
            libc::O_RDWR,
        ),
        false,
    )
}

pub fn epoll_create1(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let flags = a[0] as i32;
    if flags & !libc::EPOLL_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let file = OpenFile::with_display(
        Arc::new(EpollFile::new()),
        b"anon_inode:[eventpoll]".to_vec(),
        libc::O_RDWR,
    );
    install_fd(t, file, flags & libc::EPOLL_CLOEXEC != 0)
}

pub fn epoll_ctl(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (epfd, op, fd, ev_addr) = (arg_fd(a[0]), a[1] as i32, arg_fd(a[2]), a[3]);
    let ep = get_file(t, epfd)?;
    let target = get_file(t, fd)?;
    let epoll = ep.ops.as_epoll().ok_or(Errno::EINVAL)?;
    if epfd == fd || target.ops.as_epoll().is_some() {
        return Err(Errno::EINVAL);
    }
    if target.ops.poll_fd().is_none() {
        // Regular files and directories do not support epoll.
        return Err(Errno::EPERM);
    }
    let (events, data) = if op == libc::EPOLL_CTL_DEL {
        (0, 0)
    } else {
        let raw = t.read_bytes(ev_addr, 12)?;
        (
            u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]),
            u64::from_le_bytes(raw[4..12].try_into().map_err(|_| Errno::EFAULT)?),
        )
    };
    epoll.ctl(op, fd, &target, events, data)?;
    Ok(0)
}

fn do_epoll_wait(t: &mut Task, a: &[u64; 6], timeout: Option<Duration>) -> SysResult {
    let (epfd, events_addr, max) = (arg_fd(a[0]), a[1], a[2] as i32);
    if max <= 0 || max > 1 << 20 {
        return Err(Errno::EINVAL);
    }
    let ep = get_file(t, epfd)?;
    let epoll = ep.ops.as_epoll().ok_or(Errno::EINVAL)?;
    let ready = epoll.wait(max as usize, timeout)?;
    let mut out = Vec::with_capacity(ready.len() * 12);
    for (ev, data) in &ready {
        out.extend_from_slice(&ev.to_le_bytes());
        out.extend_from_slice(&data.to_le_bytes());
    }
    t.write_bytes(events_addr, &out)?;
    Ok(ready.len() as u64)
}

fn ms_timeout(ms: i32) -> Option<Duration> {
    if ms < 0 {
        None
    } else {
        Some(Duration::from_millis(ms as u64))
    }
}

pub fn epoll_wait(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_epoll_wait(t, a, ms_timeout(a[3] as i32))
}

pub fn epoll_pwait(t: &mut Task, a: &[u64; 6]) -> SysResult {
    set_temp_mask(t, a[4], a[5])?;
    do_epoll_wait(t, a, ms_timeout(a[3] as i32))
}

pub fn epoll_pwait2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let timeout = timespec_timeout(t, a[3])?;
    set_temp_mask(t, a[4], a[5])?;
    do_epoll_wait(t, a, timeout)
}
