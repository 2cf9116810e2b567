//! Named values of flag and enum arguments, with the numbers of the x86_64 uapi headers.
//!
//! Written by hand (headers spread these over dozens of files, some only in glibc), and checked
//! against the installed headers by `tests/headers.rs`. Order matters for [`FlagStyle::Bits`]:
//! [`crate::format_flags`] takes entries first to last, so a multi-bit value (`O_SYNC`,
//! `MAP_SHARED_VALIDATE`) must come before the single bits it contains.

use crate::{FlagSet, FlagStyle};

/// `open`/`openat`/`mq_open` flags: the low two bits are the access mode, the rest are bits.
pub static OPEN: FlagSet = FlagSet {
    name: "open_flags",
    style: FlagStyle::OpenFlags,
    values: &[
        (0, "O_RDONLY"),
        (1, "O_WRONLY"),
        (2, "O_RDWR"),
        (3, "O_ACCMODE"),
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o4010000, "O_SYNC"),
        (0o10000, "O_DSYNC"),
        (0o20000, "O_ASYNC"),
        (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
        (0o20200000, "O_TMPFILE"),
        (0o200000, "O_DIRECTORY"),
    ],
};

/// The `AT_*` flags accepted by most `*at` calls (`fchownat`, `linkat`, `newfstatat`, ...).
pub static AT: FlagSet = FlagSet {
    name: "at_flags",
    style: FlagStyle::Bits,
    values: &[
        (0x100, "AT_SYMLINK_NOFOLLOW"),
        (0x400, "AT_SYMLINK_FOLLOW"),
        (0x800, "AT_NO_AUTOMOUNT"),
        (0x1000, "AT_EMPTY_PATH"),
        (0x8000, "AT_RECURSIVE"),
    ],
};

/// `unlinkat` flags: 0x200 means `AT_REMOVEDIR` here (and `AT_EACCESS` for `faccessat2`).
pub static UNLINKAT: FlagSet = FlagSet {
    name: "unlinkat_flags",
    style: FlagStyle::Bits,
    values: &[(0x200, "AT_REMOVEDIR")],
};

/// `faccessat2` flags.
pub static FACCESSAT: FlagSet = FlagSet {
    name: "faccessat_flags",
    style: FlagStyle::Bits,
    values: &[
        (0x100, "AT_SYMLINK_NOFOLLOW"),
        (0x200, "AT_EACCESS"),
        (0x1000, "AT_EMPTY_PATH"),
    ],
};

/// `statx` flags: the `AT_*` path flags plus the `AT_STATX_*` sync mode (0 is "sync as stat").
pub static STATX_AT: FlagSet = FlagSet {
    name: "statx_flags",
    style: FlagStyle::Bits,
    values: &[
        (0, "AT_STATX_SYNC_AS_STAT"),
        (0x100, "AT_SYMLINK_NOFOLLOW"),
        (0x800, "AT_NO_AUTOMOUNT"),
        (0x1000, "AT_EMPTY_PATH"),
        (0x2000, "AT_STATX_FORCE_SYNC"),
        (0x4000, "AT_STATX_DONT_SYNC"),
    ],
};

/// `renameat2` flags.
pub static RENAME: FlagSet = FlagSet {
    name: "rename_flags",
    style: FlagStyle::Bits,
    values: &[
        (1, "RENAME_NOREPLACE"),
        (2, "RENAME_EXCHANGE"),
        (4, "RENAME_WHITEOUT"),
    ],
};

/// `access`/`faccessat` mode; 0 is `F_OK`.
pub static ACCESS_MODE: FlagSet = FlagSet {
    name: "access_mode",
    style: FlagStyle::Bits,
    values: &[(0, "F_OK"), (4, "R_OK"), (2, "W_OK"), (1, "X_OK")],
};

/// Memory protection (`mmap`, `mprotect`, `pkey_mprotect`).
pub static PROT: FlagSet = FlagSet {
    name: "mmap_prot",
    style: FlagStyle::Bits,
    values: &[
        (0, "PROT_NONE"),
        (0x1, "PROT_READ"),
        (0x2, "PROT_WRITE"),
        (0x4, "PROT_EXEC"),
        (0x8, "PROT_SEM"),
        (0x0100_0000, "PROT_GROWSDOWN"),
        (0x0200_0000, "PROT_GROWSUP"),
    ],
};

/// `mmap` flags. The `MAP_HUGE_*` size field shares bit 26 with `MAP_UNINITIALIZED`, so the sizes
/// come first.
pub static MAP: FlagSet = FlagSet {
    name: "mmap_flags",
    style: FlagStyle::Bits,
    values: &[
        (0x03, "MAP_SHARED_VALIDATE"),
        (0x01, "MAP_SHARED"),
        (0x02, "MAP_PRIVATE"),
        (0x10, "MAP_FIXED"),
        (0x20, "MAP_ANONYMOUS"),
        (0x40, "MAP_32BIT"),
        (0x100, "MAP_GROWSDOWN"),
        (0x800, "MAP_DENYWRITE"),
        (0x1000, "MAP_EXECUTABLE"),
        (0x2000, "MAP_LOCKED"),
        (0x4000, "MAP_NORESERVE"),
        (0x8000, "MAP_POPULATE"),
        (0x10000, "MAP_NONBLOCK"),
        (0x20000, "MAP_STACK"),
        (0x40000, "MAP_HUGETLB"),
        (0x80000, "MAP_SYNC"),
        (0x10_0000, "MAP_FIXED_NOREPLACE"),
        (21 << 26, "MAP_HUGE_2MB"),
        (30 << 26, "MAP_HUGE_1GB"),
        (0x400_0000, "MAP_UNINITIALIZED"),
    ],
};

