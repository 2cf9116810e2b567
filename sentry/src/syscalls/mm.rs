//! Memory syscalls: validated, then injected into the stub.

use nix::errno::Errno;

use super::file::get_file;
use super::{arg_fd, SysResult};
use crate::kernel::lock;
use crate::kernel::task::Task;
use crate::mm::vma::VmaName;
use crate::mm::{self, overlaps_stub, page_up, PAGE_SIZE, TASK_SIZE};

pub fn brk(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let want = a[0];
    let proc = t.proc.clone();
    let mm_ref = proc.mm();
    let mut mm = crate::kernel::lock(&mm_ref);
    let cur = mm.brk;
    if want < mm.brk_start || want > TASK_SIZE {
        return Ok(cur);
    }
    let (Some(old_top), Some(new_top)) = (page_up(cur), page_up(want)) else {
        return Ok(cur);
    };
    if new_top > old_top {
        let flags = libc::MAP_PRIVATE | libc::MAP_FIXED_NOREPLACE;
        if overlaps_stub(old_top, new_top - old_top)
            || map_private_anon(
                t,
                &mm.mirror.clone(),
                old_top,
                new_top - old_top,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
            )
            .is_err()
        {
            return Ok(cur);
        }
    } else if new_top < old_top {
        if mm::host_munmap(&mut t.stub, new_top, old_top - new_top).is_err() {
            return Ok(cur);
        }
        mm.mirror.unmapped(new_top, old_top - new_top);
    }
    if new_top > old_top {
        mm.vmas.insert(
            old_top,
            new_top - old_top,
            libc::PROT_READ | libc::PROT_WRITE,
            false,
            0,
            VmaName::Heap,
        );
    } else if new_top < old_top {
        mm.vmas.unmap(new_top, old_top - new_top);
    }
    mm.brk = want;
    Ok(want)
}

/// Private anonymous memory: mirrored (see `mm::mirror`) unless mirroring
/// is off or the mapping grows down (the host grows those).
fn map_private_anon(
    t: &mut Task,
    mirror: &mm::mirror::Mirror,
    hint: u64,
    len: u64,
    prot: i32,
    flags: i32,
) -> Result<u64, Errno> {
    if mm::mirror::enabled() && flags & libc::MAP_GROWSDOWN == 0 {
        return mirror.map_anon(&mut t.stub, hint, len, prot, flags);
    }
    let addr = mm::host_mmap(&mut t.stub, hint, len, prot, flags)?;
    mirror.unmapped(addr, len);
    Ok(addr)
}

