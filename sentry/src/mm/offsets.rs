//! First-fit allocation of byte ranges of a file (the filestore's regions,
//! a memory file's offsets): freed ranges are coalesced with their
//! neighbours, and a range freed at the end moves the end back, so the
//! file can shrink.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct OffsetAllocator {
    /// Where never-used space starts.
    end: u64,
    /// Free ranges by offset, coalesced (none ends at `end`).
    free: BTreeMap<u64, u64>,
}

impl OffsetAllocator {
    /// Where never-used space starts: what the file must cover.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// A free range of `len` bytes: the first freed one that fits, else
    /// one at the end, moving it (None past `limit` or on overflow).
    pub fn alloc(&mut self, len: u64, limit: u64) -> Option<u64> {
        let fit = self
            .free
            .iter()
            .find(|(_, &l)| l >= len)
            .map(|(&o, &l)| (o, l));
        if let Some((off, l)) = fit {
            self.free.remove(&off);
            if l > len {
                self.free.insert(off + len, l - len);
            }
            return Some(off);
        }
        let off = self.end;
        let end = off.checked_add(len).filter(|&e| e <= limit)?;
        self.end = end;
        Some(off)
    }

    /// Gives [off, off+len) back. Returns whether the end moved back.
    pub fn release(&mut self, mut off: u64, mut len: u64) -> bool {
        if let Some((&prev, &plen)) = self.free.range(..off).next_back() {
            if prev + plen == off {
                self.free.remove(&prev);
                off = prev;
                len += plen;
            }
        }
        if let Some(next) = self.free.remove(&(off + len)) {
            len += next;
        }
        if off + len == self.end {
            self.end = off;
            true
        } else {
            self.free.insert(off, len);
            false
        }
    }

    #[cfg(test)]
    pub fn free_ranges(&self) -> &BTreeMap<u64, u64> {
        &self.free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_reused_and_coalesced() {
        let mut o = OffsetAllocator::default();
        let a = o.alloc(4096, u64::MAX).unwrap();
        let b = o.alloc(8192, u64::MAX).unwrap();
        let c = o.alloc(4096, u64::MAX).unwrap();
        assert_eq!((a, b, c), (0, 4096, 12288));
        assert!(!o.release(a, 4096));
        assert!(!o.release(b, 8192));
        assert_eq!(o.free.get(&0), Some(&12288));
        assert_eq!(o.alloc(12288, u64::MAX), Some(0));
        assert!(o.release(c, 4096));
        assert_eq!(o.end, 12288, "{o:?}");
        assert!(o.release(0, 12288));
        assert_eq!((o.end, o.free.len()), (0, 0), "{o:?}");
    }

    #[test]
    fn the_end_stops_at_the_limit() {
        let mut o = OffsetAllocator::default();
        assert_eq!(o.alloc(4096, 8192), Some(0));
        assert_eq!(o.alloc(8192, 8192), None);
        assert_eq!(o.alloc(4096, 8192), Some(4096));
        assert_eq!(o.alloc(u64::MAX, u64::MAX), None);
    }
}