/// `mremap` flags.
pub static MREMAP: FlagSet = FlagSet {
    name: "mremap_flags",
    style: FlagStyle::Bits,
    values: &[
        (1, "MREMAP_MAYMOVE"),
        (2, "MREMAP_FIXED"),
        (4, "MREMAP_DONTUNMAP"),
    ],
};

/// `msync` flags.
pub static MSYNC: FlagSet = FlagSet {
    name: "msync_flags",
    style: FlagStyle::Bits,
    values: &[(1, "MS_ASYNC"), (2, "MS_INVALIDATE"), (4, "MS_SYNC")],
};

/// `mlockall` flags.
pub static MLOCKALL: FlagSet = FlagSet {
    name: "mlockall_flags",
    style: FlagStyle::Bits,
    values: &[(1, "MCL_CURRENT"), (2, "MCL_FUTURE"), (4, "MCL_ONFAULT")],
};

/// `madvise`/`process_madvise` advice.
pub static MADVISE: FlagSet = FlagSet {
    name: "madvise_advice",
    style: FlagStyle::Enum,
    values: &[
        (0, "MADV_NORMAL"),
        (1, "MADV_RANDOM"),
        (2, "MADV_SEQUENTIAL"),
        (3, "MADV_WILLNEED"),
        (4, "MADV_DONTNEED"),
        (8, "MADV_FREE"),
        (9, "MADV_REMOVE"),
        (10, "MADV_DONTFORK"),
        (11, "MADV_DOFORK"),
        (12, "MADV_MERGEABLE"),
        (13, "MADV_UNMERGEABLE"),
        (14, "MADV_HUGEPAGE"),
        (15, "MADV_NOHUGEPAGE"),
        (16, "MADV_DONTDUMP"),
        (17, "MADV_DODUMP"),
        (18, "MADV_WIPEONFORK"),
        (19, "MADV_KEEPONFORK"),
        (20, "MADV_COLD"),
        (21, "MADV_PAGEOUT"),
        (22, "MADV_POPULATE_READ"),
        (23, "MADV_POPULATE_WRITE"),
        (24, "MADV_DONTNEED_LOCKED"),
        (25, "MADV_COLLAPSE"),
        (100, "MADV_HWPOISON"),
        (101, "MADV_SOFT_OFFLINE"),
        (102, "MADV_GUARD_INSTALL"),
        (103, "MADV_GUARD_REMOVE"),
    ],
};

/// `clone` flags. The low byte is the exit signal, which [`crate::format_flags`] shows by name
/// (`CLONE_VM|...|SIGCHLD`) for this set only.
pub static CLONE: FlagSet = FlagSet {
    name: CLONE_FLAGS_NAME,
    style: FlagStyle::Bits,
    values: &[
        (0x100, "CLONE_VM"),
        (0x200, "CLONE_FS"),
        (0x400, "CLONE_FILES"),
        (0x800, "CLONE_SIGHAND"),
        (0x1000, "CLONE_PIDFD"),
        (0x2000, "CLONE_PTRACE"),
        (0x4000, "CLONE_VFORK"),
        (0x8000, "CLONE_PARENT"),
        (0x10000, "CLONE_THREAD"),
        (0x20000, "CLONE_NEWNS"),
        (0x40000, "CLONE_SYSVSEM"),
        (0x80000, "CLONE_SETTLS"),
        (0x10_0000, "CLONE_PARENT_SETTID"),
        (0x20_0000, "CLONE_CHILD_CLEARTID"),
        (0x40_0000, "CLONE_DETACHED"),
        (0x80_0000, "CLONE_UNTRACED"),
        (0x100_0000, "CLONE_CHILD_SETTID"),
        (0x200_0000, "CLONE_NEWCGROUP"),
        (0x400_0000, "CLONE_NEWUTS"),
        (0x800_0000, "CLONE_NEWIPC"),
        (0x1000_0000, "CLONE_NEWUSER"),
        (0x2000_0000, "CLONE_NEWPID"),
        (0x4000_0000, "CLONE_NEWNET"),
        (0x8000_0000, "CLONE_IO"),
        (0x1_0000_0000, "CLONE_CLEAR_SIGHAND"),
        (0x2_0000_0000, "CLONE_INTO_CGROUP"),
    ],
};

/// Name of [`CLONE`]; [`crate::format_flags`] keys its exit-signal handling on it.
pub const CLONE_FLAGS_NAME: &str = "clone_flags";

/// `unshare`/`setns` namespace flags (no exit signal byte; `CLONE_NEWTIME` lives in it instead).
pub static UNSHARE: FlagSet = FlagSet {
    name: "unshare_flags",
    style: FlagStyle::Bits,
    values: &[
        (0x80, "CLONE_NEWTIME"),
        (0x200, "CLONE_FS"),
        (0x400, "CLONE_FILES"),
        (0x800, "CLONE_SIGHAND"),
        (0x10000, "CLONE_THREAD"),
        (0x20000, "CLONE_NEWNS"),
        (0x40000, "CLONE_SYSVSEM"),
        (0x200_0000, "CLONE_NEWCGROUP"),
        (0x400_0000, "CLONE_NEWUTS"),
        (0x800_0000, "CLONE_NEWIPC"),
        (0x1000_0000, "CLONE_NEWUSER"),
        (0x2000_0000, "CLONE_NEWPID"),
        (0x4000_0000, "CLONE_NEWNET"),
    ],
};

