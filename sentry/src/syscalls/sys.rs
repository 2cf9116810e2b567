//! System information: uname, sysinfo, getrandom, hostname.

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::task::{pod_zeroed, Task};
use crate::kernel::{kernel, lock};

fn put(field: &mut [libc::c_char], s: &str) {
    let max = field.len() - 1;
    for (d, b) in field.iter_mut().zip(s.bytes().take(max)) {
        *d = b as libc::c_char;
    }
}

pub fn uname(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let k = kernel();
    let mut u: libc::utsname = pod_zeroed();
    put(&mut u.sysname, "Linux");
    put(&mut u.nodename, &lock(&k.hostname));
    put(&mut u.release, &k.release);
    put(&mut u.version, "#1 SMP rvisor");
    put(&mut u.machine, "x86_64");
    put(&mut u.domainname, "(none)");
    t.write_obj(a[0], &u)?;
    Ok(0)
}

pub fn sethostname(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let len = a[1] as usize;
    if len > 64 {
        return Err(Errno::EINVAL);
    }
    if !lock(&t.proc.creds).has_cap(crate::kernel::cap::SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let name = t.read_bytes(a[0], len)?;
    *lock(&kernel().hostname) = String::from_utf8_lossy(&name).into_owned();
    Ok(0)
}

pub fn getrandom(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (buf, len, flags) = (a[0], a[1], a[2] as u32);
    if flags & !(libc::GRND_NONBLOCK | libc::GRND_RANDOM | libc::GRND_INSECURE) != 0
        || flags & (libc::GRND_RANDOM | libc::GRND_INSECURE)
            == (libc::GRND_RANDOM | libc::GRND_INSECURE)
    {
        return Err(Errno::EINVAL);
    }
    let len = (len as usize).min(33_554_431);
    let mut done = 0;
    let mut tmp = vec![0u8; len.min(1 << 16)];
    while done < len {
        let n = (len - done).min(tmp.len());
        crate::fsimpl::dev::fill_random(&mut tmp[..n])?;
        t.write_bytes(buf + done as u64, &tmp[..n])?;
        done += n;
    }
    Ok(len as u64)
}

pub fn sysinfo(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let mut si: libc::sysinfo = pod_zeroed();
    // SAFETY: sysinfo fills a struct we own.
    if unsafe { libc::sysinfo(&mut si) } < 0 {
        return Err(Errno::last());
    }
    si.uptime = kernel().boot.elapsed().as_secs() as i64;
    si.procs = lock(&kernel().tree).procs.len() as u16;
    t.write_obj(a[0], &si)?;
    Ok(0)
}
