//! Program loading (gVisor's `pkg/sentry/loader`): ELF executables (static,
//! static-PIE, dynamic with PT_INTERP) and `#!` scripts, mapped into a fresh
//! stub, with the initial stack (argv, envp, auxv) Linux builds.

pub mod elf;

use crate::mm::mirror::Mirror;
use std::sync::Arc;

use nix::errno::Errno;

use crate::mm::vma::{VmaName, Vmas};
use crate::mm::{self, page_down, page_up, MemoryManager, PAGE_SIZE};
use crate::platform::{Regs, Stub};
use crate::vfs::FileOps;
use elf::{ElfFile, PT_LOAD};

/// Base for position-independent executables (Linux's ELF_ET_DYN_BASE).
const ET_DYN_BASE: u64 = 0x5555_5555_4000;
/// Bytes of argv + envp strings we accept: Linux allows a quarter of the
/// stack rlimit, 2 MiB with the usual 8 MiB.
const MAX_ARG_BYTES: usize = 2 * 1024 * 1024;
/// Stack the new program gets below its arguments before anything grows.
const STACK_HEADROOM: u64 = 256 * 1024;

/// Everything needed to start the new image.
pub struct Loaded {
    pub regs: Regs,
    pub mm: MemoryManager,
}

/// Credentials shown in the auxv.
pub struct AuxIds {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = crate::fsimpl::dev::fill_random(&mut b);
    u64::from_le_bytes(b)
}

/// Maps one ELF image. Returns the load bias.
///
/// As Linux does, a read-only segment is a private mapping of the file
/// itself, when the file has a host fd behind it: exec copies none of its
/// text, processes running one program share its page cache, and the
/// sentry reads its read-only data from the file (see `mm::mirror`).
/// Writable segments (.data, .bss) are copied into fresh private memory,
/// mirrored: programs keep buffers there, and they are small. Segments that
/// share a page, and files that are not host files (the overlay's own,
/// /proc's), are copied whole.
fn map_image(
    stub: &mut Stub,
    file: &dyn FileOps,
    elf: &ElfFile,
    base_hint: Option<u64>,
    vmas: &mut Vmas,
    name: &VmaName,
    mirror: &Mirror,
) -> Result<u64, Errno> {
    let loads: Vec<_> = elf
        .phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
        .collect();
    if loads.is_empty() {
        return Err(Errno::ENOEXEC);
    }
    let lo = loads
        .iter()
        .map(|p| page_down(p.p_vaddr))
        .min()
        .ok_or(Errno::ENOEXEC)?;
    let hi = loads
        .iter()
        .map(|p| p.p_vaddr.checked_add(p.p_memsz).and_then(page_up))
        .try_fold(0u64, |acc, e| e.map(|e| acc.max(e)))
        .ok_or(Errno::ENOEXEC)?;
    let span = hi.checked_sub(lo).ok_or(Errno::ENOEXEC)?;
    if span == 0 || span > (1 << 40) {
        return Err(Errno::ENOEXEC);
    }
    // The whole span, inaccessible: the gaps between segments stay so.
    let none = libc::PROT_NONE;
    let flags = libc::MAP_PRIVATE | libc::MAP_NORESERVE;
    let bias = if elf.is_dyn {
        let hint = base_hint.unwrap_or(0);
        let f = if hint != 0 {
            flags | libc::MAP_FIXED_NOREPLACE
        } else {
            flags
        };
        let got = mm::host_mmap(stub, hint, span, none, f)
            .or_else(|_| mm::host_mmap(stub, 0, span, none, flags))?;
        got.wrapping_sub(lo)
    } else {
        if lo < PAGE_SIZE * 16 || hi > mm::TASK_SIZE || mm::overlaps_stub(lo, span) {
            return Err(Errno::ENOEXEC);
        }
        mm::host_mmap(stub, lo, span, none, flags | libc::MAP_FIXED_NOREPLACE)
            .map_err(|_| Errno::ENOMEM)?;
        0
    };
    vmas.insert(
        bias.wrapping_add(lo),
        span,
        libc::PROT_NONE,
        false,
        0,
        VmaName::Anon,
    );
    // Only a host file: asking an in-memory file for its backing would
    // move its data into memory of its own (see `FileData::mappable`).
    let host_file = file.host_kind() == Some(crate::fsimpl::host::HostKind::File);
    let mut mapper = ImageMapper {
        backing: host_file
            .then(|| file.mmap_backing().ok().flatten())
            .flatten(),
        size: file.size().unwrap_or(0),
        stub_fd: None,
        apart: segments_apart(&loads),
    };
    let mapped = mapper.map_segments(stub, file, &loads, bias, vmas, name, mirror);
    if let Some(fd) = mapper.stub_fd {
        let _ = stub.inject(libc::SYS_close as u64, [fd as u64, 0, 0, 0, 0, 0]);
    }
    mapped?;
    Ok(bias)
}