/// `fcntl` commands.
pub static FCNTL_CMD: FlagSet = FlagSet {
    name: "fcntl_cmd",
    style: FlagStyle::Enum,
    values: &[
        (0, "F_DUPFD"),
        (1, "F_GETFD"),
        (2, "F_SETFD"),
        (3, "F_GETFL"),
        (4, "F_SETFL"),
        (5, "F_GETLK"),
        (6, "F_SETLK"),
        (7, "F_SETLKW"),
        (8, "F_SETOWN"),
        (9, "F_GETOWN"),
        (10, "F_SETSIG"),
        (11, "F_GETSIG"),
        (15, "F_SETOWN_EX"),
        (16, "F_GETOWN_EX"),
        (17, "F_GETOWNER_UIDS"),
        (36, "F_OFD_GETLK"),
        (37, "F_OFD_SETLK"),
        (38, "F_OFD_SETLKW"),
        (1024, "F_SETLEASE"),
        (1025, "F_GETLEASE"),
        (1026, "F_NOTIFY"),
        (1027, "F_DUPFD_QUERY"),
        (1028, "F_CREATED_QUERY"),
        (1029, "F_CANCELLK"),
        (1030, "F_DUPFD_CLOEXEC"),
        (1031, "F_SETPIPE_SZ"),
        (1032, "F_GETPIPE_SZ"),
        (1033, "F_ADD_SEALS"),
        (1034, "F_GET_SEALS"),
        (1035, "F_GET_RW_HINT"),
        (1036, "F_SET_RW_HINT"),
        (1037, "F_GET_FILE_RW_HINT"),
        (1038, "F_SET_FILE_RW_HINT"),
    ],
};

/// File descriptor flags (`F_GETFD`/`F_SETFD`).
pub static FD_FLAGS: FlagSet = FlagSet {
    name: "fd_flags",
    style: FlagStyle::Bits,
    values: &[(1, "FD_CLOEXEC")],
};

/// File seals (`F_ADD_SEALS`).
pub static SEALS: FlagSet = FlagSet {
    name: "seals",
    style: FlagStyle::Bits,
    values: &[
        (1, "F_SEAL_SEAL"),
        (2, "F_SEAL_SHRINK"),
        (4, "F_SEAL_GROW"),
        (8, "F_SEAL_WRITE"),
        (0x10, "F_SEAL_FUTURE_WRITE"),
        (0x20, "F_SEAL_EXEC"),
    ],
};

/// `flock` operation.
pub static FLOCK: FlagSet = FlagSet {
    name: "flock_op",
    style: FlagStyle::Bits,
    values: &[
        (1, "LOCK_SH"),
        (2, "LOCK_EX"),
        (4, "LOCK_NB"),
        (8, "LOCK_UN"),
    ],
};

/// `lseek` whence.
pub static SEEK_WHENCE: FlagSet = FlagSet {
    name: "seek_whence",
    style: FlagStyle::Enum,
    values: &[
        (0, "SEEK_SET"),
        (1, "SEEK_CUR"),
        (2, "SEEK_END"),
        (3, "SEEK_DATA"),
        (4, "SEEK_HOLE"),
    ],
};

/// `rt_sigprocmask` how.
pub static SIGPROCMASK_HOW: FlagSet = FlagSet {
    name: "sigprocmask_how",
    style: FlagStyle::Enum,
    values: &[(0, "SIG_BLOCK"), (1, "SIG_UNBLOCK"), (2, "SIG_SETMASK")],
};

/// Clock ids (`clock_gettime`, `timer_create`, `timerfd_create`, ...).
pub static CLOCK: FlagSet = FlagSet {
    name: "clock_id",
    style: FlagStyle::Enum,
    values: &[
        (0, "CLOCK_REALTIME"),
        (1, "CLOCK_MONOTONIC"),
        (2, "CLOCK_PROCESS_CPUTIME_ID"),
        (3, "CLOCK_THREAD_CPUTIME_ID"),
        (4, "CLOCK_MONOTONIC_RAW"),
        (5, "CLOCK_REALTIME_COARSE"),
        (6, "CLOCK_MONOTONIC_COARSE"),
        (7, "CLOCK_BOOTTIME"),
        (8, "CLOCK_REALTIME_ALARM"),
        (9, "CLOCK_BOOTTIME_ALARM"),
        (11, "CLOCK_TAI"),
    ],
};

/// `clock_nanosleep`/`timer_settime` flags.
pub static TIMER_FLAGS: FlagSet = FlagSet {
    name: "timer_flags",
    style: FlagStyle::Bits,
    values: &[(1, "TIMER_ABSTIME")],
};

/// `timerfd_settime` flags.
pub static TFD_TIMER: FlagSet = FlagSet {
    name: "timerfd_settime_flags",
    style: FlagStyle::Bits,
    values: &[(1, "TFD_TIMER_ABSTIME"), (2, "TFD_TIMER_CANCEL_ON_SET")],
};

/// `getitimer`/`setitimer` which.
pub static ITIMER: FlagSet = FlagSet {
    name: "itimer_which",
    style: FlagStyle::Enum,
    values: &[
        (0, "ITIMER_REAL"),
        (1, "ITIMER_VIRTUAL"),
        (2, "ITIMER_PROF"),
    ],
};

/// `wait4` options (value 2 is `WUNTRACED` here, `WSTOPPED` for `waitid`).
pub static WAIT4_OPTIONS: FlagSet = FlagSet {
    name: "wait4_options",
    style: FlagStyle::Bits,
    values: &[
        (1, "WNOHANG"),
        (2, "WUNTRACED"),
        (4, "WEXITED"),
        (8, "WCONTINUED"),
        (0x0100_0000, "WNOWAIT"),
        (0x2000_0000, "__WNOTHREAD"),
        (0x4000_0000, "__WALL"),
        (0x8000_0000, "__WCLONE"),
    ],
};

/// `waitid` options.
pub static WAITID_OPTIONS: FlagSet = FlagSet {
    name: "waitid_options",
    style: FlagStyle::Bits,
    values: &[
        (1, "WNOHANG"),
        (2, "WSTOPPED"),
        (4, "WEXITED"),
        (8, "WCONTINUED"),
        (0x0100_0000, "WNOWAIT"),
        (0x2000_0000, "__WNOTHREAD"),
        (0x4000_0000, "__WALL"),
        (0x8000_0000, "__WCLONE"),
    ],
};

