//! set*id: emulated credentials with Linux's rules. Privilege is "effective
//! uid 0" until capabilities are modelled (process-semantics issue).

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::lock;
use crate::kernel::task::Task;

const UNCHANGED: u32 = u32::MAX;

fn privileged(t: &Task) -> bool {
    lock(&t.proc.creds).euid == 0
}

pub fn setuid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let uid = a[0] as u32;
    if uid == UNCHANGED {
        return Err(Errno::EINVAL);
    }
    let p = privileged(t);
    let mut c = lock(&t.proc.creds);
    if p {
        c.ruid = uid;
        c.euid = uid;
        c.suid = uid;
    } else if uid == c.ruid || uid == c.suid {
        c.euid = uid;
    } else {
        return Err(Errno::EPERM);
    }
    Ok(0)
}

pub fn setgid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let gid = a[0] as u32;
    if gid == UNCHANGED {
        return Err(Errno::EINVAL);
    }
    let p = privileged(t);
    let mut c = lock(&t.proc.creds);
    if p {
        c.rgid = gid;
        c.egid = gid;
        c.sgid = gid;
    } else if gid == c.rgid || gid == c.sgid {
        c.egid = gid;
    } else {
        return Err(Errno::EPERM);
    }
    Ok(0)
}

/// setresuid/setresgid core: each id is unchanged (-1), or any value when
/// privileged, or one of the current three.
fn set_res(p: bool, cur: [u32; 3], new: [u32; 3]) -> Result<[u32; 3], Errno> {
    let mut out = cur;
    for i in 0..3 {
        if new[i] == UNCHANGED {
            continue;
        }
        if !p && !cur.contains(&new[i]) {
            return Err(Errno::EPERM);
        }
        out[i] = new[i];
    }
    Ok(out)
}

pub fn setresuid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let p = privileged(t);
    let mut c = lock(&t.proc.creds);
    let [r, e, s] = set_res(
        p,
        [c.ruid, c.euid, c.suid],
        [a[0] as u32, a[1] as u32, a[2] as u32],
    )?;
    (c.ruid, c.euid, c.suid) = (r, e, s);
    Ok(0)
}

pub fn setresgid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let p = privileged(t);
    let mut c = lock(&t.proc.creds);
    let [r, e, s] = set_res(
        p,
        [c.rgid, c.egid, c.sgid],
        [a[0] as u32, a[1] as u32, a[2] as u32],
    )?;
    (c.rgid, c.egid, c.sgid) = (r, e, s);
    Ok(0)
}

/// setreuid/setregid: the real id may become the real or effective one, the
/// effective id any of the three; the saved id follows the new effective
/// id when the real id is set or the effective id moves off the old real id.
fn set_re(p: bool, cur: [u32; 3], r: u32, e: u32) -> Result<[u32; 3], Errno> {
    let [or, oe, os] = cur;
    if !p {
        if r != UNCHANGED && r != or && r != oe {
            return Err(Errno::EPERM);
        }
        if e != UNCHANGED && e != or && e != oe && e != os {
            return Err(Errno::EPERM);
        }
    }
    let nr = if r == UNCHANGED { or } else { r };
    let ne = if e == UNCHANGED { oe } else { e };
    let ns = if r != UNCHANGED || (e != UNCHANGED && e != or) {
        ne
    } else {
        os
    };
    Ok([nr, ne, ns])
}

pub fn setreuid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let p = privileged(t);
    let mut c = lock(&t.proc.creds);
    let [r, e, s] = set_re(p, [c.ruid, c.euid, c.suid], a[0] as u32, a[1] as u32)?;
    (c.ruid, c.euid, c.suid) = (r, e, s);
    Ok(0)
}

pub fn setregid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let p = privileged(t);
    let mut c = lock(&t.proc.creds);
    let [r, e, s] = set_re(p, [c.rgid, c.egid, c.sgid], a[0] as u32, a[1] as u32)?;
    (c.rgid, c.egid, c.sgid) = (r, e, s);
    Ok(0)
}

pub fn setgroups(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let n = a[0] as i64;
    if !(0..=65536).contains(&n) {
        return Err(Errno::EINVAL);
    }
    if !privileged(t) {
        return Err(Errno::EPERM);
    }
    let raw = t.read_bytes(a[1], n as usize * 4)?;
    let groups = raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    lock(&t.proc.creds).groups = groups;
    Ok(0)
}

pub fn setfsuid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(lock(&t.proc.creds).euid as u64)
}

pub fn setfsgid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(lock(&t.proc.creds).egid as u64)
}