/// Whether no two segments share a page (modern linkers' layout), so that
/// each may be mapped on its own.
fn segments_apart(loads: &[&elf::Phdr]) -> bool {
    loads.windows(2).all(|w| {
        page_up(w[0].p_vaddr.saturating_add(w[0].p_memsz))
            .is_some_and(|end| end <= page_down(w[1].p_vaddr))
    })
}

/// How one image's segments get mapped (see [`map_image`]).
struct ImageMapper {
    backing: Option<crate::vfs::MmapBacking>,
    /// The file's size: a segment mapped from it must lie within it.
    size: u64,
    /// The file's fd in the stub, once installed for a first segment.
    stub_fd: Option<i32>,
    apart: bool,
}

impl ImageMapper {
    #[allow(clippy::too_many_arguments)]
    fn map_segments(
        &mut self,
        stub: &mut Stub,
        file: &dyn FileOps,
        loads: &[&elf::Phdr],
        bias: u64,
        vmas: &mut Vmas,
        name: &VmaName,
        mirror: &Mirror,
    ) -> Result<(), Errno> {
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // Every segment's pages as they end: (address, length, protection
        // (a page shared by two segments gets both), file offset).
        let mut placed = Vec::with_capacity(loads.len());
        // The segments to copy, with their entry in `placed`.
        let mut copied = Vec::new();
        let mut prev: Option<(u64, i32)> = None;
        for p in loads {
            let start = page_down(p.p_vaddr);
            let end = page_up(p.p_vaddr + p.p_memsz).ok_or(Errno::ENOEXEC)?;
            let mut prot = p.prot();
            // Where this segment's own pages begin (a first page shared
            // with the previous segment is mapped already).
            let mut from = start;
            if let Some((prev_end, prev_prot)) = prev {
                if start < prev_end {
                    prot |= prev_prot;
                    from = prev_end;
                }
            }
            prev = Some((end, p.prot()));
            let at = bias.wrapping_add(start);
            if !self.map_from_file(stub, p, at, end - start, prot, mirror)? {
                if from < end {
                    let fixed = libc::MAP_PRIVATE | libc::MAP_FIXED;
                    let own = bias.wrapping_add(from);
                    if mm::mirror::enabled() && p.prot() & libc::PROT_WRITE != 0 {
                        mirror.map_anon(stub, own, end - from, rw, fixed)?;
                    } else {
                        mm::host_mmap(stub, own, end - from, rw, fixed)?;
                    }
                }
                copied.push((*p, placed.len()));
            }
            placed.push((at, end - start, prot, page_down(p.p_offset)));
        }
        let mut buf = Vec::new();
        for (p, _) in &copied {
            let mut done = 0u64;
            while done < p.p_filesz {
                if buf.is_empty() {
                    buf = vec![0u8; 1 << 20];
                }
                let n = (p.p_filesz - done).min(buf.len() as u64) as usize;
                let got = file.read_at(&mut buf[..n], p.p_offset + done)?;
                if got == 0 {
                    break;
                }
                let at = bias.wrapping_add(p.p_vaddr + done);
                if mirror.write(at, &buf[..got]).is_none() {
                    stub.write_mem(at, &buf[..got])?;
                }
                done += got as u64;
            }
        }
        for &(_, i) in &copied {
            let (at, len, prot, _) = placed[i];
            if prot != rw {
                mm::host_mprotect(stub, at, len, prot)?;
                mirror.protected(at, len, prot);
            }
        }
        for (at, len, prot, off) in placed {
            vmas.insert(at, len, prot, false, off, name.clone());
        }
        Ok(())
    }