pub fn mmap(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (addr, len, prot, flags, fd, off) =
        (a[0], a[1], a[2] as i32, a[3] as i32, arg_fd(a[4]), a[5]);
    // Linux's order: the offset's alignment, then the fd, then the rest.
    if !off.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let file = if flags & libc::MAP_ANONYMOUS == 0 {
        Some(get_file(t, fd)?)
    } else {
        None
    };
    // MAP_SHARED_VALIDATE: a flag we do not know is EOPNOTSUPP, as Linux
    // answers for flags it does not know (with the legacy types Linux
    // ignores them; we refuse what we do not implement, EINVAL below).
    if flags & libc::MAP_SHARED_VALIDATE == libc::MAP_SHARED_VALIDATE
        && flags & !mm::ALLOWED_MMAP_FLAGS != 0
    {
        return Err(Errno::EOPNOTSUPP);
    }
    if len == 0 || prot & !mm::ALLOWED_PROT != 0 || flags & !mm::ALLOWED_MMAP_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    let shared = match flags & (libc::MAP_SHARED | libc::MAP_PRIVATE | libc::MAP_SHARED_VALIDATE) {
        libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE => true,
        libc::MAP_PRIVATE => false,
        _ => return Err(Errno::EINVAL),
    };
    let len_pg = page_up(len).ok_or(Errno::ENOMEM)?;
    let fixed = flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) != 0;
    let mut hint = addr;
    if fixed {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        if addr
            .checked_add(len_pg)
            .map(|e| e > TASK_SIZE)
            .unwrap_or(true)
            || overlaps_stub(addr, len_pg)
        {
            return Err(Errno::ENOMEM);
        }
    } else if overlaps_stub(addr, len_pg) || addr >= TASK_SIZE {
        hint = 0;
    }
    if flags & libc::MAP_ANONYMOUS != 0 {
        let mirror = t.mirror();
        if fixed {
            // What was there goes with the host call: read it from no file.
            mirror.forget_files(addr, len_pg);
        }
        let addr = if shared {
            let addr = mm::host_mmap(&mut t.stub, hint, len_pg, prot, flags)?;
            mirror.unmapped(addr, len_pg);
            addr
        } else {
            map_private_anon(t, &mirror, hint, len_pg, prot, flags)?
        };
        let mm_ref = t.proc.mm();
        let mut m = crate::kernel::lock(&mm_ref);
        if shared {
            m.add_shared_anon(addr, len_pg);
        } else {
            m.forget(addr, len_pg);
        }
        m.vmas.insert(addr, len_pg, prot, shared, 0, VmaName::Anon);
        return Ok(addr);
    }
    let Some(file) = file else {
        return Err(Errno::EBADF);
    };
    if !file.readable() {
        return Err(Errno::EACCES);
    }
    if !file.ops.seekable() || file.ops.is_dir() {
        return Err(Errno::ENODEV);
    }
    if shared
        && prot & libc::PROT_WRITE != 0
        && (!file.writable() || file.flags() & libc::O_APPEND != 0)
    {
        return Err(Errno::EACCES);
    }
    if off
        .checked_add(len_pg)
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Err(Errno::EOVERFLOW);
    }
    let sharing = if shared {
        libc::MAP_SHARED
    } else {
        libc::MAP_PRIVATE
    };
    let map_flags =
        (flags & !(libc::MAP_SHARED | libc::MAP_PRIVATE | libc::MAP_SHARED_VALIDATE)) | sharing;
    let name = {
        let st = file.stat().unwrap_or_default();
        VmaName::File {
            path: file.proc_link(),
            dev: st.dev,
            ino: st.ino,
        }
    };
    if let Some(backing) = file.ops.mmap_backing()? {
        if fixed {
            // What was there goes with the host call: read it from no file.
            t.mirror().forget_files(addr, len_pg);
        }
        // The file's own pages: shared mappings see each other's writes
        // and write(2), as on Linux.
        let addr = mm::host_map_fd(&mut t.stub, backing.fd, hint, len_pg, prot, map_flags, off)?;
        let mm_ref = t.proc.mm();
        let mut m = crate::kernel::lock(&mm_ref);
        match backing.file {
            // Read-only, its bytes are the file's: the sentry reads them
            // there (see mm::mirror).
            Some(host_file) => m.mirror.map_file(addr, len_pg, prot, host_file, off),
            None => m.mirror.unmapped(addr, len_pg),
        }
        if shared {
            m.add_shared(mm::SharedRegion {
                start: addr,
                len: len_pg,
                id: backing.id,
                offset: off,
                may_write: file.writable() && file.flags() & libc::O_APPEND == 0,
            });
        } else {
            m.forget(addr, len_pg);
        }
        m.vmas.insert(addr, len_pg, prot, shared, off, name);
        return Ok(addr);
    }
    // No host fd behind the file (/proc, devices): a private copy of its
    // bytes; a writable shared mapping of such a file is not supported.
    if shared && prot & libc::PROT_WRITE != 0 {
        crate::kernel::kernel()
            .log_unimplemented(u64::MAX, "mmap(MAP_SHARED|PROT_WRITE) of a special file");
        return Err(Errno::ENODEV);
    }
    let map_flags = (map_flags & !libc::MAP_SHARED) | libc::MAP_PRIVATE;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let base = mm::host_mmap(&mut t.stub, hint, len_pg, rw, map_flags)?;
    t.mirror().unmapped(base, len_pg);
    crate::kernel::lock(&t.proc.mm()).forget(base, len_pg);
    let size = file.ops.size()?;
    let avail = size.saturating_sub(off).min(len);
    let mut buf = vec![0u8; (avail as usize).min(1 << 20)];
    let mut done = 0u64;
    while done < avail {
        let want = ((avail - done) as usize).min(buf.len());
        let n = match file.ops.read_at(&mut buf[..want], off + done) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = mm::host_munmap(&mut t.stub, base, len_pg);
                return Err(e);
            }
        };
        if let Err(e) = t.stub.write_mem(base + done, &buf[..n]) {
            let _ = mm::host_munmap(&mut t.stub, base, len_pg);
            return Err(e);
        }
        done += n as u64;
    }
    if prot != rw {
        mm::host_mprotect(&mut t.stub, base, len_pg, prot)?;
    }
    crate::kernel::lock(&t.proc.mm())
        .vmas
        .insert(base, len_pg, prot, false, off, name);
    Ok(base)
}

