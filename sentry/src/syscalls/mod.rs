//! System call dispatch (gVisor's `pkg/sentry/syscalls/linux`).
//!
//! [`TABLE`] has one row per syscall the sentry handles, with its support
//! level; everything else gets ENOSYS (or the errno in [`UNSUPPORTED`]) and is
//! logged once by name. The same rows generate `rvisor syscalls` and
//! docs/compatibility.md, so the documentation cannot drift from the code.
//!
//! Handlers live in one module per family: `file` (fd I/O, pipes, locks,
//! copies), `fs` (paths and metadata), `mm` (memory), `process` (ids, fork,
//! exec, wait, limits), `creds` (set*id), `signal`, `signalfd`, `futex`, `inotify`, `poll` (poll,
//! select, epoll), `eventfd` (eventfd, timerfd), `socket` (socketpairs), `sysv` (System V message queues, semaphores,
//! shared memory),
//! `xattr` (extended attributes), `time` (clocks, sleeps, interval timers), `timer` (POSIX timers), `tty` (pseudo-terminal ioctls)
//! and `sys` (uname, getrandom, sysinfo).

mod creds;
mod eventfd;
mod file;
pub use file::host_tty_id;
mod mqueue;
pub use mqueue::MessageQueue;
mod fs;
mod futex;
mod inet;
mod inotify;
mod mm;
mod mount;
mod poll;
mod process;
mod signal;
mod signalfd;
mod socket;
mod sys;
mod sysv;
mod time;
pub(crate) mod timer;
mod tty;
mod xattr;

use std::sync::OnceLock;

use nix::errno::Errno;

use crate::kernel::kernel;
use crate::kernel::task::Task;

pub type SysResult = Result<u64, Errno>;

pub use futex::wake as futex_wake;
pub use signalfd::{notify_queued as signalfd_notify, SignalFd};
pub use timer::clear_for_exec as clear_timers_for_exec;
pub type Handler = fn(&mut Task, &[u64; 6]) -> SysResult;