    /// Maps read-only segment `p` privately from the file at `at`, if it
    /// can be: its pages its own, wholly within the file, the file with a
    /// host fd. Anything else (or a host that refuses, as a noexec mount
    /// does for text) leaves it to be copied.
    fn map_from_file(
        &mut self,
        stub: &mut Stub,
        p: &elf::Phdr,
        at: u64,
        len: u64,
        prot: i32,
        mirror: &Mirror,
    ) -> Result<bool, Errno> {
        let Some(backing) = &self.backing else {
            return Ok(false);
        };
        let eligible = self.apart
            && prot & libc::PROT_WRITE == 0
            && p.p_filesz == p.p_memsz
            && p.p_vaddr % PAGE_SIZE == p.p_offset % PAGE_SIZE
            && p.p_offset
                .checked_add(p.p_filesz)
                .is_some_and(|e| e <= self.size);
        if !eligible {
            return Ok(false);
        }
        let fd = match self.stub_fd {
            Some(fd) => fd,
            None => match stub.install_fd(backing.fd) {
                Ok(fd) => {
                    self.stub_fd = Some(fd);
                    fd
                }
                Err(e) => {
                    tracing::debug!("handing an image's fd to the stub: {e}; copying it");
                    return Ok(false);
                }
            },
        };
        let off = page_down(p.p_offset);
        let flags = libc::MAP_PRIVATE | libc::MAP_FIXED;
        if let Err(e) = mm::host_map_stub_fd(stub, fd, at, len, prot, flags, off) {
            tracing::debug!("mapping an image segment from its file: {e}; copying it");
            return Ok(false);
        }
        if let Some(host_file) = &backing.file {
            mirror.map_file(at, len, prot, host_file.clone(), off);
        }
        Ok(true)
    }
}

