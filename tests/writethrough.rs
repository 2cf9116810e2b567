//! Where a container's writes land on the host: writable bind mounts write
//! through to their source (as under runc), `--overlay none` writes through
//! to the bundle's rootfs (as runc does), and `--overlay self` (the
//! default) and `--overlay memory` leave the rootfs untouched, keeping file
//! contents on the rootfs's disk or in memory. Each case runs the same script
//! under runc and under rvisor on identical copies of the host directories,
//! then compares the output *and* the host trees afterwards, entry by entry.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// Every entry below `root`, one line each: path, type, mode, owner, size,
/// link count, symlink target or content digest, and the mtime when the
/// script set it to a fixed date. Times that are "now" differ between runs
/// and are left out.
fn host_tree(root: &Path) -> BTreeMap<String, String> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if ft.is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                format!("{} bytes, sum {}", data.len(), digest(&data))
            } else if ft.is_fifo() {
                "fifo".into()
            } else if ft.is_dir() {
                "dir".into()
            } else {
                "other".into()
            };
            let nlink = if ft.is_dir() { 0 } else { md.nlink() };
            let mtime = if md.mtime() < 1_500_000_000 {
                format!(" mtime {}", md.mtime())
            } else {
                String::new()
            };
            out.insert(
                rel,
                format!(
                    "{what} mode {:o} owner {}:{} links {nlink}{mtime}",
                    md.mode(),
                    md.uid(),
                    md.gid()
                ),
            );
            if ft.is_dir() {
                visit(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(root, root, &mut out);
    out
}

/// FNV-1a: enough to tell contents apart in a diff.
fn digest(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn tree_diff(expected: &BTreeMap<String, String>, actual: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => out.push_str(&format!("missing: {k} ({v})\n")),
            Some(a) if a != v => {
                out.push_str(&format!("differs: {k}\n  runc:   {v}\n  rvisor: {a}\n"))
            }
            _ => {}
        }
    }
    for (k, v) in actual {
        if !expected.contains_key(k) {
            out.push_str(&format!("extra: {k} ({v})\n"));
        }
    }
    out
}

/// A runtime's own copies of the rootfs and of a volume directory.
struct Copies {
    base: TempDir,
}

impl Copies {
    fn new(tag: &str) -> Copies {
        let base = TempDir::new(tag);
        copy_busybox_rootfs(&base.path().join("rootfs"));
        // runc makes missing mount points in the rootfs; rvisor mounts
        // them in the sandbox only. Both copies get this one (an earlier
        // runc run may have left it in the shared fixture already).
        std::fs::create_dir_all(base.path().join("rootfs/vol")).unwrap();
        let vol = base.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::write(vol.join("existing"), "from the host\n").unwrap();
        std::fs::create_dir(vol.join("keep")).unwrap();
        Copies { base }
    }

    fn rootfs(&self) -> PathBuf {
        self.base.path().join("rootfs")
    }

    fn vol(&self) -> PathBuf {
        self.base.path().join("vol")
    }
}

fn run(runtime: &Path, global: &[&str], copies: &Copies, script: &str) -> Output {
    run_with_volume(
        runtime,
        global,
        &copies.rootfs(),
        &copies.vol(),
        script,
        |_| {},
    )
}

