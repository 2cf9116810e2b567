//! The sentry's record of an address space's mappings (gVisor's
//! `mm/vma.go`), kept in step with every mmap, munmap, mprotect, mremap,
//! brk and exec the sentry performs on the stub. It is what
//! /proc/PID/maps shows: container paths, not host ones.

use std::collections::BTreeMap;

/// What a mapping shows as its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmaName {
    Anon,
    /// A file, by its path in the sandbox, with its device and inode.
    File {
        path: Vec<u8>,
        dev: u64,
        ino: u64,
    },
    Heap,
    Stack,
    Vdso,
    Vvar,
    VvarVclock,
    /// A System V shared memory segment.
    SysV {
        key: i32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vma {
    pub end: u64,
    pub prot: i32,
    pub shared: bool,
    /// File offset of the mapping's start.
    pub offset: u64,
    pub name: VmaName,
}

/// Mappings by start address; no two overlap.
#[derive(Clone, Debug, Default)]
pub struct Vmas {
    map: BTreeMap<u64, Vma>,
}

impl Vmas {
    /// Makes `addr` a boundary: a mapping straddling it becomes two.
    fn split_at(&mut self, addr: u64) {
        let Some((&start, vma)) = self.map.range(..addr).next_back() else {
            return;
        };
        if vma.end <= addr {
            return;
        }
        let mut tail = vma.clone();
        if let VmaName::File { .. } | VmaName::SysV { .. } = tail.name {
            tail.offset += addr - start;
        }
        if let Some(head) = self.map.get_mut(&start) {
            head.end = addr;
        }
        self.map.insert(addr, tail);
    }

    /// Forgets [start, start+len).
    pub fn unmap(&mut self, start: u64, len: u64) {
        let end = start.saturating_add(len);
        self.split_at(start);
        self.split_at(end);
        let inside: Vec<u64> = self.map.range(start..end).map(|(s, _)| *s).collect();
        for s in inside {
            self.map.remove(&s);
        }
    }

    /// Records a new mapping (replacing whatever was there, as MAP_FIXED).
    pub fn insert(
        &mut self,
        start: u64,
        len: u64,
        prot: i32,
        shared: bool,
        offset: u64,
        name: VmaName,
    ) {
        if len == 0 {
            return;
        }
        self.unmap(start, len);
        self.map.insert(
            start,
            Vma {
                end: start.saturating_add(len),
                prot,
                shared,
                offset,
                name,
            },
        );
    }

    pub fn protect(&mut self, start: u64, len: u64, prot: i32) {
        let end = start.saturating_add(len);
        self.split_at(start);
        self.split_at(end);
        for (_, v) in self.map.range_mut(start..end) {
            v.prot = prot;
        }
    }

    /// Follows a successful mremap of [old, old+old_len) to [new, new+new_len).
    pub fn remap(&mut self, old: u64, old_len: u64, new: u64, new_len: u64) {
        let old_end = old.saturating_add(old_len);
        self.split_at(old);
        self.split_at(old_end);
        let moved: Vec<(u64, Vma)> = self
            .map
            .range(old..old_end)
            .map(|(s, v)| (*s, v.clone()))
            .collect();
        for (s, _) in &moved {
            self.map.remove(s);
        }
        self.unmap(new, new_len);
        let new_end = new.saturating_add(new_len);
        let last = moved.len().saturating_sub(1);
        for (i, (s, mut v)) in moved.into_iter().enumerate() {
            let ns = new + (s - old);
            let mut ne = new + (v.end - old);
            if i == last && new_len > old_len {
                ne = new_end;
            }
            let ne = ne.min(new_end);
            if ns < ne {
                v.end = ne;
                self.map.insert(ns, v);
            }
        }
    }

    /// The protection of [start, start+len) if one private, executable
    /// and readable mapping of a file or of anonymous memory holds it
    /// (where systrap may patch code).
    pub fn private_code_prot(&self, start: u64, len: u64) -> Option<i32> {
        let (_, v) = self.map.range(..=start).next_back()?;
        let wanted = libc::PROT_READ | libc::PROT_EXEC;
        let ok = v.end >= start.checked_add(len)?
            && !v.shared
            && v.prot & wanted == wanted
            && matches!(v.name, VmaName::File { .. } | VmaName::Anon);
        ok.then_some(v.prot)
    }

    /// Whether [start, start+len) is wholly mapped.
    pub fn covers(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        let mut at = start;
        for (s, v) in self.map.range(..end) {
            if v.end <= at {
                continue;
            }
            if *s > at {
                return false;
            }
            at = v.end;
            if at >= end {
                return true;
            }
        }
        at >= end
    }

    /// The /proc/PID/maps text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (start, v) in &self.map {
            let perms = format!(
                "{}{}{}{}",
                if v.prot & libc::PROT_READ != 0 {
                    'r'
                } else {
                    '-'
                },
                if v.prot & libc::PROT_WRITE != 0 {
                    'w'
                } else {
                    '-'
                },
                if v.prot & libc::PROT_EXEC != 0 {
                    'x'
                } else {
                    '-'
                },
                if v.shared { 's' } else { 'p' },
            );
            let (dev, ino, name) = match &v.name {
                VmaName::Anon => (0, 0, String::new()),
                VmaName::File { path, dev, ino } => {
                    (*dev, *ino, String::from_utf8_lossy(path).into_owned())
                }
                VmaName::Heap => (0, 0, "[heap]".into()),
                VmaName::Stack => (0, 0, "[stack]".into()),
                VmaName::Vdso => (0, 0, "[vdso]".into()),
                VmaName::Vvar => (0, 0, "[vvar]".into()),
                VmaName::VvarVclock => (0, 0, "[vvar_vclock]".into()),
                VmaName::SysV { key } => (0, 0, format!("/SYSV{:08x} (deleted)", *key as u32)),
            };
            let head = format!(
                "{:08x}-{:08x} {} {:08x} {:02x}:{:02x} {} ",
                start,
                v.end,
                perms,
                v.offset,
                (dev >> 8) & 0xfff,
                dev & 0xff,
                ino
            );
            if name.is_empty() {
                out.push_str(&head);
            } else {
                out.push_str(&format!("{head:<73}{name}"));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_split_protect_unmap() {
        let mut v = Vmas::default();
        v.insert(0x1000, 0x4000, libc::PROT_READ, false, 0, VmaName::Anon);
        v.protect(0x2000, 0x1000, libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(v.map.len(), 3);
        v.unmap(0x3000, 0x1000);
        assert!(v.covers(0x1000, 0x2000));
        assert!(!v.covers(0x1000, 0x3000));
        v.remap(0x1000, 0x1000, 0x10000, 0x2000);
        assert!(v.covers(0x10000, 0x2000));
        assert!(!v.covers(0x1000, 0x1000));
    }
}