/// Loads `exe` (already known to be ELF) into the fresh `stub`.
#[allow(clippy::too_many_arguments)]
pub fn load_elf(
    stub: &mut Stub,
    exe: &Arc<dyn FileOps>,
    interp: Option<&Arc<dyn FileOps>>,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    execfn: &[u8],
    ids: &AuxIds,
    names: (VmaName, VmaName),
    stack_limit: u64,
) -> Result<Loaded, Errno> {
    let elf = ElfFile::parse(exe.as_ref())?;
    let mut vmas = Vmas::default();
    let exe_hint = if elf.is_dyn {
        Some(ET_DYN_BASE + ((random_u64() % (1 << 16)) << 12))
    } else {
        None
    };
    let mirror = std::sync::Arc::new(Mirror::default());
    let bias = map_image(
        stub,
        exe.as_ref(),
        &elf,
        exe_hint,
        &mut vmas,
        &names.0,
        &mirror,
    )?;
    let exe_end = elf
        .phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .map(|p| bias.wrapping_add(p.p_vaddr + p.p_memsz))
        .max()
        .unwrap_or(bias);
    let mut entry = bias.wrapping_add(elf.entry);
    let mut interp_base = 0;
    if let Some(interp) = interp {
        let ielf = ElfFile::parse(interp.as_ref())?;
        if !ielf.is_dyn {
            return Err(Errno::ELIBBAD);
        }
        interp_base = map_image(
            stub,
            interp.as_ref(),
            &ielf,
            None,
            &mut vmas,
            &names.1,
            &mirror,
        )?;
        entry = interp_base.wrapping_add(ielf.entry);
    }
    let phdr_addr = bias.wrapping_add(elf.phdr_vaddr().ok_or(Errno::ENOEXEC)?);

    // The heap starts after the executable, at a random page offset (up to
    // 32 MiB, as Linux).
    let brk_start = page_up(exe_end).ok_or(Errno::ENOEXEC)? + ((random_u64() % 0x2000) << 12);
    let need = stack_need(argv, envp, execfn);
    // The main thread's stack: mirrored memory of its own, all of
    // RLIMIT_STACK at once (up to MAX_MIRRORED_STACK), or without
    // mirroring the stack the host kernel made for the stub (which grows
    // only as far as the sentry's own RLIMIT_STACK allows).
    let stack_top = if mm::mirror::enabled() {
        if need > MAX_ARG_BYTES as u64 + 64 * 1024 {
            return Err(Errno::E2BIG);
        }
        let kernel_bottom = mapped_stack_bottom(stub);
        record_kernel_mappings(stub, kernel_bottom, &mut vmas, false);
        // RLIMIT_STACK, but room for the arguments and a first frame.
        let size = page_up(stack_limit.clamp(need + STACK_HEADROOM, MAX_MIRRORED_STACK))
            .ok_or(Errno::E2BIG)?;
        let base = map_stack(stub, &mirror, kernel_bottom, size)?;
        vmas.insert(
            base,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            false,
            0,
            VmaName::Stack,
        );
        base + size
    } else {
        // The host grows this stack up to the stub's own RLIMIT_STACK,
        // which the sentry's gave it: make it the application's (within
        // the hard limit the sentry has).
        let mut cur = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit64 on our own child, with valid pointers.
        unsafe {
            if libc::prlimit64(stub.pid(), libc::RLIMIT_STACK, std::ptr::null(), &mut cur) == 0 {
                let want = libc::rlimit64 {
                    rlim_cur: stack_limit.min(cur.rlim_max),
                    rlim_max: cur.rlim_max,
                };
                libc::prlimit64(stub.pid(), libc::RLIMIT_STACK, &want, std::ptr::null_mut());
            }
        }
        let stack_bottom = ensure_stack_room(stub, need)?;
        record_kernel_mappings(stub, stack_bottom, &mut vmas, true);
        stub.initial_sp
    };
    let mm = MemoryManager {
        brk_start,
        brk: brk_start,
        vmas,
        mirror,
        ..Default::default()
    };

    let hwcap = unsafe_getauxval(libc::AT_HWCAP);
    let hwcap2 = unsafe_getauxval(libc::AT_HWCAP2);
    let minsig = unsafe_getauxval(51);
    let mut auxv: Vec<(u64, u64)> = Vec::new();
    if stub.vdso_base != 0 {
        auxv.push((libc::AT_SYSINFO_EHDR, stub.vdso_base));
    }
    if minsig != 0 {
        auxv.push((51, minsig));
    }
    auxv.extend_from_slice(&[
        (libc::AT_HWCAP, hwcap),
        (libc::AT_PAGESZ, PAGE_SIZE),
        (libc::AT_CLKTCK, 100),
        (libc::AT_PHDR, phdr_addr),
        (libc::AT_PHENT, elf.phentsize as u64),
        (libc::AT_PHNUM, elf.phdrs.len() as u64),
        (libc::AT_BASE, interp_base),
        (libc::AT_FLAGS, 0),
        (libc::AT_ENTRY, bias.wrapping_add(elf.entry)),
        (libc::AT_UID, ids.uid as u64),
        (libc::AT_EUID, ids.euid as u64),
        (libc::AT_GID, ids.gid as u64),
        (libc::AT_EGID, ids.egid as u64),
        (libc::AT_SECURE, 0),
    ]);
    let sp = build_stack(stub, stack_top, argv, envp, execfn, &mut auxv, hwcap2)?;

    let mut regs = stub.initial_regs;
    regs.rax = 0;
    regs.rbx = 0;
    regs.rcx = 0;
    regs.rdx = 0;
    regs.rsi = 0;
    regs.rdi = 0;
    regs.rbp = 0;
    regs.r8 = 0;
    regs.r9 = 0;
    regs.r10 = 0;
    regs.r11 = 0;
    regs.r12 = 0;
    regs.r13 = 0;
    regs.r14 = 0;
    regs.r15 = 0;
    regs.fs_base = 0;
    regs.gs_base = 0;
    regs.eflags = 0x202;
    regs.rip = entry;
    regs.rsp = sp;
    regs.orig_rax = u64::MAX;
    Ok(Loaded { regs, mm })
}

/// The largest mirrored main-thread stack (an unlimited RLIMIT_STACK gets
/// this much). All of it is mapped at once, the memory file filling it in
/// as it is touched, where Linux grows the mapping on demand.
const MAX_MIRRORED_STACK: u64 = 1 << 30;

/// Maps a mirrored main-thread stack, just below the stub's own (where
/// Linux keeps the gap it leaves for the stack's growth), or anywhere.
fn map_stack(stub: &mut Stub, mirror: &Mirror, below: u64, size: u64) -> Result<u64, Errno> {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_NORESERVE | libc::MAP_STACK;
    let hint = below.saturating_sub(size + PAGE_SIZE);
    if hint > PAGE_SIZE * 16 && !mm::overlaps_stub(hint, size) {
        if let Ok(base) = mirror.map_anon(stub, hint, size, rw, flags | libc::MAP_FIXED_NOREPLACE) {
            return Ok(base);
        }
    }
    mirror.map_anon(stub, 0, size, rw, flags)
}

