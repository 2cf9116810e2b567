//! strace-style formatting through the public API, with a fake tracee memory.

use syscall_tables::x86_64::{by_name, nr};
use syscall_tables::{
    flags, format_call, format_entry, format_flags, format_unknown, FlagSet, FlagStyle, MemReader,
    SyscallInfo,
};

/// Tracee memory made of a few byte regions at fixed addresses; anything else is unmapped.
#[derive(Default)]
struct FakeMem {
    regions: Vec<(u64, Vec<u8>)>,
}

impl FakeMem {
    fn with(mut self, addr: u64, bytes: &[u8]) -> Self {
        self.regions.push((addr, bytes.to_vec()));
        self
    }

    /// A NULL-terminated pointer array at `addr`.
    fn with_ptrs(self, addr: u64, ptrs: &[u64]) -> Self {
        let mut bytes: Vec<u8> = ptrs.iter().flat_map(|p| p.to_le_bytes()).collect();
        bytes.extend_from_slice(&0u64.to_le_bytes());
        self.with(addr, &bytes)
    }

    fn find(&self, addr: u64) -> Option<&[u8]> {
        self.regions.iter().find_map(|(start, bytes)| {
            let offset = usize::try_from(addr.checked_sub(*start)?).ok()?;
            bytes.get(offset..)
        })
    }
}

impl MemReader for FakeMem {
    fn read_bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.find(addr)?.get(..len).map(<[u8]>::to_vec)
    }

    fn read_cstr(&self, addr: u64, max: usize) -> Option<Vec<u8>> {
        let bytes = self.find(addr)?;
        Some(
            bytes
                .iter()
                .take(max)
                .take_while(|&&b| b != 0)
                .copied()
                .collect(),
        )
    }
}

fn sc(name: &str) -> &'static SyscallInfo {
    by_name(name).unwrap_or_else(|| panic!("{name} not in table"))
}

const O_RDONLY: u64 = 0;
const O_WRONLY: u64 = 1;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_CLOEXEC: u64 = 0o2000000;
const AT_FDCWD: u64 = -100i64 as u64;

#[test]
fn openat_with_at_fdcwd_and_flags() {
    let mem = FakeMem::default().with(0x1000, b"/etc/passwd\0");
    let args = [AT_FDCWD, 0x1000, O_RDONLY | O_CLOEXEC, 0, 0, 0];
    assert_eq!(
        format_call(sc("openat"), &args, 3, &mem),
        r#"openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3"#
    );
    assert_eq!(
        format_call(sc("openat"), &args, -2, &mem),
        r#"openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)"#
    );
    // The mode is shown only when the call uses it.
    let create = [5, 0x1000, O_WRONLY | O_CREAT | O_TRUNC, 0o644, 0, 0];
    assert_eq!(
        format_entry(sc("openat"), &create, &mem),
        r#"openat(5, "/etc/passwd", O_WRONLY|O_CREAT|O_TRUNC, 0644)"#
    );
}

#[test]
fn unreadable_or_null_pointers_show_addresses() {
    let mem = FakeMem::default();
    assert_eq!(
        format_call(sc("open"), &[0xdead0000, 0, 0, 0, 0, 0], -14, &mem),
        "open(0xdead0000, O_RDONLY) = -1 EFAULT (Bad address)"
    );
    assert_eq!(
        format_call(sc("stat"), &[0, 0x7ffc0000, 0, 0, 0, 0], -14, &mem),
        "stat(NULL, 0x7ffc0000) = -1 EFAULT (Bad address)"
    );
}