fn check_range(addr: u64, len: u64) -> Result<u64, Errno> {
    if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len_pg = page_up(len).ok_or(Errno::EINVAL)?;
    if addr
        .checked_add(len_pg)
        .map(|e| e > TASK_SIZE)
        .unwrap_or(true)
    {
        return Err(Errno::EINVAL);
    }
    if overlaps_stub(addr, len_pg) {
        return Err(Errno::EINVAL);
    }
    Ok(len_pg)
}

pub fn munmap(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let len = check_range(a[0], a[1])?;
    let r = mm::host_munmap(&mut t.stub, a[0], len)?;
    let mm_ref = t.proc.mm();
    let mut m = crate::kernel::lock(&mm_ref);
    m.mirror.unmapped(a[0], len);
    m.forget(a[0], len);
    m.vmas.unmap(a[0], len);
    Ok(r)
}

pub fn mprotect(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let prot = a[2] as i32;
    if prot & !(mm::ALLOWED_PROT | libc::PROT_GROWSDOWN) != 0 {
        return Err(Errno::EINVAL);
    }
    if a[1] == 0 && a[0].is_multiple_of(PAGE_SIZE) {
        return Ok(0);
    }
    let len = check_range(a[0], a[1])?;
    if prot & libc::PROT_WRITE != 0 && !crate::kernel::lock(&t.proc.mm()).may_write(a[0], len) {
        return Err(Errno::EACCES);
    }
    if prot & libc::PROT_WRITE != 0 {
        // Before the host call: once writable, another thread may change
        // the bytes while the mirror still reads them from the file.
        t.mirror().forget_files(a[0], len);
    }
    let r = mm::host_mprotect(&mut t.stub, a[0], len, prot)?;
    let mm_ref = t.proc.mm();
    let mut m = crate::kernel::lock(&mm_ref);
    m.mirror.protected(a[0], len, prot & mm::ALLOWED_PROT);
    m.vmas.protect(a[0], len, prot & mm::ALLOWED_PROT);
    Ok(r)
}

pub fn mremap(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (old, old_len, new_len, flags, new_addr) = (a[0], a[1], a[2], a[3] as i32, a[4]);
    if flags & !(libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP) != 0
        || !old.is_multiple_of(PAGE_SIZE)
    {
        return Err(Errno::EINVAL);
    }
    let new_pg = page_up(new_len).ok_or(Errno::EINVAL)?;
    if new_len == 0 {
        return Err(Errno::EINVAL);
    }
    if flags & libc::MREMAP_FIXED != 0
        && (!new_addr.is_multiple_of(PAGE_SIZE)
            || new_addr
                .checked_add(new_pg)
                .map(|e| e > TASK_SIZE)
                .unwrap_or(true))
    {
        return Err(Errno::EINVAL);
    }
    // Only the host moves and grows memory: mirrored memory turns back
    // into host-private memory first.
    let mirror = t.mirror();
    if old_len > 0 {
        mirror.demirror(&mut t.stub, old, page_up(old_len).unwrap_or(old_len))?;
    }
    let got = mm::host_mremap(&mut t.stub, old, old_len, new_len, flags, new_addr)?;
    let old_pg = page_up(old_len).unwrap_or(old_len);
    mirror.unmapped(old, old_pg);
    mirror.unmapped(got, new_pg);
    let mm_ref = t.proc.mm();
    let mut m = crate::kernel::lock(&mm_ref);
    m.remap(old, old_pg, got, new_pg);
    m.vmas.remap(old, old_pg, got, new_pg);
    if flags & libc::MREMAP_DONTUNMAP != 0 {
        // The old range stays mapped, as fresh private memory.
        m.forget(old, old_len);
        m.vmas.insert(
            old,
            old_pg,
            libc::PROT_READ | libc::PROT_WRITE,
            false,
            0,
            VmaName::Anon,
        );
    }
    Ok(got)
}

pub fn madvise(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let advice = a[2] as i32;
    if !mm::advice_allowed(advice) || !a[0].is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    if a[1] == 0 {
        return Ok(0);
    }
    let len = check_range(a[0], a[1])?;
    let mirror = t.mirror();
    if advice == libc::MADV_DONTFORK {
        mirror.forget_files(a[0], len);
    }
    if !mirror.overlaps(a[0], len) {
        return mm::host_madvise(&mut t.stub, a[0], len, advice);
    }
    // The host sees shared memory where the application has private.
    match advice {
        libc::MADV_DONTNEED | libc::MADV_FREE => {
            let r = mm::host_madvise(&mut t.stub, a[0], len, libc::MADV_DONTNEED)?;
            mirror.discard(a[0], len);
            Ok(r)
        }
        // Linux: shared memory only.
        libc::MADV_REMOVE => Err(Errno::EINVAL),
        libc::MADV_WIPEONFORK | libc::MADV_KEEPONFORK => {
            mirror.demirror(&mut t.stub, a[0], len)?;
            mm::host_madvise(&mut t.stub, a[0], len, advice)
        }
        libc::MADV_DONTFORK | libc::MADV_DOFORK => {
            let r = mm::host_madvise(&mut t.stub, a[0], len, advice)?;
            mirror.set_dont_fork(a[0], len, advice == libc::MADV_DONTFORK);
            Ok(r)
        }
        _ => mm::host_madvise(&mut t.stub, a[0], len, advice),
    }
}

