//! Files that processes are running (Linux's deny_write_access): while a
//! process runs a program, opening that file for writing or truncating it
//! fails with ETXTBSY ("text file busy"), so a running binary is never
//! changed under it by the sandbox; and the other way round, a file open
//! for writing cannot be executed (ETXTBSY from execve).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::vfs::Inode;

/// Holds of one kind, by inode identity, with how many of each file.
type Holds = Mutex<BTreeMap<usize, usize>>;

/// Files some process runs.
static RUNNING: Holds = Mutex::new(BTreeMap::new());
/// Files some open description may write.
static WRITING: Holds = Mutex::new(BTreeMap::new());

fn key(inode: &Arc<dyn Inode>) -> usize {
    Arc::as_ptr(inode) as *const () as usize
}

fn lock(holds: &'static Holds) -> MutexGuard<'static, BTreeMap<usize, usize>> {
    holds
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A counted hold on a file in one of the tables, let go on drop. Holds
/// the inode too, so that its identity is not reused meanwhile.
pub struct Hold {
    holds: &'static Holds,
    inode: Arc<dyn Inode>,
}

impl Hold {
    fn new(holds: &'static Holds, inode: &Arc<dyn Inode>) -> Hold {
        *lock(holds).entry(key(inode)).or_insert(0) += 1;
        Hold {
            holds,
            inode: inode.clone(),
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let k = key(&self.inode);
        let mut table = lock(self.holds);
        if let Some(n) = table.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                table.remove(&k);
            }
        }
    }
}

/// One process image's hold on its program file (shared by forks).
pub type Running = Hold;

/// An open file description's hold on a file it may write.
pub type Writer = Hold;

/// `inode`'s program runs while the returned hold lives.
pub fn running(inode: &Arc<dyn Inode>) -> Arc<Running> {
    Arc::new(Hold::new(&RUNNING, inode))
}

/// `inode` is open for writing while the returned hold lives.
pub fn writer(inode: &Arc<dyn Inode>) -> Writer {
    Hold::new(&WRITING, inode)
}

/// Whether some process runs `inode`'s program.
pub fn busy(inode: &Arc<dyn Inode>) -> bool {
    lock(&RUNNING).contains_key(&key(inode))
}

/// Whether some open file description may write `inode`.
pub fn open_for_writing(inode: &Arc<dyn Inode>) -> bool {
    lock(&WRITING).contains_key(&key(inode))
}