/// Bytes the initial stack needs: strings, pointer arrays, auxv, slack.
fn stack_need(argv: &[Vec<u8>], envp: &[Vec<u8>], execfn: &[u8]) -> u64 {
    let strings: usize = argv.iter().chain(envp.iter()).map(|s| s.len() + 1).sum();
    (strings + execfn.len() + 1 + 8 * (argv.len() + envp.len() + 3) + 64 * 16 + 4096) as u64
}

/// The kernel maps about 128 KiB of stack for the stub's own exec; larger
/// argument lists (up to Linux's limit) get a growable mapping directly
/// below it, so the strings and the program's first frames fit.
/// Returns the stack's lowest mapped address afterwards.
fn ensure_stack_room(stub: &mut Stub, need: u64) -> Result<u64, Errno> {
    if need > MAX_ARG_BYTES as u64 + 64 * 1024 {
        return Err(Errno::E2BIG);
    }
    let bottom = mapped_stack_bottom(stub);
    let avail = stub.initial_sp.saturating_sub(bottom);
    if need + STACK_HEADROOM <= avail {
        return Ok(bottom);
    }
    let new_bottom = page_down(stub.initial_sp.saturating_sub(need + STACK_HEADROOM));
    let flags =
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE | libc::MAP_GROWSDOWN;
    let got = stub
        .inject(
            libc::SYS_mmap as u64,
            [
                new_bottom,
                bottom - new_bottom,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                flags as u64,
                u64::MAX,
                0,
            ],
        )
        .map_err(|_| Errno::ENOMEM)?;
    if got as u64 != new_bottom {
        return Err(Errno::E2BIG);
    }
    Ok(new_bottom)
}

/// The lowest address of the mapped pages running down from the stub's
/// initial stack pointer (the stack the kernel made, found by probing).
fn mapped_stack_bottom(stub: &Stub) -> u64 {
    let mut byte = [0u8; 1];
    let mut bottom = page_down(stub.initial_sp);
    for _ in 0..4096 {
        if bottom < PAGE_SIZE || stub.read_mem(bottom - PAGE_SIZE, &mut byte).is_err() {
            break;
        }
        bottom -= PAGE_SIZE;
    }
    bottom
}

/// Records the mappings the host kernel made for the stub: its stack
/// (from `bottom`, up through the pages mapped above the initial stack
/// pointer, found by probing) and the vDSO with its data pages.
fn record_kernel_mappings(stub: &Stub, bottom: u64, vmas: &mut Vmas, app_stack: bool) {
    let mut byte = [0u8; 1];
    let mut top = page_down(stub.initial_sp);
    for _ in 0..1024 {
        if stub.read_mem(top, &mut byte).is_err() {
            break;
        }
        top += PAGE_SIZE;
    }
    if top > bottom {
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let name = if app_stack {
            VmaName::Stack
        } else {
            VmaName::Anon
        };
        vmas.insert(bottom, top - bottom, rw, false, 0, name);
    }
    if stub.vdso_base != 0 {
        let l = mm::vdso_layout();
        let at = |off: i64| stub.vdso_base.wrapping_add(off as u64);
        if let Some((off, len)) = l.vvar {
            vmas.insert(at(off), len, libc::PROT_READ, false, 0, VmaName::Vvar);
        }
        if let Some((off, len)) = l.vvar_vclock {
            vmas.insert(at(off), len, libc::PROT_READ, false, 0, VmaName::VvarVclock);
        }
        let rx = libc::PROT_READ | libc::PROT_EXEC;
        vmas.insert(stub.vdso_base, l.vdso_len, rx, false, 0, VmaName::Vdso);
    }
}

fn unsafe_getauxval(key: u64) -> u64 {
    // SAFETY: getauxval only reads the sentry's own auxv.
    unsafe { libc::getauxval(key) }
}