/// `waitid` id type.
pub static IDTYPE: FlagSet = FlagSet {
    name: "idtype",
    style: FlagStyle::Enum,
    values: &[(0, "P_ALL"), (1, "P_PID"), (2, "P_PGID"), (3, "P_PIDFD")],
};

/// `arch_prctl` codes.
pub static ARCH_PRCTL: FlagSet = FlagSet {
    name: "arch_prctl_code",
    style: FlagStyle::Enum,
    values: &[
        (0x1001, "ARCH_SET_GS"),
        (0x1002, "ARCH_SET_FS"),
        (0x1003, "ARCH_GET_FS"),
        (0x1004, "ARCH_GET_GS"),
        (0x1011, "ARCH_GET_CPUID"),
        (0x1012, "ARCH_SET_CPUID"),
        (0x1021, "ARCH_GET_XCOMP_SUPP"),
        (0x1022, "ARCH_GET_XCOMP_PERM"),
        (0x1023, "ARCH_REQ_XCOMP_PERM"),
        (0x1024, "ARCH_GET_XCOMP_GUEST_PERM"),
        (0x1025, "ARCH_REQ_XCOMP_GUEST_PERM"),
        (0x2001, "ARCH_MAP_VDSO_X32"),
        (0x2002, "ARCH_MAP_VDSO_32"),
        (0x2003, "ARCH_MAP_VDSO_64"),
        (0x4001, "ARCH_GET_UNTAG_MASK"),
        (0x4002, "ARCH_ENABLE_TAGGED_ADDR"),
        (0x4003, "ARCH_GET_MAX_TAG_BITS"),
        (0x4004, "ARCH_FORCE_TAGGED_SVA"),
        (0x5001, "ARCH_SHSTK_ENABLE"),
        (0x5002, "ARCH_SHSTK_DISABLE"),
        (0x5003, "ARCH_SHSTK_LOCK"),
        (0x5004, "ARCH_SHSTK_UNLOCK"),
        (0x5005, "ARCH_SHSTK_STATUS"),
    ],
};

/// `prctl` options.
pub static PRCTL: FlagSet = FlagSet {
    name: "prctl_option",
    style: FlagStyle::Enum,
    values: &[
        (1, "PR_SET_PDEATHSIG"),
        (2, "PR_GET_PDEATHSIG"),
        (3, "PR_GET_DUMPABLE"),
        (4, "PR_SET_DUMPABLE"),
        (5, "PR_GET_UNALIGN"),
        (6, "PR_SET_UNALIGN"),
        (7, "PR_GET_KEEPCAPS"),
        (8, "PR_SET_KEEPCAPS"),
        (9, "PR_GET_FPEMU"),
        (10, "PR_SET_FPEMU"),
        (11, "PR_GET_FPEXC"),
        (12, "PR_SET_FPEXC"),
        (13, "PR_GET_TIMING"),
        (14, "PR_SET_TIMING"),
        (15, "PR_SET_NAME"),
        (16, "PR_GET_NAME"),
        (19, "PR_GET_ENDIAN"),
        (20, "PR_SET_ENDIAN"),
        (21, "PR_GET_SECCOMP"),
        (22, "PR_SET_SECCOMP"),
        (23, "PR_CAPBSET_READ"),
        (24, "PR_CAPBSET_DROP"),
        (25, "PR_GET_TSC"),
        (26, "PR_SET_TSC"),
        (27, "PR_GET_SECUREBITS"),
        (28, "PR_SET_SECUREBITS"),
        (29, "PR_SET_TIMERSLACK"),
        (30, "PR_GET_TIMERSLACK"),
        (31, "PR_TASK_PERF_EVENTS_DISABLE"),
        (32, "PR_TASK_PERF_EVENTS_ENABLE"),
        (33, "PR_MCE_KILL"),
        (34, "PR_MCE_KILL_GET"),
        (35, "PR_SET_MM"),
        (36, "PR_SET_CHILD_SUBREAPER"),
        (37, "PR_GET_CHILD_SUBREAPER"),
        (38, "PR_SET_NO_NEW_PRIVS"),
        (39, "PR_GET_NO_NEW_PRIVS"),
        (40, "PR_GET_TID_ADDRESS"),
        (41, "PR_SET_THP_DISABLE"),
        (42, "PR_GET_THP_DISABLE"),
        (43, "PR_MPX_ENABLE_MANAGEMENT"),
        (44, "PR_MPX_DISABLE_MANAGEMENT"),
        (45, "PR_SET_FP_MODE"),
        (46, "PR_GET_FP_MODE"),
        (47, "PR_CAP_AMBIENT"),
        (50, "PR_SVE_SET_VL"),
        (51, "PR_SVE_GET_VL"),
        (52, "PR_GET_SPECULATION_CTRL"),
        (53, "PR_SET_SPECULATION_CTRL"),
        (54, "PR_PAC_RESET_KEYS"),
        (55, "PR_SET_TAGGED_ADDR_CTRL"),
        (56, "PR_GET_TAGGED_ADDR_CTRL"),
        (57, "PR_SET_IO_FLUSHER"),
        (58, "PR_GET_IO_FLUSHER"),
        (59, "PR_SET_SYSCALL_USER_DISPATCH"),
        (60, "PR_PAC_SET_ENABLED_KEYS"),
        (61, "PR_PAC_GET_ENABLED_KEYS"),
        (62, "PR_SCHED_CORE"),
        (63, "PR_SME_SET_VL"),
        (64, "PR_SME_GET_VL"),
        (65, "PR_SET_MDWE"),
        (66, "PR_GET_MDWE"),
        (67, "PR_SET_MEMORY_MERGE"),
        (68, "PR_GET_MEMORY_MERGE"),
        (0x5356_4d41, "PR_SET_VMA"),
    ],
};

