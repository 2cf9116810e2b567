//! Files that processes are running (Linux's deny_write_access): while a
//! process runs a program, opening that file for writing or truncating it
//! fails with ETXTBSY ("text file busy"), so a running binary is never
//! changed under it by the sandbox; and the other way round, a file open
//! for writing cannot be executed (ETXTBSY from execve).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::vfs::Inode;

/// Running files by inode identity, with how many programs run each.
static RUNNING: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

fn key(inode: &Arc<dyn Inode>) -> usize {
    Arc::as_ptr(inode) as *const () as usize
}

fn running() -> std::sync::MutexGuard<'static, BTreeMap<usize, usize>> {
    RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One process image's hold on its program file (shared by forks).
/// Holds the inode too, so that its identity is not reused meanwhile.
pub struct Running {
    inode: Arc<dyn Inode>,
}

impl Running {
    pub fn new(inode: &Arc<dyn Inode>) -> Arc<Running> {
        *running().entry(key(inode)).or_insert(0) += 1;
        Arc::new(Running {
            inode: inode.clone(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let k = key(&self.inode);
        let mut r = running();
        if let Some(n) = r.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                r.remove(&k);
            }
        }
    }
}

/// Whether some process runs `inode`'s program.
pub fn busy(inode: &Arc<dyn Inode>) -> bool {
    running().contains_key(&key(inode))
}

/// Files open for writing, by inode identity, with how many descriptions.
static WRITING: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

fn writing() -> std::sync::MutexGuard<'static, BTreeMap<usize, usize>> {
    WRITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An open file description's hold on a file it may write.
pub struct Writer {
    inode: Arc<dyn Inode>,
}

impl Writer {
    pub fn new(inode: &Arc<dyn Inode>) -> Writer {
        *writing().entry(key(inode)).or_insert(0) += 1;
        Writer {
            inode: inode.clone(),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let k = key(&self.inode);
        let mut w = writing();
        if let Some(n) = w.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                w.remove(&k);
            }
        }
    }
}

/// Whether some open file description may write `inode`.
pub fn open_for_writing(inode: &Arc<dyn Inode>) -> bool {
    writing().contains_key(&key(inode))
}
