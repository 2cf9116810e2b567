//! Change notification for the host directories of bind mounts.
//!
//! A bind mount's tree may change on the host at any moment (a host
//! process, another container sharing the volume, the kubelet swapping a
//! ConfigMap's files), so what a directory answered for a name stays true
//! only while the directory is known not to have changed. The sentry puts
//! one fanotify inode mark on each such directory it walks through, on
//! its own donated fd (`fanotify_mark(fd, ".")`: the directory itself,
//! no path is resolved), all in one group. Every change of an entry in a
//! marked directory (create, delete, link, rename in or out, exchange,
//! whiteout) bumps the directory's [`DirMark::entries`] generation, and
//! every change of its own attributes (mode, owner, times, ACLs and other
//! xattrs) its [`DirMark::attrs`] generation. Answers kept under an older
//! entries generation are dropped (`GoferInode::recall_name`), and a mode
//! kept under an older attrs generation is read again
//! (`GoferInode::access_stat`): a directory's entries change far more
//! often than its mode, which they leave alone. A directory removed on the host needs no
//! event: it can gain no entries, and a chmod of it still raises one.
//!
//! **Ordering.** Linux queues a fanotify event before the system call
//! that made the change returns. A lookup first [`DirWatch::sync`]s: it
//! takes the queue's events and bumps generations, under a lock that
//! every other sync takes too, so no lookup that starts after a change
//! completed on the host can miss its event (an event another thread has
//! read but not applied yet is waited for). An empty queue is seen with
//! one `epoll_wait` with no timeout, ~0.16 µs on the machines this was
//! measured on, half of one `fstat`.
//!
//! **Limits.** Marks need fanotify with FID reporting (Linux 5.1, and
//! 5.13 for a sentry without CAP_SYS_ADMIN), a filesystem with file
//! handles and an fsid (not procfs, sysfs, most FUSE), and room under the
//! user's mark limit; the sentry takes at most [`MAX_MARKS`]. A directory
//! that cannot be marked is revalidated by its ctime instead
//! (`recall_name`). A queue that overflows bumps every mark.
//!
//! Two filesystems may name different inodes alike: the fsid of ext4 is
//! its UUID, which a copy of the filesystem (a snapshot, a cloned image)
//! keeps, and a handle is an inode and generation number. Events could
//! not tell such inodes apart, so a name is marked for one inode only
//! (by device and inode number); another inode of the same name is not
//! watched.
//!
//! Neither file contents (writes through a shared mapping raise no
//! event, so a file's own attributes are asked of the host at every
//! stat) nor mounts: a host mount over a directory of a volume, or its
//! unmount, is not seen by a walk that knew the name before (as with
//! the ctime, which it leaves alone).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// Marks one sentry holds at most (each pins a host inode in memory, and
/// counts against the host user's `fs.fanotify.max_user_marks`, shared
/// with every other sandbox on the node). Past it, directories fall back
/// to ctime revalidation.
pub const MAX_MARKS: usize = 16384;

/// Changes that bump a marked directory's generations ([`DirMark::bump`]).
/// `FAN_ONDIR` makes entries that are directories count, and the
/// directory's own attributes.
const WATCHED_CHANGES: u64 = libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_MOVED_FROM
    | libc::FAN_MOVED_TO
    | libc::FAN_ATTRIB
    | libc::FAN_ONDIR;

/// The longest event a FID-reporting group queues: the metadata, the
/// info record's header and fsid, and the largest file handle.
const MAX_EVENT_LEN: usize = 24 + 4 + 8 + 8 + libc::MAX_HANDLE_SZ as usize;

/// The fanotify group of the sentry, made at its first use.
pub struct DirWatch {
    group: OwnedFd,
    /// An epoll instance holding only `group`: tells an empty queue for
    /// the price of a bare system call (reading the group itself costs
    /// twice that).
    ready: Epoll,
    state: Mutex<State>,
}

struct State {
    /// The live marks, by the host inode they are on.
    marks: HashMap<FileId, Weak<DirMark>>,
    /// Events are read into this.
    buf: Vec<u8>,
}

/// A host inode as fanotify names it: the filesystem's fsid and the
/// inode's file handle.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FileId {
    fsid: [i32; 2],
    handle_type: i32,
    handle: Box<[u8]>,
}

