//! Just enough ELF64 parsing to load x86_64 programs. Every field read from
//! the file is bounds-checked: a malformed binary gives ENOEXEC.

use nix::errno::Errno;

use crate::vfs::FileOps;

pub const PT_LOAD: u32 = 1;
pub const PT_INTERP: u32 = 3;
pub const PT_PHDR: u32 = 6;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const MAX_PHNUM: u16 = 128;

#[derive(Clone, Debug)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
}

impl Phdr {
    pub fn prot(&self) -> i32 {
        let mut p = 0;
        if self.p_flags & 4 != 0 {
            p |= libc::PROT_READ;
        }
        if self.p_flags & 2 != 0 {
            p |= libc::PROT_WRITE;
        }
        if self.p_flags & 1 != 0 {
            p |= libc::PROT_EXEC;
        }
        p
    }
}

pub struct ElfFile {
    pub is_dyn: bool,
    pub entry: u64,
    pub phoff: u64,
    pub phentsize: u16,
    pub phdrs: Vec<Phdr>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn read_exact(f: &dyn FileOps, off: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = f.read_at(&mut buf[done..], off + done as u64)?;
        if n == 0 {
            return Err(Errno::ENOEXEC);
        }
        done += n;
    }
    Ok(buf)
}

/// Whether the file starts with the ELF magic.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

impl ElfFile {
    pub fn parse(f: &dyn FileOps) -> Result<ElfFile, Errno> {
        let h = read_exact(f, 0, 64)?;
        if !is_elf(&h) || h[4] != 2 || h[5] != 1 {
            return Err(Errno::ENOEXEC);
        }
        let etype = u16_at(&h, 16);
        if u16_at(&h, 18) != EM_X86_64 || (etype != ET_EXEC && etype != ET_DYN) {
            return Err(Errno::ENOEXEC);
        }
        let entry = u64_at(&h, 24);
        let phoff = u64_at(&h, 32);
        let phentsize = u16_at(&h, 54);
        let phnum = u16_at(&h, 56);
        if phentsize != 56 || phnum == 0 || phnum > MAX_PHNUM {
            return Err(Errno::ENOEXEC);
        }
        let raw = read_exact(f, phoff, phnum as usize * 56)?;
        let phdrs = raw
            .chunks_exact(56)
            .map(|p| Phdr {
                p_type: u32_at(p, 0),
                p_flags: u32_at(p, 4),
                p_offset: u64_at(p, 8),
                p_vaddr: u64_at(p, 16),
                p_filesz: u64_at(p, 32),
                p_memsz: u64_at(p, 40),
            })
            .collect::<Vec<_>>();
        for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
            if p.p_filesz > p.p_memsz
                || p.p_offset.checked_add(p.p_filesz).is_none()
                || p.p_vaddr.checked_add(p.p_memsz).is_none()
                || (p.p_vaddr % 4096) != (p.p_offset % 4096)
            {
                return Err(Errno::ENOEXEC);
            }
        }
        Ok(ElfFile {
            is_dyn: etype == ET_DYN,
            entry,
            phoff,
            phentsize,
            phdrs,
        })
    }

    /// The PT_INTERP path, if any.
    pub fn interp(&self, f: &dyn FileOps) -> Result<Option<Vec<u8>>, Errno> {
        let Some(p) = self.phdrs.iter().find(|p| p.p_type == PT_INTERP) else {
            return Ok(None);
        };
        if p.p_filesz == 0 || p.p_filesz > 4096 {
            return Err(Errno::ENOEXEC);
        }
        let mut s = read_exact(f, p.p_offset, p.p_filesz as usize)?;
        if let Some(nul) = s.iter().position(|&b| b == 0) {
            s.truncate(nul);
        }
        Ok(Some(s))
    }

    /// Virtual address of the program headers (for AT_PHDR), before bias.
    pub fn phdr_vaddr(&self) -> Option<u64> {
        if let Some(p) = self.phdrs.iter().find(|p| p.p_type == PT_PHDR) {
            return Some(p.p_vaddr);
        }
        self.phdrs
            .iter()
            .find(|p| {
                p.p_type == PT_LOAD
                    && p.p_offset <= self.phoff
                    && self.phoff < p.p_offset + p.p_filesz
            })
            .map(|p| p.p_vaddr + (self.phoff - p.p_offset))
    }
}
