//! set*id: emulated credentials with Linux's rules. Privilege is "effective
//! uid 0" until capabilities are modelled (process-semantics issue).

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::lock;
use crate::kernel::task::Task;

const UNCHANGED: u32 = u32::MAX;

/// CAP_SETUID: set*uid may take any id.
fn may_set_uids(t: &Task) -> bool {
    lock(&t.proc.creds).has_cap(crate::kernel::cap::SETUID)
}

/// CAP_SETGID: set*gid and setgroups may take any id.
fn may_set_gids(t: &Task) -> bool {
    lock(&t.proc.creds).has_cap(crate::kernel::cap::SETGID)
}

pub fn setuid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let uid = a[0] as u32;
    if uid == UNCHANGED {
        return Err(Errno::EINVAL);
    }
    let p = may_set_uids(t);
    let mut c = lock(&t.proc.creds);
    let old = [c.ruid, c.euid, c.suid];
    if p {
        c.ruid = uid;
        c.euid = uid;
        c.suid = uid;
    } else if uid == c.ruid || uid == c.suid {
        c.euid = uid;
    } else {
        return Err(Errno::EPERM);
    }
    let new = [c.ruid, c.euid, c.suid];
    c.caps.after_setuid(old, new);
    Ok(0)
}

pub fn setgid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let gid = a[0] as u32;
    if gid == UNCHANGED {
        return Err(Errno::EINVAL);
    }
    let p = may_set_gids(t);
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
    let p = may_set_uids(t);
    let mut c = lock(&t.proc.creds);
    let old = [c.ruid, c.euid, c.suid];
    let [r, e, s] = set_res(p, old, [a[0] as u32, a[1] as u32, a[2] as u32])?;
    (c.ruid, c.euid, c.suid) = (r, e, s);
    c.caps.after_setuid(old, [r, e, s]);
    Ok(0)
}

pub fn setresgid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let p = may_set_gids(t);
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
    let p = may_set_uids(t);
    let mut c = lock(&t.proc.creds);
    let old = [c.ruid, c.euid, c.suid];
    let [r, e, s] = set_re(p, old, a[0] as u32, a[1] as u32)?;
    (c.ruid, c.euid, c.suid) = (r, e, s);
    c.caps.after_setuid(old, [r, e, s]);
    Ok(0)
}

pub fn setregid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let p = may_set_gids(t);
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
    if !may_set_gids(t) {
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

const CAP_V1: u32 = 0x1998_0330;
const CAP_V2: u32 = 0x2007_1026;
const CAP_V3: u32 = 0x2008_0522;

/// Reads the capget/capset header; an unknown version is answered with the
/// preferred one, as Linux does (EINVAL).
fn cap_header(t: &Task, hdr: u64) -> Result<(usize, i32), Errno> {
    let h: [u32; 2] = t.read_obj(hdr)?;
    match h[0] {
        CAP_V1 => Ok((1, h[1] as i32)),
        CAP_V2 | CAP_V3 => Ok((2, h[1] as i32)),
        _ => {
            t.write_obj(hdr, &CAP_V3)?;
            Err(Errno::EINVAL)
        }
    }
}

pub fn capget(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (words, pid) = cap_header(t, a[0])?;
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let pid = if pid == 0 {
        t.pid()
    } else {
        t.pid_from_user(pid)?
    };
    let caps = if pid == t.pid() {
        lock(&t.proc.creds).caps
    } else {
        let p = crate::kernel::kernel().process(pid).ok_or(Errno::ESRCH)?;
        let c = lock(&p.creds).caps;
        c
    };
    if a[1] == 0 {
        return Ok(0);
    }
    let mut out = Vec::with_capacity(words * 12);
    for w in 0..words {
        for set in [caps.effective, caps.permitted, caps.inheritable] {
            out.extend_from_slice(&((set >> (32 * w)) as u32).to_le_bytes());
        }
    }
    t.write_bytes(a[1], &out)?;
    Ok(0)
}

pub fn capset(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (words, pid) = cap_header(t, a[0])?;
    if pid != 0 && t.pid_from_user(pid) != Ok(t.pid()) {
        return Err(Errno::EPERM);
    }
    let raw = t.read_bytes(a[1], words * 12)?;
    let word = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]) as u64;
    let (mut e, mut p, mut i) = (0u64, 0u64, 0u64);
    for w in 0..words {
        e |= word(w * 12) << (32 * w);
        p |= word(w * 12 + 4) << (32 * w);
        i |= word(w * 12 + 8) << (32 * w);
    }
    let (e, p, i) = (
        e & crate::kernel::ALL_CAPS,
        p & crate::kernel::ALL_CAPS,
        i & crate::kernel::ALL_CAPS,
    );
    let mut c = lock(&t.proc.creds);
    let cur = c.caps;
    const CAP_SETPCAP: u64 = 1 << 8;
    // Inheritable may only grow within permitted (without CAP_SETPCAP) and
    // the bounding set; permitted only shrinks; effective within permitted.
    if cur.effective & CAP_SETPCAP == 0 && i & !(cur.inheritable | cur.permitted) != 0 {
        return Err(Errno::EPERM);
    }
    if i & !(cur.inheritable | cur.bounding) != 0 {
        return Err(Errno::EPERM);
    }
    if p & !cur.permitted != 0 || e & !p != 0 {
        return Err(Errno::EPERM);
    }
    c.caps.effective = e;
    c.caps.permitted = p;
    c.caps.inheritable = i;
    c.caps.ambient &= p & i;
    Ok(0)
}
