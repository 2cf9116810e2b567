//! The x86_64 (64-bit ABI) syscall table.
//!
//! [`SYSCALLS`], [`TABLE_SIZE`] and [`nr`] are generated from `asm/unistd_64.h`; the lookups here
//! use generated index tables so that [`by_number`], called on every trapped syscall, is a bounds
//! check and two loads.

use crate::generated_x86_64::{BY_NAME, BY_NUMBER, NO_SYSCALL};
use crate::SyscallInfo;

pub use crate::generated_x86_64::{nr, SYSCALLS, TABLE_SIZE};

/// The syscall with number `nr`, in O(1); `None` for unused or out-of-range numbers (including
/// x32 numbers with bit 30 set, which are not part of this table).
pub fn by_number(nr: u64) -> Option<&'static SyscallInfo> {
    let index = *BY_NUMBER.get(usize::try_from(nr).ok()?)?;
    if index == NO_SYSCALL {
        return None;
    }
    SYSCALLS.get(usize::from(index))
}

/// The syscall called `name` (the kernel's name, e.g. `"newfstatat"`), by binary search.
pub fn by_name(name: &str) -> Option<&'static SyscallInfo> {
    let pos = BY_NAME.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
    let &(_, index) = BY_NAME.get(pos)?;
    SYSCALLS.get(usize::from(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_indexed() {
        assert!(SYSCALLS.windows(2).all(|w| w[0].nr < w[1].nr));
        let last = SYSCALLS.last().map(|s| s.nr as usize + 1);
        assert_eq!(last, Some(TABLE_SIZE));
        for sc in SYSCALLS {
            assert_eq!(by_number(u64::from(sc.nr)), Some(sc), "{}", sc.name);
            assert_eq!(by_name(sc.name), Some(sc), "{}", sc.name);
        }
        let numbered = (0..TABLE_SIZE as u64 + 10)
            .filter(|&n| by_number(n).is_some())
            .count();
        assert_eq!(numbered, SYSCALLS.len());
    }

    #[test]
    fn well_known_numbers() {
        assert_eq!(nr::READ, 0);
        assert_eq!(nr::WRITE, 1);
        assert_eq!(nr::OPENAT, 257);
        assert_eq!(nr::EXIT_GROUP, 231);
        assert_eq!(nr::CLONE3, 435);
        assert_eq!(nr::_SYSCTL, 156);
        assert_eq!(by_name("openat").map(|s| s.nr), Some(257));
        assert_eq!(by_number(59).map(|s| s.name), Some("execve"));
        assert_eq!(by_number(400), None);
        assert_eq!(by_number(u64::MAX), None);
        assert_eq!(by_number(0x4000_0000), None);
        assert_eq!(by_name("no_such_call"), None);
        assert_eq!(by_name(""), None);
    }

    #[test]
    fn buffer_length_arguments_exist() {
        for sc in SYSCALLS {
            for kind in sc.args {
                if let crate::ArgKind::InBuf { len_arg } | crate::ArgKind::OutBuf { len_arg } = kind
                {
                    assert!(
                        usize::from(*len_arg) < sc.args.len(),
                        "{}: len_arg {len_arg} out of range",
                        sc.name
                    );
                }
            }
            assert!(sc.args.len() <= 6, "{} has more than 6 args", sc.name);
        }
    }
}