/// What the volume script does: the common file operations, each leaving a
/// trace on the host, plus the ways out that must stay inside.
const VOLUME_SCRIPT: &str = r#"
cd /vol
echo hello > f; echo more >> f; cat f
mkdir -p d/e; chmod 2770 d; touch d/e/g; chown 1234:5678 d/e/g
mkdir d/inherits; touch d/inherits-file
ln -s ../f d/l; cat d/l; ln f hard; mv hard d/hard2
mkfifo fifo; (echo through-the-fifo > fifo &); cat fifo
printf abcdef > t; truncate -s 3 t; cat t; echo
touch -d '2001-02-03 04:05:06' f
echo x > gone; rm gone; mkdir gone-dir; rmdir gone-dir
rmdir keep && mkdir keep && touch keep/new
(umask 077; touch private)
echo appended >> existing; mv existing renamed
mkdir sg; chown 0:1234 sg; chmod 2775 sg; mkdir sg/sub; touch sg/file; mkdir -m 2777 sg/m
touch su; chmod 6755 su; chown 1:1 su; touch sv; chown 2:2 sv; chmod 6755 sv
echo z > r1; mv r1 r2; ln r2 r3; mkdir rd; mv rd rd2; touch rd2/in; ln -s target rd2/sl
readlink rd2/sl; mv rd2/sl rd2/sl2; rm rd2/in; echo y > rd2/in; mv -f r2 rd2/in; cat rd2/in
ln -s / escape; echo pwned > escape/tmp/pwned-via-volume; cat /tmp/pwned-via-volume
ln /etc/passwd /vol/passwd-link 2>/dev/null || echo hardlink across mounts refused
mv /etc/hostname /vol/hostname-moved 2>/dev/null || echo rename across mounts refused
ls -ln . d | sed 's/ [A-Z][a-z][a-z] .* / DATE /'
stat -c '%n %s %a %u:%g %h' f t private d/e/g d/inherits d/inherits-file sg/* su sv r3 rd2/*
df -P /vol >/dev/null && echo statfs ok
"#;

/// Writes to a writable bind mount reach the host directory, exactly as
/// runc's do; symlinks and hard links pointing out stay inside.
#[test]
fn writable_bind_mount_writes_through_like_runc() {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return;
    };
    let theirs = Copies::new("wt-runc");
    let expected = run(&runc, &[], &theirs, VOLUME_SCRIPT);
    let ours = Copies::new("wt-rvisor");
    let actual = run(&rvisor(), &[], &ours, VOLUME_SCRIPT);
    assert_same_output_named("runc", &expected, "rvisor", &actual);
    let diff = tree_diff(&host_tree(&theirs.vol()), &host_tree(&ours.vol()));
    assert!(diff.is_empty(), "volume on the host after the run:\n{diff}");
    assert!(
        !Path::new("/tmp/pwned-via-volume").exists(),
        "a symlink in the volume led to the host's /tmp"
    );
}

const ROOTFS_SCRIPT: &str = r#"
echo new > /etc/newfile; chmod 600 /etc/newfile
echo changed >> /etc/hostname 2>/dev/null || echo no hostname
rm /bin/true; mkdir -p /opt/app/data; touch -d '2002-03-04 05:06:07' /opt/app/data
ln -s /opt/app /app; mv /etc/newfile /opt/app/config; chown -R 100:101 /opt
cat /opt/app/config; touch -d '2003-04-05 06:07:08' /opt/app/config; ls -ln /opt/app
"#;

/// `--overlay none`: the rootfs directory on the host ends up as runc
/// leaves it.
#[test]
fn overlay_none_writes_to_the_rootfs_like_runc() {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return;
    };
    let theirs = Copies::new("wt-root-runc");
    let expected = run(&runc, &[], &theirs, ROOTFS_SCRIPT);
    let ours = Copies::new("wt-root-rvisor");
    let actual = run(&rvisor(), &["--overlay", "none"], &ours, ROOTFS_SCRIPT);
    let normalise = |o: &Output| {
        stdout_str(o)
            .lines()
            .map(|l| l.split_whitespace().take(5).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        normalise(&expected),
        normalise(&actual),
        "{}",
        describe_output("rvisor", &actual)
    );
    let diff = tree_diff(&host_tree(&theirs.rootfs()), &host_tree(&ours.rootfs()));
    assert!(diff.is_empty(), "rootfs on the host after the run:\n{diff}");
}

/// `--overlay memory`: the container sees its own writes, the host's
/// rootfs keeps none of them.
#[test]
fn overlay_memory_leaves_the_rootfs_untouched() {
    let ours = Copies::new("wt-mem-rvisor");
    let before = host_tree(&ours.rootfs());
    let out = run(&rvisor(), &["--overlay", "memory"], &ours, ROOTFS_SCRIPT);
    assert_success("rvisor run", &out);
    assert!(
        stdout_str(&out).starts_with("new\n"),
        "{}",
        describe_output("rvisor", &out)
    );
    let diff = tree_diff(&before, &host_tree(&ours.rootfs()));
    assert!(diff.is_empty(), "the rootfs changed on the host:\n{diff}");
    // The volume is a bind mount: it still writes through.
    let out = run(&rvisor(), &[], &ours, "echo kept > /vol/kept");
    assert_success("rvisor run", &out);
    assert_eq!(
        std::fs::read_to_string(ours.vol().join("kept")).unwrap(),
        "kept\n"
    );
}

/// `--overlay self`: the container's view is the memory overlay's, the
/// bundle's rootfs keeps none of it either.
#[test]
fn overlay_self_leaves_the_rootfs_untouched() {
    let ours = Copies::new("wt-self-rvisor");
    let before = host_tree(&ours.rootfs());
    // No flag: self is the default.
    let out = run(&rvisor(), &[], &ours, ROOTFS_SCRIPT);
    assert_success("rvisor run", &out);
    let memory = Copies::new("wt-self-memory");
    let reference = run(&rvisor(), &["--overlay", "memory"], &memory, ROOTFS_SCRIPT);
    assert_same_output_named("--overlay memory", &reference, "--overlay self", &out);
    let diff = tree_diff(&before, &host_tree(&ours.rootfs()));
    assert!(diff.is_empty(), "the rootfs changed on the host:\n{diff}");
}

/// Where a 96 MiB file written into the rootfs lives while the container
/// runs: with `--overlay memory` in the sentry's memory, with `--overlay
/// self` in an unnamed file on the rootfs's filesystem (and not in memory).
#[test]
fn overlay_self_keeps_file_contents_on_disk() {
    const MIB: u64 = 96;
    let script =
        format!("dd if=/dev/zero of=/big bs=1M count={MIB} 2>/dev/null && echo ready && sleep 3");
    let measure = |mode: &str| -> (u64, u64) {
        let copies = Copies::new(&format!("wt-store-{mode}"));
        let bundle = TempDir::new("wt-store-bundle");
        let state = TempDir::new("wt-store-state");
        write_bundle_config(bundle.path(), &copies.rootfs(), &["sh", "-c", &script], &[]);
        let mut child = Command::new(rvisor())
            .arg("--root")
            .arg(state.path())
            .args(["--overlay", mode, "run", "--bundle"])
            .arg(bundle.path())
            .arg(unique_name("store"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "ready\n", "--overlay {mode}");
        let sentry = sentry_of(child.id());
        let status = std::fs::read_to_string(format!("/proc/{sentry}/status")).unwrap();
        let rss_anon_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        // Disk blocks of the sentry's fds that are unnamed files in the rootfs.
        let prefix = copies.rootfs().display().to_string();
        let mut stored = 0;
        for e in std::fs::read_dir(format!("/proc/{sentry}/fd")).unwrap() {
            let p = e.unwrap().path();
            let Ok(target) = std::fs::read_link(&p) else {
                continue;
            };
            let target = target.display().to_string();
            if target.starts_with(&prefix) && target.ends_with("(deleted)") {
                stored += std::fs::metadata(&p).unwrap().blocks() * 512;
            }
        }
        assert!(child.wait().unwrap().success(), "--overlay {mode}");
        (rss_anon_kib * 1024, stored)
    };
    let size = MIB << 20;
    let (mem_rss, mem_stored) = measure("memory");
    assert!(
        mem_rss >= size,
        "--overlay memory: RssAnon {mem_rss} < {size}"
    );
    assert_eq!(mem_stored, 0);
    let (self_rss, self_stored) = measure("self");
    assert!(
        self_stored >= size,
        "--overlay self: filestore holds {self_stored} bytes"
    );
    assert!(
        self_rss < size / 2,
        "--overlay self: the sentry's RssAnon is {self_rss} bytes"
    );
}

/// The sentry under a foreground `rvisor run` (pid `run`).
fn sentry_of(run: u32) -> u32 {
    for e in std::fs::read_dir("/proc").unwrap() {
        let Ok(pid) = e.unwrap().file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(run) && cmdline.starts_with(b"rvisor-sentry") {
            return pid;
        }
    }
    panic!("no sentry below {run}");
}

/// Named unix sockets in a writable volume (a gofer mount): bind, connect,
/// datagrams, SCM_RIGHTS, all as under runc. tests/programs/ipc/
/// unix_sockets.c, built static, runs with its directory in the volume.
#[test]
fn unix_sockets_in_a_volume_like_runc() {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return;
    };
    let prog = compile_c_static("ipc/unix_sockets.c");
    let run_in = |runtime: &Path, tag: &str| {
        let copies = Copies::new(tag);
        std::fs::copy(&prog, copies.rootfs().join("unix_sockets")).unwrap();
        run(runtime, &[], &copies, "/unix_sockets /vol/sockets")
    };
    let expected = run_in(&runc, "wt-unix-runc");
    assert_success("runc", &expected);
    let actual = run_in(&rvisor(), "wt-unix-rvisor");
    assert_same_output_named("runc", &expected, "rvisor", &actual);
}

/// What the host does to the volume while `HOST_CHANGES_SCRIPT` runs, one
/// step each time the script asks (by creating `stepN`), acknowledged by
/// creating `ackN`: a file replaced by another inode, one removed, a
/// directory made; then a rename, a chmod and a hard link.
fn host_actor(vol: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        wait_for_file(&vol.join("step1"));
        std::fs::write(vol.join("a.new"), "12345").unwrap();
        std::fs::rename(vol.join("a.new"), vol.join("a")).unwrap();
        std::fs::remove_file(vol.join("c")).unwrap();
        std::fs::create_dir(vol.join("d")).unwrap();
        std::fs::write(vol.join("d/f"), "made on the host\n").unwrap();
        std::fs::write(vol.join("ack1"), "").unwrap();
        wait_for_file(&vol.join("step2"));
        std::fs::rename(vol.join("a"), vol.join("e")).unwrap();
        std::fs::set_permissions(
            vol.join("e"),
            std::os::unix::fs::PermissionsExt::from_mode(0o640),
        )
        .unwrap();
        std::fs::hard_link(vol.join("e"), vol.join("e-link")).unwrap();
        std::fs::write(vol.join("ack2"), "").unwrap();
    })
}

/// Waits (up to 30 s) for the sandbox to make `path`: its signal to a
/// host actor.
fn wait_for_file(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs `script` under runc, then under rvisor, each on fresh copies of
/// the rootfs and volume with `actor` changing the volume meanwhile; both
/// must print the same.
fn same_as_runc_with_host_actor(
    tag: &str,
    actor: fn(PathBuf) -> std::thread::JoinHandle<()>,
    script: &str,
) {
    same_as_runc_with_host_actor_as(tag, actor, script, |_| {});
}

/// As [`same_as_runc_with_host_actor`], with the bundle's config edited
/// by `edit`.
fn same_as_runc_with_host_actor_as(
    tag: &str,
    actor: fn(PathBuf) -> std::thread::JoinHandle<()>,
    script: &str,
    edit: fn(&mut serde_json::Value),
) {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return;
    };
    let theirs = Copies::new(&format!("{tag}-runc"));
    let acting = actor(theirs.vol());
    let run = |runtime: &Path, copies: &Copies| {
        run_with_volume(runtime, &[], &copies.rootfs(), &copies.vol(), script, edit)
    };
    let expected = run(&runc, &theirs);
    acting.join().unwrap();
    assert_success("runc run", &expected);
    let ours = Copies::new(&format!("{tag}-rvisor"));
    let acting = actor(ours.vol());
    let actual = run(&rvisor(), &ours);
    acting.join().unwrap();
    assert_same_output_named("runc", &expected, "rvisor", &actual);
}

/// Each lookup the script makes after a step must see the host's change.
const HOST_CHANGES_SCRIPT: &str = r#"
cd /vol; echo x > a; echo c > c
stat -c '%n %s %h' a c; [ -e d ] || echo no d yet
touch step1; while [ ! -e ack1 ]; do usleep 10000; done
stat -c '%n %s %h' a; [ -e c ] && echo c still there || echo c gone
cat a; echo; cat d/f; ls d
touch step2; while [ ! -e ack2 ]; do usleep 10000; done
[ -e a ] && echo a still there || echo a gone
stat -c '%n %s %a %h' e e-link; cat e-link; echo
"#;

/// A bind mount is shared with the host, which may change it at any
/// moment: what the container sees after each change is what it sees
/// under runc. (The sentry answers lookups there from its own fds, with
/// no trip to the gofer, when it already knows the inode.)
#[test]
fn host_changes_to_a_volume_are_seen_at_once() {
    same_as_runc_with_host_actor("hc", host_actor, HOST_CHANGES_SCRIPT);
}

/// Rounds of [`QUIET_DIR_SCRIPT`].
const QUIET_ROUNDS: u32 = 6;

/// What the host does to directory `d` of the volume while
/// `QUIET_DIR_SCRIPT` runs: each time the script asks (`askN` in the
/// volume's top directory, so that `d` itself stays quiet), replaces `x`
/// by a new file holding N, makes `yN` and removes `y(N-1)`; then
/// acknowledges with `ackN`.
fn quiet_dir_actor(vol: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for round in 0..QUIET_ROUNDS {
            wait_for_file(&vol.join(format!("ask{round}")));
            let d = vol.join("d");
            std::fs::write(d.join("x.new"), format!("{round}\n")).unwrap();
            std::fs::rename(d.join("x.new"), d.join("x")).unwrap();
            std::fs::write(d.join(format!("y{round}")), "").unwrap();
            if round > 0 {
                std::fs::remove_file(d.join(format!("y{}", round - 1))).unwrap();
            }
            std::fs::write(vol.join(format!("ack{round}")), "").unwrap();
        }
    })
}

/// Each round looks `x` and `yN` up, leaves `d` alone for 50 ms (long
/// enough for the sentry to keep `d`'s answers: see gofer.rs's
/// `recall_name`), asks the host to change `d`, waits as long again (so
/// that the changed directory is as settled as before), and looks again.
const QUIET_DIR_SCRIPT: &str = r#"
mkdir -p /vol/d; echo start > /vol/d/x
i=0; while [ $i -lt 6 ]; do
  cd /vol/d; cat x >/dev/null; [ -e y$i ] && echo "y$i early"
  usleep 50000
  cat x >/dev/null; [ -e y$i ] && echo "y$i early"; stat -c %s x >/dev/null
  touch /vol/ask$i; while [ ! -e /vol/ack$i ]; do usleep 5000; done
  usleep 50000
  echo "x holds $(cat x)"; [ -e y$i ] && echo "y$i there"; ls; stat -c '%n %s' x
  i=$((i+1))
done
"#;

/// A directory of a volume the sandbox left quiet, and whose lookups the
/// sentry therefore answers without asking the host name by name, still
/// shows every change the host makes to it at once: a file replaced, a
/// name made and one removed; as under runc.
#[test]
fn host_changes_to_a_quiet_volume_directory_are_seen_at_once() {
    same_as_runc_with_host_actor("qd", quiet_dir_actor, QUIET_DIR_SCRIPT);
}

/// Sets up directory `a/p` of the volume (with `a/p/q/f`) for
/// [`HOST_CHMOD_SCRIPT`], which runs as uid 1000, then changes `p`'s mode
/// and owner each time the script asks (`sig/stepN`, acknowledged by
/// `sig/ackN`: the signals stay out of `a`, which must stay quiet):
/// closed to others (0700), search only (0711), then owned by 1000
/// (0700).
fn chmod_actor(vol: PathBuf) -> std::thread::JoinHandle<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    std::fs::create_dir_all(vol.join("a/p/q")).unwrap();
    std::fs::create_dir_all(vol.join("sig")).unwrap();
    std::fs::write(vol.join("a/p/q/f"), "in p/q\n").unwrap();
    for (path, m) in [
        ("a", 0o755),
        ("a/p", 0o755),
        ("a/p/q", 0o755),
        ("sig", 0o777),
    ] {
        mode(&vol.join(path), m);
    }
    std::thread::spawn(move || {
        let p = vol.join("a/p");
        let sig = vol.join("sig");
        wait_for_file(&sig.join("step1"));
        mode(&p, 0o700);
        std::fs::write(sig.join("ack1"), "").unwrap();
        wait_for_file(&sig.join("step2"));
        mode(&p, 0o711);
        std::fs::write(sig.join("ack2"), "").unwrap();
        wait_for_file(&sig.join("step3"));
        std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
        mode(&p, 0o700);
        std::fs::write(sig.join("ack3"), "").unwrap();
    })
}

/// Walks through `a/p` as uid 1000 (several times: the sentry then knows
/// the directories well), and makes a file in it, after each change the
/// host makes to `p`.
const HOST_CHMOD_SCRIPT: &str = r#"
look() {
  for i in 1 2 3; do cat /vol/a/p/q/f 2>&1; ls /vol/a/p 2>&1; done
  usleep 50000; cat /vol/a/p/q/f 2>&1
  touch /vol/a/p/w 2>&1 && echo "made w" && rm /vol/a/p/w
}
look
for n in 1 2 3; do
  touch /vol/sig/step$n; while [ ! -e /vol/sig/ack$n ]; do usleep 10000; done
  echo "after step $n"; look
done
"#;

/// A host change to a volume directory's mode or owner applies to the
/// next walk through it, however often the sandbox walked through it
/// before (the sentry keeps a watched directory's mode between walks).
#[test]
fn host_chmod_of_a_volume_directory_applies_at_once() {
    same_as_runc_with_host_actor_as("chmod", chmod_actor, HOST_CHMOD_SCRIPT, |c| {
        c["process"]["user"] = serde_json::json!({ "uid": 1000, "gid": 1000 });
    });
}

/// Two loop-mounted copies of one ext4 image (a snapshot and its origin,
/// a cloned VM disk): the same UUID, so fanotify names their inodes
/// alike. Unmounted and removed on drop.
struct TwinFilesystems {
    base: TempDir,
    mounted: Vec<PathBuf>,
}

impl TwinFilesystems {
    /// None when mkfs.ext4 or loop mounts are missing.
    fn new(tag: &str) -> Option<TwinFilesystems> {
        let base = TempDir::new(tag);
        let mut twins = TwinFilesystems {
            base,
            mounted: Vec::new(),
        };
        let first = twins.base.path().join("first.img");
        let made = std::fs::File::create(&first)
            .and_then(|f| f.set_len(32 << 20))
            .is_ok()
            && Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&first)
                .status()
                .is_ok_and(|s| s.success());
        if !made || !twins.mount(&first, "a") {
            return None;
        }
        std::fs::create_dir(twins.path("a").join("d")).unwrap();
        std::fs::write(twins.path("a").join("d/x"), "x\n").unwrap();
        let at = twins.mounted.pop()?;
        assert!(Command::new("umount").arg(&at).status().unwrap().success());
        let second = twins.base.path().join("second.img");
        std::fs::copy(&first, &second).unwrap();
        (twins.mount(&first, "a") && twins.mount(&second, "b")).then_some(twins)
    }

    fn mount(&mut self, image: &Path, name: &str) -> bool {
        let at = self.path(name);
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            self.mounted.push(at);
        }
        ok
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }
}

impl Drop for TwinFilesystems {
    fn drop(&mut self) {
        for at in &self.mounted {
            let _ = Command::new("umount").arg(at).status();
        }
    }
}

/// Looks names up in both twins (so that both directories answer them
/// from what they know), asks the host to make `b/d/y`, looks again,
/// asks for `a/d/z`, and looks again.
const TWINS_SCRIPT: &str = r#"
look() {
  for f in /a/d/y /a/d/z /b/d/y /b/d/z; do [ -e $f ] && echo "$f there" || echo "$f missing"; done
}
look; look; cat /a/d/x /b/d/x; usleep 50000; look
for n in 1 2; do
  touch /vol/step$n; while [ ! -e /vol/ack$n ]; do usleep 10000; done
  echo "after step $n"; look
done
"#;

/// Two volumes that are copies of one filesystem: a change the host makes
/// in either shows in the sandbox at once, as under runc, although
/// fanotify cannot tell their directories apart (so the sentry watches
/// only one of each pair).
#[test]
fn twin_filesystems_as_volumes_both_show_host_changes() {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return;
    };
    let run_one = |runtime: &Path, tag: &str| -> Option<Output> {
        let twins = TwinFilesystems::new(&format!("{tag}-fs"))?;
        let copies = Copies::new(tag);
        let (vol, a, b) = (copies.vol(), twins.path("a"), twins.path("b"));
        let actor = std::thread::spawn(move || {
            wait_for_file(&vol.join("step1"));
            std::fs::write(b.join("d/y"), "y").unwrap();
            std::fs::write(vol.join("ack1"), "").unwrap();
            wait_for_file(&vol.join("step2"));
            std::fs::write(a.join("d/z"), "z").unwrap();
            std::fs::write(vol.join("ack2"), "").unwrap();
        });
        let out = run_with_volume(
            runtime,
            &[],
            &copies.rootfs(),
            &copies.vol(),
            TWINS_SCRIPT,
            |c| {
                let mounts = c["mounts"].as_array_mut().expect("mounts");
                for name in ["a", "b"] {
                    mounts.push(serde_json::json!({
                        "destination": format!("/{name}"), "type": "bind",
                        "source": twins.path(name).to_string_lossy(), "options": ["rbind", "rw"]
                    }));
                }
            },
        );
        actor.join().unwrap();
        Some(out)
    };
    let Some(expected) = run_one(&runc, "twins-runc") else {
        eprintln!("SKIP: no loop-mounted ext4 here (mkfs.ext4, loop devices)");
        return;
    };
    assert_success("runc run", &expected);
    let actual = run_one(&rvisor(), "twins-rvisor").expect("twin filesystems");
    assert_same_output_named("runc", &expected, "rvisor", &actual);
}

/// The host's /proc bound into the sandbox (as node exporters mount it):
/// procfs makes and drops entries without touching its directories'
/// ctimes, so no answer of a directory there may be kept. A host process
/// opens fd 7 after the sandbox has looked for it twice, 50 ms apart,
/// and the sandbox must then find it.
#[test]
fn host_proc_bound_in_shows_new_entries_at_once() {
    let vol = TempDir::new("hostproc-vol");
    let copies = Copies::new("hostproc");
    let opener = format!(
        "while [ ! -e {0}/ask ]; do sleep 0.01; done; exec 7</dev/null; touch {0}/ack; sleep 30",
        vol.path().display()
    );
    let mut helper = Command::new("sh")
        .args(["-c", &opener])
        .spawn()
        .expect("spawn the host helper");
    let pid = helper.id();
    let script = format!(
        "d=/hostproc/{pid}/fd
        [ -L $d/7 ] && echo early || echo not yet
        usleep 50000
        [ -L $d/7 ] && echo early || echo not yet
        touch /vol/ask; while [ ! -e /vol/ack ]; do usleep 5000; done
        [ -L $d/7 ] && echo there || echo missing"
    );
    let out = run_with_volume(&rvisor(), &[], &copies.rootfs(), vol.path(), &script, |c| {
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.push(
            serde_json::json!({ "destination": "/hostproc", "type": "bind",
            "source": "/proc", "options": ["rbind", "ro"] }),
        );
    });
    let _ = helper.kill();
    let _ = helper.wait();
    assert_success("rvisor run", &out);
    assert_eq!(
        stdout_str(&out),
        "not yet\nnot yet\nthere\n",
        "{}",
        stderr_str(&out)
    );
}

/// The file-family differential programs (tests/programs/file), run with
/// their /tmp on a writable bind mount, print what they print natively:
/// the sentry's own changes on volumes (directfs: creates, renames,
/// unlinks, attribute changes, reopens) keep Linux's semantics. Not
/// file/dir.c (it lists the root, which is the image's here) nor
/// file/xattr.c (gofer mounts take `user.*` xattrs only).
#[test]
fn file_programs_on_a_volume_behave_as_natively() {
    const PROGRAMS: &[&str] = &[
        "attr_rules",
        "errors",
        "fallocate",
        "fd",
        "inotify",
        "io",
        "io_rules",
        "lock_rules",
        "locks",
        "openat2",
        "perms",
        "rename_exchange",
        "stat",
        "sync_tee",
        "tmpfile",
        "transfer",
        "vectored",
    ];
    let bins = TempDir::new("volprog-bin");
    for p in PROGRAMS {
        let built = compile_c_static(&format!("file/{p}.c"));
        std::fs::copy(&built, bins.path().join(p)).expect("copy a test program");
    }
    let mut native = String::new();
    for p in PROGRAMS {
        let out = run_with_timeout(
            Command::new(bins.path().join(p)).current_dir("/tmp"),
            default_timeout(),
        );
        native.push_str(&format!("== {p}\n{}", stdout_str(&out)));
        native.push_str(&format!("rc={}\n", out.status.code().unwrap_or(-1)));
    }

    let vol = TempDir::new("volprog-tmp");
    let bundle = TempDir::new("volprog-bundle");
    let state = TempDir::new("volprog-state");
    let script = format!(
        "cd /tmp; for p in {}; do echo \"== $p\"; /bench/$p; echo \"rc=$?\"; done",
        PROGRAMS.join(" ")
    );
    let mounts = [
        serde_json::json!({ "destination": "/bench", "type": "bind",
            "source": bins.path().to_string_lossy(), "options": ["rbind", "ro"] }),
        serde_json::json!({ "destination": "/tmp", "type": "bind",
            "source": vol.path().to_string_lossy(), "options": ["rbind", "rw"] }),
    ];
    write_bundle_config_with_mounts(
        bundle.path(),
        &busybox_rootfs(),
        &["sh", "-c", &script],
        &[],
        &mounts,
    );
    // Root with root's usual capabilities: the programs chown, drop to
    // other users and set group ids, as natively.
    edit_bundle_config(bundle.path(), |c| {
        let caps = serde_json::json!([
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_DAC_READ_SEARCH",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SYS_ADMIN",
            "CAP_SYS_RESOURCE",
            "CAP_LEASE",
            "CAP_MKNOD"
        ]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        c["process"]["noNewPrivileges"] = serde_json::json!(false);
    });
    let out = run_with_timeout(
        Command::new(rvisor())
            .arg("--root")
            .arg(state.path())
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(unique_name("volprog")),
        long_timeout(),
    );
    let sandboxed = stdout_str(&out);
    assert!(
        native == sandboxed,
        "file programs on a volume differ from native (- native, + rvisor):\n{}\n--- stderr ---\n{}",
        line_diff(&native, &sandboxed),
        stderr_str(&out)
    );
}