#[test]
fn write_shows_the_buffer_quoted_and_escaped() {
    let mem = FakeMem::default()
        .with(0x2000, b"hello\n")
        .with(0x3000, b"a\"b\\c\t\r\x01\xff~")
        .with(0x4000, &[b'x'; 100]);
    assert_eq!(
        format_call(sc("write"), &[1, 0x2000, 6, 0, 0, 0], 6, &mem),
        r#"write(1, "hello\n", 6) = 6"#
    );
    assert_eq!(
        format_call(sc("write"), &[2, 0x3000, 10, 0, 0, 0], 10, &mem),
        r#"write(2, "a\"b\\c\t\r\x01\xff~", 10) = 10"#
    );
    let long = format_call(sc("write"), &[1, 0x4000, 100, 0, 0, 0], 100, &mem);
    assert_eq!(
        long,
        format!(r#"write(1, "{}"..., 100) = 100"#, "x".repeat(32))
    );
}

#[test]
fn read_shows_what_was_read_at_exit_only() {
    let mem = FakeMem::default().with(0x5000, b"root:x:0:0:root:/root:/bin/bash\nmore");
    let args = [3, 0x5000, 4096, 0, 0, 0];
    assert_eq!(
        format_call(sc("read"), &args, 4, &mem),
        r#"read(3, "root", 4096) = 4"#
    );
    assert_eq!(
        format_call(sc("read"), &args, 36, &mem),
        r#"read(3, "root:x:0:0:root:/root:/bin/bash\n"..., 4096) = 36"#
    );
    assert_eq!(
        format_entry(sc("read"), &args, &mem),
        "read(3, 0x5000, 4096)"
    );
    assert_eq!(
        format_call(sc("read"), &args, -11, &mem),
        "read(3, 0x5000, 4096) = -1 EAGAIN (Resource temporarily unavailable)"
    );
    assert_eq!(
        format_call(sc("read"), &args, 0, &mem),
        r#"read(3, "", 4096) = 0"#
    );
}

#[test]
fn mmap_flags_and_address_result() {
    let mem = FakeMem::default();
    let anon = [0, 8192, 3, 0x22, u64::MAX, 0];
    assert_eq!(
        format_call(sc("mmap"), &anon, 0x7f12_3456_7000, &mem),
        "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f1234567000"
    );
    let file = [0x7f00_0000_0000, 4096, 5, 0x10_0012, 3, 0x28000];
    assert_eq!(
        format_call(sc("mmap"), &file, -17, &mem),
        "mmap(0x7f0000000000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_FIXED_NOREPLACE, 3, 0x28000) = -1 EEXIST (File exists)"
    );
}

#[test]
fn flag_formatting_rules() {
    assert_eq!(format_flags(&flags::PROT, 0), "PROT_NONE");
    assert_eq!(format_flags(&flags::PROT, 0x11), "PROT_READ|0x10");
    assert_eq!(format_flags(&flags::MAP, 0), "0");
    assert_eq!(format_flags(&flags::MAP, 0x3), "MAP_SHARED_VALIDATE");
    assert_eq!(
        format_flags(&flags::OPEN, 0o2 | 0o100 | 0o4000 | 0o20200000 | (1 << 40)),
        "O_RDWR|O_CREAT|O_NONBLOCK|O_TMPFILE|0x10000000000"
    );
    assert_eq!(format_flags(&flags::OPEN, 0o4010000), "O_RDONLY|O_SYNC");
    assert_eq!(format_flags(&flags::OPEN, 0o200000), "O_RDONLY|O_DIRECTORY");
    assert_eq!(format_flags(&flags::ACCESS_MODE, 0), "F_OK");
    assert_eq!(format_flags(&flags::ACCESS_MODE, 6), "R_OK|W_OK");
    assert_eq!(format_flags(&flags::MADVISE, 4), "MADV_DONTNEED");
    assert_eq!(format_flags(&flags::MADVISE, 77), "0x4d");
    assert_eq!(
        format_flags(&flags::FUTEX_OP, 137 | 256),
        "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME"
    );
    assert_eq!(
        format_flags(&flags::RUSAGE_WHO, 0xffff_ffff),
        "RUSAGE_CHILDREN"
    );
    assert_eq!(
        format_flags(&flags::RUSAGE_WHO, u64::MAX),
        "RUSAGE_CHILDREN"
    );
    assert_eq!(format_flags(&flags::STATX_AT, 0), "AT_STATX_SYNC_AS_STAT");
    assert_eq!(
        format_flags(&flags::STATX_AT, 0x1100),
        "AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH"
    );
    assert_eq!(
        format_flags(&flags::CLONE, 0x01200011),
        "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
    );
    assert_eq!(format_flags(&flags::CLONE, 0), "0");
    assert_eq!(format_flags(&flags::WAIT4_OPTIONS, 0x4000_0000), "__WALL");
    assert_eq!(
        format_flags(&flags::MOUNT, 0xc0ed_0000 | 0x1000 | 0x4000),
        "MS_MGC_VAL|MS_BIND|MS_REC"
    );
    assert_eq!(
        format_flags(&flags::SOCK_TYPE, 0o2000001),
        "SOCK_STREAM|SOCK_CLOEXEC"
    );

    static CUSTOM: FlagSet = FlagSet {
        name: "custom",
        style: FlagStyle::Bits,
        values: &[(1, "A"), (4, "C")],
    };
    assert_eq!(format_flags(&CUSTOM, 0), "0");
    assert_eq!(format_flags(&CUSTOM, 7), "A|C|0x2");
}

#[test]
fn execve_entry_shows_argv() {
    let mem = FakeMem::default()
        .with(0x1000, b"/bin/ls\0")
        .with(0x1100, b"ls\0")
        .with(0x1200, b"-l\0")
        .with(0x1300, b"PATH=/bin\0")
        .with_ptrs(0x2000, &[0x1100, 0x1200])
        .with_ptrs(0x3000, &[0x1300]);
    assert_eq!(
        format_entry(sc("execve"), &[0x1000, 0x2000, 0x3000, 0, 0, 0], &mem),
        r#"execve("/bin/ls", ["ls", "-l"], ["PATH=/bin"])"#
    );
}

#[test]
fn argv_is_limited_in_count_and_length() {
    let long_arg = [b'a'; 40];
    let mut mem = FakeMem::default()
        .with(0x1000, b"/bin/echo\0")
        .with(0x1100, &long_arg);
    mem = mem.with(0x1200, b"x\0");
    let ptrs: Vec<u64> = std::iter::once(0x1100).chain([0x1200; 9]).collect();
    mem = mem.with_ptrs(0x2000, &ptrs);
    let text = format_entry(sc("execve"), &[0x1000, 0x2000, 0, 0, 0, 0], &mem);
    let expected = format!(
        r#"execve("/bin/echo", ["{}"..., "x", "x", "x", "x", "x", "x", "x", ...], NULL)"#,
        "a".repeat(32)
    );
    assert_eq!(text, expected);
}

#[test]
fn assorted_kinds() {
    let mem = FakeMem::default().with(0x1000, b"/home/user\0");
    assert_eq!(
        format_call(sc("kill"), &[1234, 9, 0, 0, 0, 0], 0, &mem),
        "kill(1234, SIGKILL) = 0"
    );
    assert_eq!(
        format_call(sc("rt_sigprocmask"), &[0, 0x10, 0, 8, 0, 0], 0, &mem),
        "rt_sigprocmask(SIG_BLOCK, 0x10, NULL, 8) = 0"
    );
    assert_eq!(
        format_call(
            sc("setresuid"),
            &[0xffff_ffff, 1000, u64::MAX, 0, 0, 0],
            0,
            &mem
        ),
        "setresuid(-1, 1000, -1) = 0"
    );
    assert_eq!(
        format_call(sc("socket"), &[2, 0o2000001, 0, 0, 0, 0], 4, &mem),
        "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 0) = 4"
    );
    assert_eq!(
        format_call(
            sc("arch_prctl"),
            &[0x1002, 0x7f00_1234_5740, 0, 0, 0, 0],
            0,
            &mem
        ),
        "arch_prctl(ARCH_SET_FS, 0x7f0012345740) = 0"
    );
    assert_eq!(
        format_call(
            sc("futex"),
            &[0x7f00_0000_1000, 129, 1, 0xdead, 0xbeef, 7],
            1,
            &mem
        ),
        "futex(0x7f0000001000, FUTEX_WAKE_PRIVATE, 1) = 1"
    );
    assert_eq!(
        format_call(sc("fcntl"), &[3, 2, 1, 0, 0, 0], 0, &mem),
        "fcntl(3, F_SETFD, FD_CLOEXEC) = 0"
    );
    assert_eq!(
        format_call(sc("fcntl"), &[3, 3, 0xdead, 0, 0, 0], 0o100002, &mem),
        "fcntl(3, F_GETFL) = 32770"
    );
    assert_eq!(
        format_call(sc("fcntl"), &[3, 4, 0o4002, 0, 0, 0], 0, &mem),
        "fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0"
    );
    assert_eq!(
        format_call(sc("getcwd"), &[0x1000, 4096, 0, 0, 0, 0], 11, &mem),
        r#"getcwd("/home/user", 4096) = 11"#
    );
    assert_eq!(
        format_call(
            sc("wait4"),
            &[u64::MAX, 0x7ffc_0000, 0x4000_0001, 0, 0, 0],
            0,
            &mem
        ),
        "wait4(-1, 0x7ffc0000, WNOHANG|__WALL, NULL) = 0"
    );
    assert_eq!(
        format_call(sc("umask"), &[0o22, 0, 0, 0, 0, 0], 0o22, &mem),
        "umask(022) = 18"
    );
    assert_eq!(
        format_call(sc("close"), &[3, 0, 0, 0, 0, 0], -512, &mem),
        "close(3) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    );
    assert_eq!(
        format_call(sc("getpid"), &[9; 6], 42, &mem),
        "getpid() = 42"
    );
    assert_eq!(
        format_entry(sc("exit_group"), &[0, 0, 0, 0, 0, 0], &mem),
        "exit_group(0)"
    );
}

#[test]
fn unknown_syscalls() {
    assert_eq!(
        format_unknown(0x1f4, &[1, 0, 0x10, 0, 0, 0xffff], -38),
        "syscall_0x1f4(0x1, 0, 0x10, 0, 0, 0xffff) = -1 ENOSYS (Function not implemented)"
    );
    assert_eq!(
        format_unknown(999, &[0; 6], 0),
        "syscall_0x3e7(0, 0, 0, 0, 0, 0) = 0"
    );
}

#[test]
fn required_syscalls_have_real_signatures() {
    use syscall_tables::ArgKind;
    // Spot checks of argument counts and kinds for the syscalls the sentry traces most.
    let expect: &[(u64, usize)] = &[
        (nr::READ, 3),
        (nr::OPENAT, 4),
        (nr::MMAP, 6),
        (nr::CLONE, 5),
        (nr::EXECVE, 3),
        (nr::RT_SIGRETURN, 0),
        (nr::FUTEX, 6),
        (nr::STATX, 5),
        (nr::CLONE3, 2),
        (nr::WAITID, 5),
        (nr::PRLIMIT64, 4),
        (nr::EXECVEAT, 5),
    ];
    for &(n, count) in expect {
        let info = syscall_tables::x86_64::by_number(n).expect("in table");
        assert_eq!(info.args.len(), count, "{}", info.name);
    }
    assert!(matches!(
        sc("execve").args,
        [ArgKind::Path, ArgKind::StrArray, ArgKind::StrArray]
    ));
    assert!(matches!(sc("openat").args[0], ArgKind::DirFd));
    assert!(matches!(sc("write").args[1], ArgKind::InBuf { len_arg: 2 }));
    assert!(matches!(sc("read").args[1], ArgKind::OutBuf { len_arg: 2 }));
}