/// How completely a syscall is emulated.
#[derive(Clone, Copy, Debug)]
pub enum Support {
    Full,
    Partial(&'static str),
}

pub struct Row {
    pub nr: i64,
    pub handler: Handler,
    pub support: Support,
}

macro_rules! rows {
    ($($nr:ident => $h:path, $s:expr;)*) => {
        &[$(Row { nr: libc::$nr, handler: $h, support: $s },)*]
    };
}

use Support::{Full, Partial};

/// Every implemented syscall. Keep sorted by family, then name.
pub static TABLE: &[Row] = rows! {
    // file: fd I/O
    SYS_read => file::read, Full;
    SYS_write => file::write, Full;
    SYS_pread64 => file::pread64, Full;
    SYS_pwrite64 => file::pwrite64, Full;
    SYS_readv => file::readv, Full;
    SYS_writev => file::writev, Full;
    SYS_preadv => file::preadv, Full;
    SYS_fadvise64 => file::fadvise64, Partial("validated; advice is ignored");
    SYS_readahead => file::readahead, Partial("validated; no read-ahead is done");
    SYS_inotify_init => inotify::inotify_init, Full;
    SYS_inotify_init1 => inotify::inotify_init1, Full;
    SYS_inotify_add_watch => inotify::inotify_add_watch, Partial("events from changes made inside the sandbox; none for files changed by the host");
    SYS_inotify_rm_watch => inotify::inotify_rm_watch, Full;
    SYS_setxattr => xattr::setxattr, Partial("kept by the overlay's upper layer and tmpfs; user.* only on gofer (bind and --overlay none) mounts, where they reach the host file; no system.* (ACLs)");
    SYS_lsetxattr => xattr::lsetxattr, Partial("as setxattr");
    SYS_fsetxattr => xattr::fsetxattr, Partial("as setxattr");
    SYS_getxattr => xattr::getxattr, Partial("as setxattr");
    SYS_lgetxattr => xattr::lgetxattr, Partial("as setxattr");
    SYS_fgetxattr => xattr::fgetxattr, Partial("as setxattr");
    SYS_listxattr => xattr::listxattr, Partial("as setxattr");
    SYS_llistxattr => xattr::llistxattr, Partial("as setxattr");
    SYS_flistxattr => xattr::flistxattr, Partial("as setxattr");
    SYS_removexattr => xattr::removexattr, Partial("as setxattr");
    SYS_lremovexattr => xattr::lremovexattr, Partial("as setxattr");
    SYS_fremovexattr => xattr::fremovexattr, Partial("as setxattr");
    SYS_pwritev => file::pwritev, Full;
    SYS_preadv2 => file::preadv2, Partial("flags must be 0");
    SYS_pwritev2 => file::pwritev2, Partial("flags must be 0");
    SYS_memfd_create => file::memfd_create, Partial("no seals, no shared writable mmap yet");
    SYS_sendfile => file::sendfile, Full;
    SYS_splice => file::splice, Partial("copies through the sentry");
    SYS_tee => file::tee, Full;
    SYS_vmsplice => file::vmsplice, Partial("copies (readv/writev on the pipe); SPLICE_F_GIFT gifts nothing");
    SYS_copy_file_range => file::copy_file_range, Full;
    SYS_close => file::close, Full;
    SYS_close_range => file::close_range, Partial("CLOSE_RANGE_UNSHARE is a no-op (fd tables are never shared)");
    SYS_lseek => file::lseek, Partial("SEEK_DATA/SEEK_HOLE unsupported");
    SYS_dup => file::dup, Full;
    SYS_dup2 => file::dup2, Full;
    SYS_dup3 => file::dup3, Full;
    SYS_fcntl => file::fcntl, Partial("no F_SETOWN/F_*SIG, leases or seals");
    SYS_flock => file::flock, Full;
    SYS_ioctl => file::ioctl, Partial("FIOCLEX, FIONCLEX, FIONBIO, FIONREAD, SIOCOUTQ (internet sockets), FS_IOC_GETFLAGS (FS_IOC_SETFLAGS refused); on sockets SIOCGIFCONF, SIOCGIFINDEX, SIOCGIFNAME, SIOCGIFFLAGS, SIOCGIFMTU, SIOCGIFADDR, SIOCGIFNETMASK, SIOCGIFHWADDR; on the sandbox's ptys termios(2), window size, job control (TIOCSCTTY, TIOC[GS]PGRP, TIOCGSID, TIOCNOTTY) and TIOCGPTN/TIOCSPTLCK/TIOCGPTPEER; termios and window size on a host terminal; ENOTTY otherwise");
    SYS_pipe => file::pipe, Full;
    SYS_pipe2 => file::pipe2, Full;
    SYS_getdents64 => file::getdents64, Full;
    SYS_fsync => file::fsync, Full;
    SYS_fdatasync => file::fdatasync, Full;
    SYS_sync => file::sync, Partial("returns 0: gofer files' data is in the host's page cache; fsync and syncfs make it durable");
    SYS_syncfs => file::syncfs, Full;
    SYS_sync_file_range => file::sync_file_range, Full;
    SYS_eventfd => eventfd::eventfd, Full;
    SYS_eventfd2 => eventfd::eventfd2, Full;
    SYS_timerfd_create => eventfd::timerfd_create, Full;
    SYS_timerfd_settime => eventfd::timerfd_settime, Full;
    SYS_timerfd_gettime => eventfd::timerfd_gettime, Full;
    // poll: waiting on fds
    SYS_poll => poll::poll, Full;
    SYS_ppoll => poll::ppoll, Full;
    SYS_select => poll::select, Full;
    SYS_pselect6 => poll::pselect6, Full;
    SYS_epoll_create => poll::epoll_create, Full;
    SYS_epoll_create1 => poll::epoll_create1, Full;
    SYS_epoll_ctl => poll::epoll_ctl, Partial("EPOLLET is level-triggered; EPOLLEXCLUSIVE ignored");
    SYS_epoll_wait => poll::epoll_wait, Full;
    SYS_epoll_pwait => poll::epoll_pwait, Full;
    SYS_epoll_pwait2 => poll::epoll_pwait2, Full;
    // socket: unix and internet sockets
    SYS_socket => socket::socket, Partial("AF_UNIX (stream, datagram, seqpacket); AF_INET and AF_INET6 TCP and UDP on the sandbox's loopback and (IPv4) its network device; or host sockets with --network host; IPv4 ICMP raw sockets (CAP_NET_RAW) and ping sockets (the spec's net.ipv4.ping_group_range, EACCES by default); other raw protocols and ICMPv6 EPROTONOSUPPORT; NETLINK_ROUTE (the sandbox's lo and device, or the host's network read-only with --network host); packet sockets EAFNOSUPPORT");
    SYS_socketpair => socket::socketpair, Partial("AF_UNIX (AF_INET: EOPNOTSUPP, as Linux)");
    SYS_bind => socket::bind, Partial("AF_UNIX: paths and abstract names, autobind; AF_INET/AF_INET6: loopback and wildcard addresses, SO_REUSEADDR/SO_REUSEPORT conflicts, ephemeral ports");
    SYS_listen => socket::listen, Full;
    SYS_accept => socket::accept, Full;
    SYS_accept4 => socket::accept4, Full;
    SYS_connect => socket::connect, Partial("AF_UNIX; AF_INET/AF_INET6 on the sandbox's loopback, TCP and UDP over IPv4 through the network device with --network sandbox in a CNI netns (IPv6 beyond loopback: ENETUNREACH), any with --network host; non-blocking EINPROGRESS as Linux");
    SYS_sendto => socket::sendto, Partial("AF_UNIX datagrams to a name arrive without the sender's address; no MSG_OOB");
    SYS_recvfrom => socket::recvfrom, Partial("AF_UNIX: the source of unconnected datagrams shows as unnamed; no MSG_OOB");
    SYS_sendmsg => socket::sendmsg, Partial("SCM_RIGHTS on connected unix sockets; SCM_CREDENTIALS accepted, not forwarded; IP-level control messages accepted, no effect");
    SYS_recvmsg => socket::recvmsg, Partial("SCM_RIGHTS; no SCM_CREDENTIALS; no IP-level control messages");
    SYS_sendmmsg => socket::sendmmsg, Full;
    SYS_recvmmsg => socket::recvmmsg, Partial("the timeout is checked between messages, as Linux");
    SYS_shutdown => socket::shutdown, Full;
    SYS_getsockname => socket::getsockname, Full;
    SYS_getpeername => socket::getpeername, Full;
    SYS_getsockopt => socket::getsockopt, Partial("unix: SO_PEERCRED, SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN, SO_ERROR, buffer sizes; inet: the common SOL_SOCKET, IP, IPV6 and TCP options (TCP_INFO reports only the state)");
    SYS_setsockopt => socket::setsockopt, Partial("unix: SO_RCVBUF, SO_SNDBUF, SO_RCVLOWAT, SO_SNDLOWAT, SO_PASSCRED; inet: the common options, stored and reported (SO_RCVBUF bounds UDP queues; timeouts, keepalive and TTL have no effect on loopback)");
    // fs: paths and metadata
    SYS_open => fs::open, Full;
    SYS_openat => fs::openat, Full;
    SYS_openat2 => fs::openat2, Partial("RESOLVE_CACHED refuses only creating and truncating opens");
    SYS_mount => mount::mount, Partial("tmpfs, proc, sysfs, bind (not recursive), read-only remount, move; propagation flags accepted as no-ops; needs CAP_SYS_ADMIN");
    SYS_umount2 => mount::umount2, Partial("always lazy (MNT_DETACH)");
    SYS_unshare => mount::unshare, Partial("CLONE_NEWNS (a copy of the caller's mount namespace, with CAP_SYS_ADMIN); CLONE_FS, CLONE_FILES, CLONE_SYSVSEM accepted; other namespaces EPERM");
    SYS_pivot_root => mount::pivot_root, Partial("other processes of the namespace keep their root and cwd by path, rebased; needs CAP_SYS_ADMIN");
    SYS_creat => fs::creat, Full;
    SYS_stat => fs::stat, Full;
    SYS_lstat => fs::lstat, Full;
    SYS_fstat => fs::fstat, Full;
    SYS_newfstatat => fs::newfstatat, Full;
    SYS_statx => fs::statx, Partial("no btime; STATX_BASIC_STATS only");
    SYS_statfs => fs::statfs, Partial("the host filesystem's figures on gofer mounts, synthetic ones on in-memory filesystems");
    SYS_fstatfs => fs::fstatfs, Partial("the host filesystem's figures on gofer mounts, synthetic ones on in-memory filesystems");
    SYS_access => fs::access, Full;
    SYS_faccessat => fs::faccessat, Full;
    SYS_faccessat2 => fs::faccessat2, Full;
    SYS_readlink => fs::readlink, Full;
    SYS_readlinkat => fs::readlinkat, Full;
    SYS_getcwd => fs::getcwd, Full;
    SYS_chdir => fs::chdir, Full;
    SYS_fchdir => fs::fchdir, Full;
    SYS_chroot => fs::chroot, Full;
    SYS_umask => fs::umask, Full;
    SYS_mkdir => fs::mkdir, Full;
    SYS_mkdirat => fs::mkdirat, Full;
    SYS_mknod => fs::mknod, Partial("FIFOs, sockets and regular files; device nodes refused (EPERM)");
    SYS_mknodat => fs::mknodat, Partial("as mknod");
    SYS_unlink => fs::unlink, Full;
    SYS_unlinkat => fs::unlinkat, Full;
    SYS_rmdir => fs::rmdir, Full;
    SYS_rename => fs::rename, Full;
    SYS_renameat => fs::renameat, Full;
    SYS_renameat2 => fs::renameat2, Partial("RENAME_NOREPLACE and RENAME_EXCHANGE; RENAME_WHITEOUT is EINVAL");
    SYS_link => fs::link, Full;
    SYS_linkat => fs::linkat, Full;
    SYS_symlink => fs::symlink, Full;
    SYS_symlinkat => fs::symlinkat, Full;
    SYS_chmod => fs::chmod, Full;
    SYS_fchmod => fs::fchmod, Full;
    SYS_fchmodat => fs::fchmodat, Full;
    SYS_fchmodat2 => fs::fchmodat2, Full;
    SYS_chown => fs::chown, Full;
    SYS_lchown => fs::lchown, Full;
    SYS_fchown => fs::fchown, Full;
    SYS_fchownat => fs::fchownat, Full;
    SYS_utimensat => fs::utimensat, Full;
    SYS_utimes => fs::utimes, Full;
    SYS_futimesat => fs::futimesat, Full;
    SYS_utime => fs::utime, Full;
    SYS_truncate => fs::truncate, Full;
    SYS_fallocate => fs::fallocate, Partial("in-memory files: allocate, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE");
    SYS_ftruncate => fs::ftruncate, Full;
    // mm
    SYS_brk => mm::brk, Full;
    SYS_mmap => mm::mmap, Partial("MAP_SHARED and MAP_PRIVATE of rootfs and in-memory files map the file's own pages; files without a host fd (/proc) are private copies and refuse writable MAP_SHARED (ENODEV)");
    SYS_munmap => mm::munmap, Full;
    SYS_mprotect => mm::mprotect, Full;
    SYS_mincore => mm::mincore, Full;
    SYS_timer_create => timer::timer_create, Partial("SIGEV_SIGNAL, SIGEV_THREAD_ID, SIGEV_NONE; CPU-clock timers poll every 4 ms");
    SYS_timer_settime => timer::timer_settime, Full;
    SYS_timer_gettime => timer::timer_gettime, Full;
    SYS_timer_getoverrun => timer::timer_getoverrun, Full;
    SYS_timer_delete => timer::timer_delete, Full;
    SYS_msgget => sysv::msgget, Full;
    SYS_mq_open => mqueue::mq_open, Partial("queues are not listed in an mqueue mount");
    SYS_mq_unlink => mqueue::mq_unlink, Full;
    SYS_mq_timedsend => mqueue::mq_timedsend, Full;
    SYS_mq_timedreceive => mqueue::mq_timedreceive, Full;
    SYS_mq_notify => mqueue::mq_notify, Partial("SIGEV_SIGNAL and SIGEV_NONE; SIGEV_THREAD (a netlink socket) EINVAL");
    SYS_mq_getsetattr => mqueue::mq_getsetattr, Full;
    SYS_msgsnd => sysv::msgsnd, Full;
    SYS_msgrcv => sysv::msgrcv, Full;
    SYS_msgctl => sysv::msgctl, Full;
    SYS_semget => sysv::semget, Full;
    SYS_semop => sysv::semop, Full;
    SYS_semtimedop => sysv::semtimedop, Full;
    SYS_semctl => sysv::semctl, Full;
    SYS_shmget => sysv::shmget, Partial("SHM_HUGETLB refused (EPERM)");
    SYS_shmat => sysv::shmat, Full;
    SYS_shmdt => sysv::shmdt, Full;
    SYS_shmctl => sysv::shmctl, Partial("SHM_LOCK/SHM_UNLOCK checked, nothing pinned");
    SYS_mlock => mm::mlock, Partial("checked (mapped range, RLIMIT_MEMLOCK) but host memory is never pinned");
    SYS_mlock2 => mm::mlock2, Partial("as mlock");
    SYS_munlock => mm::munlock, Full;
    SYS_mlockall => mm::mlockall, Partial("checked but host memory is never pinned");
    SYS_munlockall => mm::munlockall, Full;
    SYS_mremap => mm::mremap, Full;
    SYS_madvise => mm::madvise, Partial("allowlisted advice values");
    SYS_msync => mm::msync, Partial("no-op: file mappings are private copies");
    // process
    SYS_getpid => process::getpid, Full;
    SYS_getppid => process::getppid, Full;
    SYS_gettid => process::gettid, Full;
    SYS_getuid => process::getuid, Full;
    SYS_geteuid => process::geteuid, Full;
    SYS_getgid => process::getgid, Full;
    SYS_getegid => process::getegid, Full;
    SYS_getresuid => process::getresuid, Full;
    SYS_getresgid => process::getresgid, Full;
    SYS_getgroups => process::getgroups, Full;
    SYS_setuid => creds::setuid, Partial("privilege is euid 0; capabilities are not modelled yet");
    SYS_setgid => creds::setgid, Partial("privilege is euid 0; capabilities are not modelled yet");
    SYS_setreuid => creds::setreuid, Partial("privilege is euid 0; capabilities are not modelled yet");
    SYS_setregid => creds::setregid, Partial("privilege is euid 0; capabilities are not modelled yet");
    SYS_setresuid => creds::setresuid, Partial("privilege is euid 0; capabilities are not modelled yet");
    SYS_setresgid => creds::setresgid, Partial("privilege is euid 0; capabilities are not modelled yet");
    SYS_setgroups => creds::setgroups, Partial("privilege is euid 0; capabilities are not modelled yet");
    SYS_setfsuid => creds::setfsuid, Partial("returns the effective id; fs ids follow the effective ids");
    SYS_setfsgid => creds::setfsgid, Partial("returns the effective id; fs ids follow the effective ids");
    SYS_capget => creds::capget, Full;
    SYS_capset => creds::capset, Partial("the sets are kept with Linux's rules; permission checks still treat effective uid 0 as privileged");
    SYS_getpgrp => process::getpgrp, Full;
    SYS_getpgid => process::getpgid, Full;
    SYS_setpgid => process::setpgid, Full;
    SYS_getsid => process::getsid, Full;
    SYS_setsid => process::setsid, Full;
    SYS_clone => process::clone, Partial("processes and threads; CLONE_VM between processes only with CLONE_VFORK (the child shares the parent's memory until it execs or exits); no namespace flags");
    SYS_fork => process::fork, Full;
    SYS_clone3 => process::clone3, Partial("as clone; no CLONE_PIDFD, set_tid or CLONE_INTO_CGROUP");
    SYS_vfork => process::vfork, Full;
    SYS_execve => process::execve, Full;
    SYS_exit => process::exit, Full;
    SYS_exit_group => process::exit_group, Full;
    SYS_wait4 => process::wait4, Full;
    SYS_waitid => process::waitid, Full;
    SYS_set_tid_address => process::set_tid_address, Full;
    SYS_set_robust_list => process::set_robust_list, Partial("recorded; robust futexes are not processed at exit");
    SYS_arch_prctl => process::arch_prctl, Partial("ARCH_SET_FS/GET_FS/SET_GS/GET_GS");
    SYS_prctl => process::prctl, Partial("names, dumpable, no_new_privs, pdeathsig, subreaper accepted");
    SYS_sched_getaffinity => process::sched_getaffinity, Full;
    SYS_sched_setaffinity => process::sched_setaffinity, Partial("accepted, not applied");
    SYS_sched_yield => process::sched_yield, Full;
    SYS_sched_getscheduler => process::sched_getscheduler, Partial("always SCHED_OTHER");
    SYS_sched_getparam => process::sched_getparam, Partial("always priority 0");
    SYS_sched_setscheduler => process::sched_setscheduler, Partial("SCHED_OTHER/BATCH/IDLE with priority 0 accepted, not applied");
    SYS_sched_get_priority_max => process::sched_get_priority_max, Full;
    SYS_getpriority => process::getpriority, Full;
    SYS_setpriority => process::setpriority, Partial("nice values are kept and checked but do not change host scheduling");
    SYS_sched_get_priority_min => process::sched_get_priority_min, Full;
    SYS_getcpu => process::getcpu, Partial("always CPU 0");
    SYS_prlimit64 => process::prlimit64, Partial("RLIMIT_NOFILE and RLIMIT_CPU enforced; other limits recorded");
    SYS_getrlimit => process::getrlimit, Full;
    SYS_setrlimit => process::setrlimit, Full;
    SYS_getrusage => process::getrusage, Partial("usage of killed processes is lost");
    SYS_times => process::times, Full;
    // signal
    SYS_rt_sigaction => signal::rt_sigaction, Full;
    SYS_rt_sigprocmask => signal::rt_sigprocmask, Full;
    SYS_rt_sigpending => signal::rt_sigpending, Full;
    SYS_rt_sigreturn => signal::rt_sigreturn, Full;
    SYS_rt_sigsuspend => signal::rt_sigsuspend, Full;
    SYS_pause => signal::pause, Full;
    SYS_rt_sigtimedwait => signal::rt_sigtimedwait, Full;
    SYS_rt_sigqueueinfo => signal::rt_sigqueueinfo, Full;
    SYS_rt_tgsigqueueinfo => signal::rt_tgsigqueueinfo, Full;
    SYS_signalfd => signalfd::signalfd, Full;
    SYS_signalfd4 => signalfd::signalfd4, Full;
    SYS_sigaltstack => signal::sigaltstack, Full;
    SYS_kill => signal::kill, Full;
    SYS_tkill => signal::tkill, Full;
    SYS_tgkill => signal::tgkill, Full;
    // futex
    SYS_futex => futex::futex, Partial("WAIT, WAKE and their BITSET forms; no requeue, WAKE_OP or PI");
    // time
    SYS_clock_gettime => time::clock_gettime, Partial("CPU-time clocks of other processes unsupported");
    SYS_clock_getres => time::clock_getres, Full;
    SYS_alarm => time::alarm, Full;
    SYS_getitimer => time::getitimer, Partial("ITIMER_VIRTUAL counts system time too (the host clock the sentry reads)");
    SYS_setitimer => time::setitimer, Partial("ITIMER_VIRTUAL counts system time too (the host clock the sentry reads)");
    SYS_gettimeofday => time::gettimeofday, Full;
    SYS_time => time::time, Full;
    SYS_nanosleep => time::nanosleep, Full;
    SYS_clock_nanosleep => time::clock_nanosleep, Full;
    // sys
    SYS_uname => sys::uname, Full;
    SYS_getrandom => sys::getrandom, Full;
    SYS_sysinfo => sys::sysinfo, Partial("host memory figures, sandbox process count");
    SYS_sethostname => sys::sethostname, Full;
};

/// Syscalls deliberately answered with a specific errno instead of ENOSYS,
/// because that is what Linux gives when the feature is absent (programs
/// probe with them). They are still logged once.
pub static UNSUPPORTED: &[(i64, Errno, &str)] = &[];

fn dispatch_table() -> &'static Vec<Option<&'static Row>> {
    static T: OnceLock<Vec<Option<&'static Row>>> = OnceLock::new();
    T.get_or_init(|| {
        let mut v: Vec<Option<&'static Row>> = vec![None; 512];
        for row in TABLE {
            if let Some(slot) = v.get_mut(row.nr as usize) {
                *slot = Some(row);
            }
        }
        v
    })
}

/// One row of the support table for docs and `rvisor syscalls`.
pub struct SupportRow {
    pub nr: u32,
    pub name: &'static str,
    pub level: &'static str,
    pub note: String,
}

/// The support level of every syscall in the x86_64 table.
pub fn support_table() -> Vec<SupportRow> {
    syscall_tables::x86_64::SYSCALLS
        .iter()
        .map(|info| {
            let nr = info.nr as i64;
            let (level, note) =
                if let Some(row) = dispatch_table().get(nr as usize).copied().flatten() {
                    match row.support {
                        Full => ("full", String::new()),
                        Partial(n) => ("partial", n.to_string()),
                    }
                } else if let Some((_, e, n)) = UNSUPPORTED.iter().find(|(n2, _, _)| *n2 == nr) {
                    (
                        "unimplemented",
                        format!(
                            "returns {}: {n}",
                            syscall_tables::errno_name(*e as i32).unwrap_or("?")
                        ),
                    )
                } else {
                    ("unimplemented", "returns ENOSYS".to_string())
                };
            SupportRow {
                nr: info.nr,
                name: info.name,
                level,
                note,
            }
        })
        .collect()
}

struct TaskMem<'a>(&'a Task);