/// One watched directory's state, shared by every node of the sandbox on
/// that host inode (two bind mounts of one directory).
#[derive(Debug)]
pub struct DirMark {
    id: FileId,
    /// The host inode marked: `(st_dev, st_ino)`.
    inode: (u64, u64),
    entries: AtomicU64,
    attrs: AtomicU64,
}

/// The events that change a directory's entries.
const ENTRY_CHANGES: u64 =
    libc::FAN_CREATE | libc::FAN_DELETE | libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO;

impl DirMark {
    /// Bumped by every change of the directory's entries that
    /// [`DirWatch::sync`] has taken from the queue.
    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Acquire)
    }

    /// Bumped by every change of the directory's own attributes that
    /// [`DirWatch::sync`] has taken from the queue.
    pub fn attrs(&self) -> u64 {
        self.attrs.load(Ordering::Acquire)
    }

    /// Applies an event's `mask` (all bits: anything may have changed).
    fn bump(&self, mask: u64) {
        if mask & ENTRY_CHANGES != 0 {
            self.entries.fetch_add(1, Ordering::AcqRel);
        }
        // (FAN_ONDIR comes with a subdirectory's create or removal too.)
        if mask & !(ENTRY_CHANGES | libc::FAN_ONDIR) != 0 {
            self.attrs.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl DirWatch {
    /// The sentry's group; None when fanotify cannot be had (an old
    /// kernel, or no FID reporting for this user).
    pub fn get() -> Option<&'static DirWatch> {
        static WATCH: OnceLock<Option<DirWatch>> = OnceLock::new();
        WATCH
            .get_or_init(|| match DirWatch::new() {
                Ok(watch) => Some(watch),
                Err(e) => {
                    tracing::info!(
                        "no fanotify for bind-mounted directories ({e}): their lookups revalidate by ctime"
                    );
                    None
                }
            })
            .as_ref()
    }

    fn new() -> Result<DirWatch, Errno> {
        let flags =
            libc::FAN_CLASS_NOTIF | libc::FAN_REPORT_FID | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK;
        // SAFETY: fanotify_init takes no pointers; a new fd is ours alone.
        let fd = unsafe {
            libc::fanotify_init(flags, (libc::O_RDONLY | libc::O_CLOEXEC) as libc::c_uint)
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: fd was just returned to us and is owned nowhere else.
        let group = unsafe { OwnedFd::from_raw_fd(fd) };
        let ready = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        ready.add(&group, EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        Ok(DirWatch {
            group,
            ready,
            state: Mutex::new(State {
                marks: HashMap::new(),
                buf: vec![0; 16384],
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the directory `dir` (an fd of the sentry's own, `O_PATH`
    /// will do) on host inode `inode` (`(st_dev, st_ino)`), or shares the
    /// mark it has; None when it cannot be watched. Changes made before
    /// this returns are not reported: the caller must ask the host for
    /// what it needs after it.
    pub fn mark(&self, dir: BorrowedFd<'_>, inode: (u64, u64)) -> Option<Arc<DirMark>> {
        let id = file_id(dir)?;
        let mut state = self.lock();
        if let Some(mark) = state.marks.get(&id).and_then(Weak::upgrade) {
            // Another inode of the same name (a copy of a filesystem):
            // its events would be taken for this one's.
            return (mark.inode == inode).then_some(mark);
        }
        if state.marks.len() >= MAX_MARKS {
            return None;
        }
        self.mark_inode(libc::FAN_MARK_ADD, dir).ok()?;
        let mark = Arc::new(DirMark {
            id: id.clone(),
            inode,
            entries: AtomicU64::new(0),
            attrs: AtomicU64::new(0),
        });
        state.marks.insert(id, Arc::downgrade(&mark));
        Some(mark)
    }

    /// Lets go of a node's share of a mark; the last one removes the
    /// kernel's mark through `dir`, an fd on the directory.
    pub fn release(&self, dir: BorrowedFd<'_>, mark: Arc<DirMark>) {
        let mut state = self.lock();
        // Under the lock no share can be taken (`mark` upgrades under
        // it), and of two last shares let go at once exactly one gets the
        // mark back.
        let Some(last) = Arc::into_inner(mark) else {
            return;
        };
        if state
            .marks
            .get(&last.id)
            .is_some_and(|w| w.strong_count() == 0)
        {
            state.marks.remove(&last.id);
        }
        let _ = self.mark_inode(libc::FAN_MARK_REMOVE, dir);
    }

    fn mark_inode(&self, how: libc::c_uint, dir: BorrowedFd<'_>) -> Result<(), Errno> {
        // SAFETY: the path is a valid C string; fanotify_mark reads only
        // it. "." relative to the directory's own fd names the directory
        // itself and walks nowhere (fanotify refuses an O_PATH fd with no
        // path).
        let r = unsafe {
            libc::fanotify_mark(
                self.group.as_raw_fd(),
                how | libc::FAN_MARK_DONT_FOLLOW,
                WATCHED_CHANGES,
                dir.as_raw_fd(),
                c".".as_ptr(),
            )
        };
        Errno::result(r).map(drop)
    }

    /// Applies every change queued so far to its mark's generations. When
    /// this returns, every change that completed on the host before it
    /// was called has bumped its directory's generations.
    pub fn sync(&self) {
        let mut state = self.lock();
        let mut ready = [EpollEvent::empty()];
        // Nothing queued (or an error, when the read below tells).
        if matches!(self.ready.wait(&mut ready, EpollTimeout::ZERO), Ok(0)) {
            return;
        }
        let State { marks, buf } = &mut *state;
        loop {
            let n = match nix::unistd::read(self.group.as_raw_fd(), buf) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    // The queue cannot be read: nothing can be trusted.
                    tracing::warn!("reading the fanotify queue: {e}");
                    bump_all(marks);
                    return;
                }
            };
            for event in Events(&buf[..n]) {
                match event {
                    Event::Changed(id, mask) => {
                        if let Some(mark) = marks.get(&id).and_then(Weak::upgrade) {
                            mark.bump(mask);
                        }
                    }
                    Event::Unknown => bump_all(marks),
                }
            }
            // A read that left room for another event took everything
            // queued when it ran.
            if buf.len() - n >= MAX_EVENT_LEN {
                return;
            }
        }
    }
}

fn bump_all(marks: &HashMap<FileId, Weak<DirMark>>) {
    for mark in marks.values().filter_map(Weak::upgrade) {
        mark.bump(u64::MAX);
    }
}

/// The fanotify name of the inode `fd` is on.
fn file_id(fd: BorrowedFd<'_>) -> Option<FileId> {
    let fs = nix::sys::statfs::fstatfs(fd).ok()?;
    // SAFETY: fsid_t is two C ints (its fields are private in the libc
    // crate); same size, any bits valid.
    let fsid: [i32; 2] = unsafe { std::mem::transmute(fs.filesystem_id()) };
    let (handle_type, handle) = name_to_handle(fd)?;
    Some(FileId {
        fsid,
        handle_type,
        handle,
    })
}

/// The file handle of the inode `fd` is on, as fanotify encodes it
/// (`AT_HANDLE_FID`, Linux 6.5; earlier kernels encode alike for the
/// filesystems that can be marked).
fn name_to_handle(fd: BorrowedFd<'_>) -> Option<(i32, Box<[u8]>)> {
    #[repr(C)]
    struct Handle {
        handle_bytes: u32,
        handle_type: i32,
        f_handle: [u8; libc::MAX_HANDLE_SZ as usize],
    }
    for flags in [
        libc::AT_EMPTY_PATH | libc::AT_HANDLE_FID,
        libc::AT_EMPTY_PATH,
    ] {
        let mut h = Handle {
            handle_bytes: libc::MAX_HANDLE_SZ as u32,
            handle_type: 0,
            f_handle: [0; libc::MAX_HANDLE_SZ as usize],
        };
        let mut mount_id: libc::c_int = 0;
        // SAFETY: `h` has the layout of struct file_handle with
        // MAX_HANDLE_SZ bytes of room, as handle_bytes says; the kernel
        // writes at most that, and mount_id. The path is an empty C
        // string (AT_EMPTY_PATH: the fd itself).
        let r = unsafe {
            libc::name_to_handle_at(
                fd.as_raw_fd(),
                c"".as_ptr(),
                (&mut h as *mut Handle).cast(),
                &mut mount_id,
                flags,
            )
        };
        if r == 0 {
            let len = (h.handle_bytes as usize).min(h.f_handle.len());
            return Some((h.handle_type, h.f_handle[..len].into()));
        }
        if Errno::last() != Errno::EINVAL {
            return None;
        }
    }
    None
}

/// What one queued event says.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// The inode named changed (`mask`: how).
    Changed(FileId, u64),
    /// An overflow, or an event this code cannot read: anything may have
    /// changed.
    Unknown,
}

/// The events in a buffer read from a FID-reporting group.
struct Events<'a>(&'a [u8]);

impl Iterator for Events<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let b = self.0;
        if b.len() < 4 {
            return None;
        }
        let u16_at = |b: &[u8], at: usize| -> Option<u16> {
            Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
        };
        let u32_at = |b: &[u8], at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        let event_len = u32_at(b, 0)? as usize;
        if event_len < 24 || event_len > b.len() {
            // A torn or nonsensical record: drop the rest.
            self.0 = &[];
            return Some(Event::Unknown);
        }
        let event = &b[..event_len];
        self.0 = &b[event_len..];
        Some(parse_event(event, u16_at, u32_at).unwrap_or(Event::Unknown))
    }
}

/// One event record: `struct fanotify_event_metadata` (24 bytes) and,
/// for a FID-reporting group, one `struct fanotify_event_info_fid`: a
/// 4-byte header, the fsid, then `struct file_handle`.
fn parse_event(
    e: &[u8],
    u16_at: impl Fn(&[u8], usize) -> Option<u16>,
    u32_at: impl Fn(&[u8], usize) -> Option<u32>,
) -> Option<Event> {
    let vers = *e.get(4)?;
    let metadata_len = usize::from(u16_at(e, 6)?);
    let mask = u64::from_ne_bytes(e.get(8..16)?.try_into().ok()?);
    if vers != libc::FANOTIFY_METADATA_VERSION
        || metadata_len < 24
        || mask & libc::FAN_Q_OVERFLOW != 0
    {
        return None;
    }
    let info = e.get(metadata_len..)?;
    if *info.first()? != libc::FAN_EVENT_INFO_TYPE_FID {
        return None;
    }
    let info_len = usize::from(u16_at(info, 2)?);
    if info_len < 20 {
        return None;
    }
    let info = info.get(..info_len)?;
    let fsid = [u32_at(info, 4)? as i32, u32_at(info, 8)? as i32];
    let handle_bytes = u32_at(info, 12)? as usize;
    let handle_type = u32_at(info, 16)? as i32;
    let handle = info.get(20..20 + handle_bytes)?;
    Some(Event::Changed(
        FileId {
            fsid,
            handle_type,
            handle: handle.into(),
        },
        mask,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn record(mask: u64, fsid: [i32; 2], handle: &[u8]) -> Vec<u8> {
        let info_len = 20 + handle.len();
        let mut e = Vec::new();
        e.extend_from_slice(&((24 + info_len) as u32).to_ne_bytes());
        e.push(libc::FANOTIFY_METADATA_VERSION);
        e.push(0);
        e.extend_from_slice(&24u16.to_ne_bytes());
        e.extend_from_slice(&mask.to_ne_bytes());
        e.extend_from_slice(&(-1i32).to_ne_bytes());
        e.extend_from_slice(&7i32.to_ne_bytes());
        e.push(libc::FAN_EVENT_INFO_TYPE_FID);
        e.push(0);
        e.extend_from_slice(&(info_len as u16).to_ne_bytes());
        e.extend_from_slice(&fsid[0].to_ne_bytes());
        e.extend_from_slice(&fsid[1].to_ne_bytes());
        e.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
        e.extend_from_slice(&1i32.to_ne_bytes());
        e.extend_from_slice(handle);
        e
    }

    #[test]
    fn events_parse_and_garbage_means_anything_changed() {
        let mut buf = record(libc::FAN_CREATE, [1, 2], &[9; 8]);
        buf.extend(record(libc::FAN_ATTRIB | libc::FAN_ONDIR, [3, 4], &[5; 12]));
        let events: Vec<Event> = Events(&buf).collect();
        assert_eq!(
            events,
            vec![
                Event::Changed(
                    FileId {
                        fsid: [1, 2],
                        handle_type: 1,
                        handle: vec![9; 8].into()
                    },
                    libc::FAN_CREATE
                ),
                Event::Changed(
                    FileId {
                        fsid: [3, 4],
                        handle_type: 1,
                        handle: vec![5; 12].into()
                    },
                    libc::FAN_ATTRIB | libc::FAN_ONDIR
                ),
            ]
        );
        // An overflow, a short record, a handle longer than its record.
        let mut overflow = record(libc::FAN_Q_OVERFLOW, [0, 0], &[]);
        overflow.truncate(24);
        overflow[0..4].copy_from_slice(&24u32.to_ne_bytes());
        assert_eq!(Events(&overflow).collect::<Vec<_>>(), vec![Event::Unknown]);
        let torn = record(libc::FAN_CREATE, [1, 2], &[9; 8]);
        assert_eq!(
            Events(&torn[..30]).collect::<Vec<_>>(),
            vec![Event::Unknown]
        );
        let mut long = record(libc::FAN_CREATE, [1, 2], &[9; 8]);
        long[36..40].copy_from_slice(&4000u32.to_ne_bytes());
        assert_eq!(Events(&long).collect::<Vec<_>>(), vec![Event::Unknown]);
        let mut zero = record(libc::FAN_CREATE, [1, 2], &[9; 8]);
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(Events(&zero).collect::<Vec<_>>(), vec![Event::Unknown]);
        // Lengths that cut into the metadata or the info record's fixed
        // part, whatever the bytes there say.
        let mut short_meta = record(libc::FAN_CREATE, [1, 2], &[9; 8]);
        short_meta[6..8].copy_from_slice(&16u16.to_ne_bytes());
        assert_eq!(
            Events(&short_meta).collect::<Vec<_>>(),
            vec![Event::Unknown]
        );
        let mut short_info = record(libc::FAN_CREATE, [1, 2], &[9; 8]);
        short_info[26..28].copy_from_slice(&12u16.to_ne_bytes());
        assert_eq!(
            Events(&short_info).collect::<Vec<_>>(),
            vec![Event::Unknown]
        );
    }

    #[test]
    fn a_change_on_the_host_bumps_the_marked_directory() {
        let Some(watch) = DirWatch::get() else {
            eprintln!("no fanotify here");
            return;
        };
        let dir = std::env::temp_dir().join(format!("rvisor-dirwatch-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let fd = nix::fcntl::open(
            &dir,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        // SAFETY: fd was just opened and is owned nowhere else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).unwrap();
        let inode = (st.st_dev, st.st_ino);
        let Some(mark) = watch.mark(fd.as_fd(), inode) else {
            eprintln!("temp dir cannot be marked");
            return;
        };
        let again = watch.mark(fd.as_fd(), inode).unwrap();
        assert!(Arc::ptr_eq(&mark, &again));
        // The same name on another inode (a copy of the filesystem) is
        // not watched: its events could not be told apart.
        assert!(watch.mark(fd.as_fd(), (inode.0 + 1, inode.1)).is_none());
        watch.sync();
        let (e0, a0) = (mark.entries(), mark.attrs());
        std::fs::write(dir.join("new"), b"x").unwrap();
        watch.sync();
        let e1 = mark.entries();
        assert!(e1 > e0, "a create bumps the entries");
        assert_eq!(mark.attrs(), a0, "a create leaves the mode alone");
        watch.sync();
        assert_eq!(mark.entries(), e1, "nothing new, no bump");
        std::fs::write(dir.join("sub/deeper"), b"x").unwrap();
        watch.sync();
        assert_eq!(mark.entries(), e1, "a grandchild is not an entry");
        std::fs::rename(dir.join("new"), dir.join("renamed")).unwrap();
        watch.sync();
        let e2 = mark.entries();
        assert!(e2 > e1, "a rename bumps");
        std::fs::create_dir(dir.join("subdir")).unwrap();
        watch.sync();
        assert!(mark.entries() > e2, "a mkdir bumps the entries");
        assert_eq!(mark.attrs(), a0, "a mkdir leaves the mode alone");
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        watch.sync();
        assert!(mark.attrs() > a0, "a chmod bumps the attributes");
        drop(again);
        watch.release(fd.as_fd(), mark);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