/// `futex` operation: the command with the private/realtime modifier bits folded into the name,
/// as strace shows them (`FUTEX_WAIT_PRIVATE`).
pub static FUTEX_OP: FlagSet = FlagSet {
    name: "futex_op",
    style: FlagStyle::Enum,
    values: &[
        (0, "FUTEX_WAIT"),
        (1, "FUTEX_WAKE"),
        (2, "FUTEX_FD"),
        (3, "FUTEX_REQUEUE"),
        (4, "FUTEX_CMP_REQUEUE"),
        (5, "FUTEX_WAKE_OP"),
        (6, "FUTEX_LOCK_PI"),
        (7, "FUTEX_UNLOCK_PI"),
        (8, "FUTEX_TRYLOCK_PI"),
        (9, "FUTEX_WAIT_BITSET"),
        (10, "FUTEX_WAKE_BITSET"),
        (11, "FUTEX_WAIT_REQUEUE_PI"),
        (12, "FUTEX_CMP_REQUEUE_PI"),
        (13, "FUTEX_LOCK_PI2"),
        (128, "FUTEX_WAIT_PRIVATE"),
        (129, "FUTEX_WAKE_PRIVATE"),
        (131, "FUTEX_REQUEUE_PRIVATE"),
        (132, "FUTEX_CMP_REQUEUE_PRIVATE"),
        (133, "FUTEX_WAKE_OP_PRIVATE"),
        (134, "FUTEX_LOCK_PI_PRIVATE"),
        (135, "FUTEX_UNLOCK_PI_PRIVATE"),
        (136, "FUTEX_TRYLOCK_PI_PRIVATE"),
        (137, "FUTEX_WAIT_BITSET_PRIVATE"),
        (138, "FUTEX_WAKE_BITSET_PRIVATE"),
        (139, "FUTEX_WAIT_REQUEUE_PI_PRIVATE"),
        (140, "FUTEX_CMP_REQUEUE_PI_PRIVATE"),
        (141, "FUTEX_LOCK_PI2_PRIVATE"),
        (256, "FUTEX_WAIT|FUTEX_CLOCK_REALTIME"),
        (265, "FUTEX_WAIT_BITSET|FUTEX_CLOCK_REALTIME"),
        (267, "FUTEX_WAIT_REQUEUE_PI|FUTEX_CLOCK_REALTIME"),
        (269, "FUTEX_LOCK_PI2|FUTEX_CLOCK_REALTIME"),
        (384, "FUTEX_WAIT_PRIVATE|FUTEX_CLOCK_REALTIME"),
        (393, "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME"),
        (395, "FUTEX_WAIT_REQUEUE_PI_PRIVATE|FUTEX_CLOCK_REALTIME"),
        (397, "FUTEX_LOCK_PI2_PRIVATE|FUTEX_CLOCK_REALTIME"),
    ],
};

/// `pipe2` flags.
pub static PIPE2: FlagSet = FlagSet {
    name: "pipe2_flags",
    style: FlagStyle::Bits,
    values: &[
        (0o200, "O_NOTIFICATION_PIPE"),
        (0o4000, "O_NONBLOCK"),
        (0o40000, "O_DIRECT"),
        (0o2000000, "O_CLOEXEC"),
    ],
};

/// `dup3` flags.
pub static DUP3: FlagSet = FlagSet {
    name: "dup3_flags",
    style: FlagStyle::Bits,
    values: &[(0o2000000, "O_CLOEXEC")],
};

/// `eventfd2` flags.
pub static EFD: FlagSet = FlagSet {
    name: "eventfd_flags",
    style: FlagStyle::Bits,
    values: &[
        (1, "EFD_SEMAPHORE"),
        (0o4000, "EFD_NONBLOCK"),
        (0o2000000, "EFD_CLOEXEC"),
    ],
};

/// `epoll_create1` flags.
pub static EPOLL_CREATE: FlagSet = FlagSet {
    name: "epoll_create_flags",
    style: FlagStyle::Bits,
    values: &[(0o2000000, "EPOLL_CLOEXEC")],
};

/// `epoll_ctl` operation.
pub static EPOLL_CTL: FlagSet = FlagSet {
    name: "epoll_ctl_op",
    style: FlagStyle::Enum,
    values: &[
        (1, "EPOLL_CTL_ADD"),
        (2, "EPOLL_CTL_DEL"),
        (3, "EPOLL_CTL_MOD"),
    ],
};

/// `inotify_init1` flags.
pub static IN_INIT: FlagSet = FlagSet {
    name: "inotify_init_flags",
    style: FlagStyle::Bits,
    values: &[(0o4000, "IN_NONBLOCK"), (0o2000000, "IN_CLOEXEC")],
};

/// `signalfd4` flags.
pub static SFD: FlagSet = FlagSet {
    name: "signalfd_flags",
    style: FlagStyle::Bits,
    values: &[(0o4000, "SFD_NONBLOCK"), (0o2000000, "SFD_CLOEXEC")],
};

/// `timerfd_create` flags.
pub static TFD: FlagSet = FlagSet {
    name: "timerfd_create_flags",
    style: FlagStyle::Bits,
    values: &[(0o4000, "TFD_NONBLOCK"), (0o2000000, "TFD_CLOEXEC")],
};

/// `memfd_create` flags.
pub static MFD: FlagSet = FlagSet {
    name: "memfd_flags",
    style: FlagStyle::Bits,
    values: &[
        (1, "MFD_CLOEXEC"),
        (2, "MFD_ALLOW_SEALING"),
        (4, "MFD_HUGETLB"),
        (8, "MFD_NOEXEC_SEAL"),
        (0x10, "MFD_EXEC"),
    ],
};

/// `pidfd_open` flags.
pub static PIDFD_OPEN: FlagSet = FlagSet {
    name: "pidfd_open_flags",
    style: FlagStyle::Bits,
    values: &[(0o200, "PIDFD_THREAD"), (0o4000, "PIDFD_NONBLOCK")],
};