impl syscall_tables::MemReader for TaskMem<'_> {
    fn read_bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.0.read_bytes(addr, len).ok()
    }
    fn read_cstr(&self, addr: u64, max: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; max.min(4096)];
        let n = self.0.stub.read_mem_partial(addr, &mut buf);
        buf.truncate(n);
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            buf.truncate(nul);
        }
        Some(buf)
    }
}

/// Emulates the syscall in `t.regs` and stores its result in `rax`.
pub fn dispatch(t: &mut Task) {
    crate::vfs::next_syscall();
    let nr = t.regs.orig_rax;
    let args = [
        t.regs.rdi, t.regs.rsi, t.regs.rdx, t.regs.r10, t.regs.r8, t.regs.r9,
    ];
    let k = kernel();
    let info = syscall_tables::x86_64::by_number(nr);
    let strace = k.strace.is_some();
    // Calls that never return (or replace the memory the arguments live
    // in) are printed before they run.
    let print_entry = strace
        && matches!(
            nr as i64,
            libc::SYS_execve | libc::SYS_execveat | libc::SYS_exit | libc::SYS_exit_group
        );
    if print_entry {
        if let Some(info) = info {
            let line = syscall_tables::format_entry(info, &args, &TaskMem(t));
            k.strace_line(&format!("[{:>5}] {line}", t.pid()));
        }
    }
    t.thread
        .in_syscall
        .store(true, std::sync::atomic::Ordering::Relaxed);
    use crate::kernel::seccomp::{self, SeccompAction};
    let verdict = seccomp::check(nr, &args);
    let result = match verdict {
        SeccompAction::Allow | SeccompAction::Log => None,
        SeccompAction::Errno(e) => Some(Err(Errno::from_raw(e))),
        SeccompAction::Kill => {
            t.force_kill(libc::SIGSYS);
            Some(Err(Errno::ENOSYS))
        }
        SeccompAction::Trap => {
            // SIGSYS with si_code SYS_SECCOMP, si_syscall and si_arch.
            let mut info = [0u8; 128];
            info[0..4].copy_from_slice(&libc::SIGSYS.to_le_bytes());
            info[8..12].copy_from_slice(&1i32.to_le_bytes());
            info[16..24].copy_from_slice(&t.regs.rip.to_le_bytes());
            info[24..28].copy_from_slice(&(nr as i32).to_le_bytes());
            info[28..32].copy_from_slice(&0xC000_003Eu32.to_le_bytes());
            k.send_signal_thread(&t.proc, &t.thread, libc::SIGSYS, info);
            Some(Err(Errno::ENOSYS))
        }
    };
    if verdict == SeccompAction::Log {
        if let Some(info) = info {
            tracing::info!("seccomp: pid {} called {}", t.pid(), info.name);
        }
    }
    let result = match result {
        Some(r) => r,
        None => match dispatch_table().get(nr as usize).copied().flatten() {
            Some(row) => (row.handler)(t, &args),
            None => {
                let name = info.map(|i| i.name).unwrap_or("unknown");
                k.log_unimplemented(nr, name);
                match UNSUPPORTED.iter().find(|(n, _, _)| *n == nr as i64) {
                    Some((_, e, _)) => Err(*e),
                    None => Err(Errno::ENOSYS),
                }
            }
        },
    };
    t.thread
        .in_syscall
        .store(false, std::sync::atomic::Ordering::Relaxed);
    // Only an EINTR of the call itself is a signal's doing: one the
    // program's own seccomp filter returns (SECCOMP_RET_ERRNO) is its
    // result, as on Linux, and must not restart the call forever.
    let filtered = matches!(
        verdict,
        SeccompAction::Errno(_) | SeccompAction::Kill | SeccompAction::Trap
    );
    if result == Err(Errno::EINTR) && !filtered && crate::kernel::sigframe::restartable(nr) {
        t.restart = Some(nr);
    }
    let ret: i64 = match result {
        Ok(v) => v as i64,
        Err(e) => -(e as i64),
    };
    if strace {
        let line = match (info, print_entry) {
            (Some(info), true) => format!("{}(...) = {}", info.name, ret),
            (Some(info), false) => syscall_tables::format_call(info, &args, ret, &TaskMem(t)),
            (None, _) => syscall_tables::format_unknown(nr, &args, ret),
        };
        if t.exit.is_none() {
            k.strace_line(&format!("[{:>5}] {line}", t.pid()));
        }
    }
    if t.exit.is_none() {
        t.regs.rax = ret as u64;
    }
}

// ---- helpers shared by the handlers ----------------------------------------

/// An fd argument: registers are u64, fds are C ints.
pub fn arg_fd(a: u64) -> i32 {
    a as i32
}