/// Writes strings, auxv, envp, argv and argc below the stub's initial stack
/// pointer (inside the stack VMA the kernel made at exec). Returns the new sp.
fn build_stack(
    stub: &mut Stub,
    top: u64,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    execfn: &[u8],
    auxv: &mut Vec<(u64, u64)>,
    hwcap2: u64,
) -> Result<u64, Errno> {
    let total: usize = argv
        .iter()
        .chain(envp.iter())
        .map(|s| s.len() + 1)
        .sum::<usize>()
        + execfn.len()
        + 1;
    if total > MAX_ARG_BYTES {
        return Err(Errno::E2BIG);
    }
    let mut sp = top & !0xf;
    let push_bytes = |stub: &mut Stub, data: &[u8], sp: &mut u64| -> Result<u64, Errno> {
        *sp -= data.len() as u64;
        stub.write_mem(*sp, data).map_err(|_| Errno::E2BIG)?;
        Ok(*sp)
    };
    let cstr = |s: &[u8]| {
        let mut v = s.to_vec();
        v.push(0);
        v
    };
    let execfn_addr = push_bytes(stub, &cstr(execfn), &mut sp)?;
    let mut env_ptrs = Vec::with_capacity(envp.len());
    for e in envp.iter().rev() {
        env_ptrs.push(push_bytes(stub, &cstr(e), &mut sp)?);
    }
    env_ptrs.reverse();
    let mut arg_ptrs = Vec::with_capacity(argv.len());
    for a in argv.iter().rev() {
        arg_ptrs.push(push_bytes(stub, &cstr(a), &mut sp)?);
    }
    arg_ptrs.reverse();
    let platform = push_bytes(stub, b"x86_64\0", &mut sp)?;
    let mut random = [0u8; 16];
    crate::fsimpl::dev::fill_random(&mut random)?;
    let random_addr = push_bytes(stub, &random, &mut sp)?;
    auxv.push((libc::AT_RANDOM, random_addr));
    auxv.push((libc::AT_HWCAP2, hwcap2));
    auxv.push((libc::AT_EXECFN, execfn_addr));
    auxv.push((libc::AT_PLATFORM, platform));
    auxv.push((libc::AT_NULL, 0));

    let words = 1 + arg_ptrs.len() + 1 + env_ptrs.len() + 1 + auxv.len() * 2;
    sp = (sp - (words as u64) * 8) & !0xf;
    let mut block = Vec::with_capacity(words * 8);
    block.extend_from_slice(&(arg_ptrs.len() as u64).to_le_bytes());
    for p in &arg_ptrs {
        block.extend_from_slice(&p.to_le_bytes());
    }
    block.extend_from_slice(&0u64.to_le_bytes());
    for p in &env_ptrs {
        block.extend_from_slice(&p.to_le_bytes());
    }
    block.extend_from_slice(&0u64.to_le_bytes());
    for (k, v) in auxv.iter() {
        block.extend_from_slice(&k.to_le_bytes());
        block.extend_from_slice(&v.to_le_bytes());
    }
    stub.write_mem(sp, &block).map_err(|_| Errno::E2BIG)?;
    Ok(sp)
}

/// What a `#!` line asks for.
pub struct Shebang {
    pub interp: Vec<u8>,
    pub arg: Option<Vec<u8>>,
}

/// Parses the first line of a script (Linux reads at most 256 bytes).
pub fn parse_shebang(head: &[u8]) -> Option<Result<Shebang, Errno>> {
    if !head.starts_with(b"#!") {
        return None;
    }
    let line = &head[2..];
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(i) => &line[..i],
        None => line,
    };
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let line: &[u8] = {
        let start = line.iter().position(|b| !is_ws(b)).unwrap_or(line.len());
        let end = line
            .iter()
            .rposition(|b| !is_ws(b))
            .map(|i| i + 1)
            .unwrap_or(start);
        &line[start..end.max(start)]
    };
    if line.is_empty() {
        return Some(Err(Errno::ENOEXEC));
    }
    let (interp, rest) = match line.iter().position(is_ws) {
        Some(i) => (&line[..i], Some(&line[i..])),
        None => (line, None),
    };
    let arg = rest.and_then(|r| {
        let start = r.iter().position(|b| !is_ws(b))?;
        Some(r[start..].to_vec())
    });
    Some(Ok(Shebang {
        interp: interp.to_vec(),
        arg,
    }))
}