/// msync: Linux's checks, and ENOMEM for a range with a hole in it. The
/// pages of a shared file mapping are the host file's own, so its data is
/// already in the host's page cache, where read(2) sees it.
pub fn msync(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (addr, len, flags) = (a[0], a[1], a[2] as i32);
    if !addr.is_multiple_of(PAGE_SIZE)
        || flags & !(libc::MS_ASYNC | libc::MS_SYNC | libc::MS_INVALIDATE) != 0
    {
        return Err(Errno::EINVAL);
    }
    if flags & libc::MS_ASYNC != 0 && flags & libc::MS_SYNC != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
    if len == 0 {
        return Ok(0);
    }
    if end > TASK_SIZE {
        return Err(Errno::ENOMEM);
    }
    mm::host_mincore(&mut t.stub, addr, len, |_, _, _| Ok(()))?;
    Ok(0)
}

/// The range an mlock-family call names: page-aligned around [addr, addr+len).
fn lock_range(addr: u64, len: u64) -> Result<(u64, u64), Errno> {
    let start = mm::page_down(addr);
    let end = addr
        .checked_add(len)
        .and_then(page_up)
        .ok_or(Errno::ENOMEM)?;
    if end > TASK_SIZE {
        return Err(Errno::ENOMEM);
    }
    Ok((start, end - start))
}

/// mlock, mlock2, munlock: checked like Linux (the range must be mapped;
/// RLIMIT_MEMLOCK binds the unprivileged) but nothing is pinned in host
/// memory: a sandbox may not lock the host's RAM.
fn mlock_common(t: &mut Task, addr: u64, len: u64, locking: bool) -> SysResult {
    let (start, len) = lock_range(addr, len)?;
    if len == 0 {
        return Ok(0);
    }
    if locking && !lock(&t.proc.creds).has_cap(crate::kernel::cap::IPC_LOCK) {
        let limit = t.proc.rlimit(libc::RLIMIT_MEMLOCK).rlim_cur;
        if limit == 0 {
            return Err(Errno::EPERM);
        }
        if len > limit {
            return Err(Errno::ENOMEM);
        }
    }
    mm::host_mincore(&mut t.stub, start, len, |_, _, _| Ok(()))?;
    Ok(0)
}

pub fn mlock(t: &mut Task, a: &[u64; 6]) -> SysResult {
    mlock_common(t, a[0], a[1], true)
}

pub fn mlock2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if a[2] & !(libc::MLOCK_ONFAULT as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    mlock_common(t, a[0], a[1], true)
}

pub fn munlock(t: &mut Task, a: &[u64; 6]) -> SysResult {
    mlock_common(t, a[0], a[1], false)
}

pub fn mlockall(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let flags = a[0] as i32;
    let known = libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT;
    if flags == 0 || flags & !known != 0 || flags == libc::MCL_ONFAULT {
        return Err(Errno::EINVAL);
    }
    if !lock(&t.proc.creds).has_cap(crate::kernel::cap::IPC_LOCK)
        && t.proc.rlimit(libc::RLIMIT_MEMLOCK).rlim_cur == 0
    {
        return Err(Errno::EPERM);
    }
    Ok(0)
}

pub fn munlockall(_t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(0)
}

/// mincore: which pages of a mapped range are resident, as the host says.
pub fn mincore(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (addr, len, vec) = (a[0], a[1], a[2]);
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let len_pg = page_up(len).ok_or(Errno::ENOMEM)?;
    if addr.checked_add(len_pg).is_none_or(|e| e > TASK_SIZE) {
        return Err(Errno::ENOMEM);
    }
    if len == 0 {
        return Ok(0);
    }
    mm::host_mincore(&mut t.stub, addr, len_pg, |stub, page, bytes| {
        stub.write_mem(vec.wrapping_add(page), bytes)
    })?;
    Ok(0)
}