/// `close_range` flags.
pub static CLOSE_RANGE: FlagSet = FlagSet {
    name: "close_range_flags",
    style: FlagStyle::Bits,
    values: &[(2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC")],
};

/// `getrandom` flags.
pub static GRND: FlagSet = FlagSet {
    name: "getrandom_flags",
    style: FlagStyle::Bits,
    values: &[
        (1, "GRND_NONBLOCK"),
        (2, "GRND_RANDOM"),
        (4, "GRND_INSECURE"),
    ],
};

/// `splice`/`tee`/`vmsplice` flags.
pub static SPLICE: FlagSet = FlagSet {
    name: "splice_flags",
    style: FlagStyle::Bits,
    values: &[
        (1, "SPLICE_F_MOVE"),
        (2, "SPLICE_F_NONBLOCK"),
        (4, "SPLICE_F_MORE"),
        (8, "SPLICE_F_GIFT"),
    ],
};

/// `*setxattr` flags.
pub static XATTR: FlagSet = FlagSet {
    name: "xattr_flags",
    style: FlagStyle::Bits,
    values: &[(1, "XATTR_CREATE"), (2, "XATTR_REPLACE")],
};

/// Resource limits (`getrlimit`, `setrlimit`, `prlimit64`).
pub static RLIMIT: FlagSet = FlagSet {
    name: "rlimit_resource",
    style: FlagStyle::Enum,
    values: &[
        (0, "RLIMIT_CPU"),
        (1, "RLIMIT_FSIZE"),
        (2, "RLIMIT_DATA"),
        (3, "RLIMIT_STACK"),
        (4, "RLIMIT_CORE"),
        (5, "RLIMIT_RSS"),
        (6, "RLIMIT_NPROC"),
        (7, "RLIMIT_NOFILE"),
        (8, "RLIMIT_MEMLOCK"),
        (9, "RLIMIT_AS"),
        (10, "RLIMIT_LOCKS"),
        (11, "RLIMIT_SIGPENDING"),
        (12, "RLIMIT_MSGQUEUE"),
        (13, "RLIMIT_NICE"),
        (14, "RLIMIT_RTPRIO"),
        (15, "RLIMIT_RTTIME"),
    ],
};

/// `getrusage` who (`RUSAGE_CHILDREN` is -1).
pub static RUSAGE_WHO: FlagSet = FlagSet {
    name: "rusage_who",
    style: FlagStyle::Enum,
    values: &[
        (0, "RUSAGE_SELF"),
        (u64::MAX, "RUSAGE_CHILDREN"),
        (1, "RUSAGE_THREAD"),
    ],
};

/// Socket address families (`socket`, `socketpair`).
pub static AF: FlagSet = FlagSet {
    name: "socket_domain",
    style: FlagStyle::Enum,
    values: &[
        (0, "AF_UNSPEC"),
        (1, "AF_UNIX"),
        (2, "AF_INET"),
        (3, "AF_AX25"),
        (4, "AF_IPX"),
        (5, "AF_APPLETALK"),
        (6, "AF_NETROM"),
        (7, "AF_BRIDGE"),
        (8, "AF_ATMPVC"),
        (9, "AF_X25"),
        (10, "AF_INET6"),
        (11, "AF_ROSE"),
        (12, "AF_DECnet"),
        (13, "AF_NETBEUI"),
        (14, "AF_SECURITY"),
        (15, "AF_KEY"),
        (16, "AF_NETLINK"),
        (17, "AF_PACKET"),
        (18, "AF_ASH"),
        (19, "AF_ECONET"),
        (20, "AF_ATMSVC"),
        (21, "AF_RDS"),
        (22, "AF_SNA"),
        (23, "AF_IRDA"),
        (24, "AF_PPPOX"),
        (25, "AF_WANPIPE"),
        (26, "AF_LLC"),
        (27, "AF_IB"),
        (28, "AF_MPLS"),
        (29, "AF_CAN"),
        (30, "AF_TIPC"),
        (31, "AF_BLUETOOTH"),
        (32, "AF_IUCV"),
        (33, "AF_RXRPC"),
        (34, "AF_ISDN"),
        (35, "AF_PHONET"),
        (36, "AF_IEEE802154"),
        (37, "AF_CAIF"),
        (38, "AF_ALG"),
        (39, "AF_NFC"),
        (40, "AF_VSOCK"),
        (41, "AF_KCM"),
        (42, "AF_QIPCRTR"),
        (43, "AF_SMC"),
        (44, "AF_XDP"),
        (45, "AF_MCTP"),
    ],
};

/// Socket type (`socket`, `socketpair`): the type in the low bits, optionally with
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC`, each combination listed so an `Enum` can name it.
pub static SOCK_TYPE: FlagSet = FlagSet {
    name: "socket_type",
    style: FlagStyle::Enum,
    values: &[
        (1, "SOCK_STREAM"),
        (2, "SOCK_DGRAM"),
        (3, "SOCK_RAW"),
        (4, "SOCK_RDM"),
        (5, "SOCK_SEQPACKET"),
        (6, "SOCK_DCCP"),
        (10, "SOCK_PACKET"),
        (0o4001, "SOCK_STREAM|SOCK_NONBLOCK"),
        (0o4002, "SOCK_DGRAM|SOCK_NONBLOCK"),
        (0o4003, "SOCK_RAW|SOCK_NONBLOCK"),
        (0o4004, "SOCK_RDM|SOCK_NONBLOCK"),
        (0o4005, "SOCK_SEQPACKET|SOCK_NONBLOCK"),
        (0o4006, "SOCK_DCCP|SOCK_NONBLOCK"),
        (0o4012, "SOCK_PACKET|SOCK_NONBLOCK"),
        (0o2000001, "SOCK_STREAM|SOCK_CLOEXEC"),
        (0o2000002, "SOCK_DGRAM|SOCK_CLOEXEC"),
        (0o2000003, "SOCK_RAW|SOCK_CLOEXEC"),
        (0o2000004, "SOCK_RDM|SOCK_CLOEXEC"),
        (0o2000005, "SOCK_SEQPACKET|SOCK_CLOEXEC"),
        (0o2000006, "SOCK_DCCP|SOCK_CLOEXEC"),
        (0o2000012, "SOCK_PACKET|SOCK_CLOEXEC"),
        (0o2004001, "SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK"),
        (0o2004002, "SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK"),
        (0o2004003, "SOCK_RAW|SOCK_CLOEXEC|SOCK_NONBLOCK"),
        (0o2004004, "SOCK_RDM|SOCK_CLOEXEC|SOCK_NONBLOCK"),
        (0o2004005, "SOCK_SEQPACKET|SOCK_CLOEXEC|SOCK_NONBLOCK"),
        (0o2004006, "SOCK_DCCP|SOCK_CLOEXEC|SOCK_NONBLOCK"),
        (0o2004012, "SOCK_PACKET|SOCK_CLOEXEC|SOCK_NONBLOCK"),
    ],
};

/// `accept4` flags.
pub static SOCK_FLAGS: FlagSet = FlagSet {
    name: "accept4_flags",
    style: FlagStyle::Bits,
    values: &[(0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")],
};

/// `send*`/`recv*` message flags.
pub static MSG: FlagSet = FlagSet {
    name: "msg_flags",
    style: FlagStyle::Bits,
    values: &[
        (0x1, "MSG_OOB"),
        (0x2, "MSG_PEEK"),
        (0x4, "MSG_DONTROUTE"),
        (0x8, "MSG_CTRUNC"),
        (0x10, "MSG_PROXY"),
        (0x20, "MSG_TRUNC"),
        (0x40, "MSG_DONTWAIT"),
        (0x80, "MSG_EOR"),
        (0x100, "MSG_WAITALL"),
        (0x200, "MSG_FIN"),
        (0x400, "MSG_SYN"),
        (0x800, "MSG_CONFIRM"),
        (0x1000, "MSG_RST"),
        (0x2000, "MSG_ERRQUEUE"),
        (0x4000, "MSG_NOSIGNAL"),
        (0x8000, "MSG_MORE"),
        (0x10000, "MSG_WAITFORONE"),
        (0x40000, "MSG_BATCH"),
        (0x400_0000, "MSG_ZEROCOPY"),
        (0x2000_0000, "MSG_FASTOPEN"),
        (0x4000_0000, "MSG_CMSG_CLOEXEC"),
    ],
};

/// `shutdown` how.
pub static SHUT: FlagSet = FlagSet {
    name: "shutdown_how",
    style: FlagStyle::Enum,
    values: &[(0, "SHUT_RD"), (1, "SHUT_WR"), (2, "SHUT_RDWR")],
};

/// `setsockopt`/`getsockopt` level.
pub static SOL: FlagSet = FlagSet {
    name: "sockopt_level",
    style: FlagStyle::Enum,
    values: &[
        (0, "SOL_IP"),
        (1, "SOL_SOCKET"),
        (6, "SOL_TCP"),
        (17, "SOL_UDP"),
        (41, "SOL_IPV6"),
        (58, "SOL_ICMPV6"),
        (255, "SOL_RAW"),
        (263, "SOL_PACKET"),
        (270, "SOL_NETLINK"),
        (282, "SOL_TLS"),
    ],
};

/// `mount` flags (the magic `MS_MGC_VAL` in the upper half is shown by name).
pub static MOUNT: FlagSet = FlagSet {
    name: "mount_flags",
    style: FlagStyle::Bits,
    values: &[
        (0xc0ed_0000, "MS_MGC_VAL"),
        (1, "MS_RDONLY"),
        (2, "MS_NOSUID"),
        (4, "MS_NODEV"),
        (8, "MS_NOEXEC"),
        (16, "MS_SYNCHRONOUS"),
        (32, "MS_REMOUNT"),
        (64, "MS_MANDLOCK"),
        (128, "MS_DIRSYNC"),
        (256, "MS_NOSYMFOLLOW"),
        (1024, "MS_NOATIME"),
        (2048, "MS_NODIRATIME"),
        (4096, "MS_BIND"),
        (8192, "MS_MOVE"),
        (16384, "MS_REC"),
        (32768, "MS_SILENT"),
        (1 << 16, "MS_POSIXACL"),
        (1 << 17, "MS_UNBINDABLE"),
        (1 << 18, "MS_PRIVATE"),
        (1 << 19, "MS_SLAVE"),
        (1 << 20, "MS_SHARED"),
        (1 << 21, "MS_RELATIME"),
        (1 << 22, "MS_KERNMOUNT"),
        (1 << 23, "MS_I_VERSION"),
        (1 << 24, "MS_STRICTATIME"),
        (1 << 25, "MS_LAZYTIME"),
    ],
};

/// `umount2` flags.
pub static UMOUNT: FlagSet = FlagSet {
    name: "umount_flags",
    style: FlagStyle::Bits,
    values: &[
        (1, "MNT_FORCE"),
        (2, "MNT_DETACH"),
        (4, "MNT_EXPIRE"),
        (8, "UMOUNT_NOFOLLOW"),
    ],
};

/// `ptrace` requests.
pub static PTRACE: FlagSet = FlagSet {
    name: "ptrace_request",
    style: FlagStyle::Enum,
    values: &[
        (0, "PTRACE_TRACEME"),
        (1, "PTRACE_PEEKTEXT"),
        (2, "PTRACE_PEEKDATA"),
        (3, "PTRACE_PEEKUSER"),
        (4, "PTRACE_POKETEXT"),
        (5, "PTRACE_POKEDATA"),
        (6, "PTRACE_POKEUSER"),
        (7, "PTRACE_CONT"),
        (8, "PTRACE_KILL"),
        (9, "PTRACE_SINGLESTEP"),
        (12, "PTRACE_GETREGS"),
        (13, "PTRACE_SETREGS"),
        (14, "PTRACE_GETFPREGS"),
        (15, "PTRACE_SETFPREGS"),
        (16, "PTRACE_ATTACH"),
        (17, "PTRACE_DETACH"),
        (18, "PTRACE_GETFPXREGS"),
        (19, "PTRACE_SETFPXREGS"),
        (24, "PTRACE_SYSCALL"),
        (30, "PTRACE_ARCH_PRCTL"),
        (31, "PTRACE_SYSEMU"),
        (32, "PTRACE_SYSEMU_SINGLESTEP"),
        (33, "PTRACE_SINGLEBLOCK"),
        (0x4200, "PTRACE_SETOPTIONS"),
        (0x4201, "PTRACE_GETEVENTMSG"),
        (0x4202, "PTRACE_GETSIGINFO"),
        (0x4203, "PTRACE_SETSIGINFO"),
        (0x4204, "PTRACE_GETREGSET"),
        (0x4205, "PTRACE_SETREGSET"),
        (0x4206, "PTRACE_SEIZE"),
        (0x4207, "PTRACE_INTERRUPT"),
        (0x4208, "PTRACE_LISTEN"),
        (0x4209, "PTRACE_PEEKSIGINFO"),
        (0x420a, "PTRACE_GETSIGMASK"),
        (0x420b, "PTRACE_SETSIGMASK"),
        (0x420c, "PTRACE_SECCOMP_GET_FILTER"),
        (0x420d, "PTRACE_SECCOMP_GET_METADATA"),
        (0x420e, "PTRACE_GET_SYSCALL_INFO"),
        (0x420f, "PTRACE_GET_RSEQ_CONFIGURATION"),
        (0x4210, "PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG"),
        (0x4211, "PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG"),
    ],
};

/// `seccomp` operations.
pub static SECCOMP_OP: FlagSet = FlagSet {
    name: "seccomp_op",
    style: FlagStyle::Enum,
    values: &[
        (0, "SECCOMP_SET_MODE_STRICT"),
        (1, "SECCOMP_SET_MODE_FILTER"),
        (2, "SECCOMP_GET_ACTION_AVAIL"),
        (3, "SECCOMP_GET_NOTIF_SIZES"),
    ],
};

/// `fadvise64` advice (x86_64 numbering).
pub static FADVISE: FlagSet = FlagSet {
    name: "fadvise_advice",
    style: FlagStyle::Enum,
    values: &[
        (0, "POSIX_FADV_NORMAL"),
        (1, "POSIX_FADV_RANDOM"),
        (2, "POSIX_FADV_SEQUENTIAL"),
        (3, "POSIX_FADV_WILLNEED"),
        (4, "POSIX_FADV_DONTNEED"),
        (5, "POSIX_FADV_NOREUSE"),
    ],
};

/// Common `ioctl` requests (terminal and generic file ones); others print as hex.
pub static IOCTL: FlagSet = FlagSet {
    name: "ioctl_request",
    style: FlagStyle::Enum,
    values: &[
        (0x5401, "TCGETS"),
        (0x5402, "TCSETS"),
        (0x5403, "TCSETSW"),
        (0x5404, "TCSETSF"),
        (0x5409, "TCSBRK"),
        (0x540a, "TCXONC"),
        (0x540b, "TCFLSH"),
        (0x540e, "TIOCSCTTY"),
        (0x540f, "TIOCGPGRP"),
        (0x5410, "TIOCSPGRP"),
        (0x5413, "TIOCGWINSZ"),
        (0x5414, "TIOCSWINSZ"),
        (0x541b, "FIONREAD"),
        (0x541c, "TIOCLINUX"),
        (0x5421, "FIONBIO"),
        (0x5422, "TIOCNOTTY"),
        (0x5429, "TIOCGSID"),
        (0x5450, "FIONCLEX"),
        (0x5451, "FIOCLEX"),
        (0x5452, "FIOASYNC"),
        (0x8004_5430, "TIOCGPTN"),
        (0x4004_5431, "TIOCSPTLCK"),
        (0x5441, "TIOCGPTPEER"),
    ],
};

/// Every flag set of this module, for documentation generators and the header test.
pub static ALL: &[&FlagSet] = &[
    &OPEN,
    &AT,
    &UNLINKAT,
    &FACCESSAT,
    &STATX_AT,
    &RENAME,
    &ACCESS_MODE,
    &PROT,
    &MAP,
    &MREMAP,
    &MSYNC,
    &MLOCKALL,
    &MADVISE,
    &CLONE,
    &UNSHARE,
    &FCNTL_CMD,
    &FD_FLAGS,
    &SEALS,
    &FLOCK,
    &SEEK_WHENCE,
    &SIGPROCMASK_HOW,
    &CLOCK,
    &TIMER_FLAGS,
    &TFD_TIMER,
    &ITIMER,
    &WAIT4_OPTIONS,
    &WAITID_OPTIONS,
    &IDTYPE,
    &ARCH_PRCTL,
    &PRCTL,
    &FUTEX_OP,
    &PIPE2,
    &DUP3,
    &EFD,
    &EPOLL_CREATE,
    &EPOLL_CTL,
    &IN_INIT,
    &SFD,
    &TFD,
    &MFD,
    &PIDFD_OPEN,
    &CLOSE_RANGE,
    &GRND,
    &SPLICE,
    &XATTR,
    &RLIMIT,
    &RUSAGE_WHO,
    &AF,
    &SOCK_TYPE,
    &SOCK_FLAGS,
    &MSG,
    &SHUT,
    &SOL,
    &MOUNT,
    &UMOUNT,
    &PTRACE,
    &SECCOMP_OP,
    &FADVISE,
    &IOCTL,
];
