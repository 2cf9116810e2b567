//! File-system costs, side by side in one run: benches/programs/io.c
//! (built static) natively on a host directory, and under runc, runsc
//! (ptrace, no network) and rvisor on a writable bind mount of a fresh
//! host directory: creating 10,000 files, getdents over them, stat of each,
//! a sequential write (then its fsync) and read of 1 GiB, and busybox `tar x` of
//! /usr/share/doc. Prints a Markdown table with ratios.
//!
//!     cargo bench --bench io [-- MIB]
//!
//! MIB is the size of the sequential file (default 1024). Needs root, gcc,
//! tar and the fixtures of scripts/setup.sh.
//!
//! Each runtime's volume is a freshly made ext4 filesystem (a sparse image
//! on a loop device), so that no runtime creates its files where another's
//! were just deleted: on a filesystem without a journal, as this machine's
//! root is, ext4 skips recently freed inodes one by one, and a create or
//! untar after another's `rm -rf` took 3-10x longer, natively too. Without
//! mkfs.ext4 or loop devices, a plain directory is used (and said so).
//! An untimed write of the sequential file's size comes first, so that
//! the VM disk's first-write cost falls on no runtime (see main).

mod common;

use std::process::Command;

use common::{
    build_static, busybox_rootfs, print_table, run_measurements, runtimes, write_bundle, Runtime,
};

fn main() {
    let mib = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(1024)
        .to_string();
    let work = std::env::temp_dir().join(format!("rvisor-bench-io-{}", std::process::id()));
    let bin_dir = work.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bench dir");
    let io = build_static("io", &bin_dir, &[]);
    let tarball = bin_dir.join("tree.tar");
    let tarred = Command::new("tar")
        .arg("cf")
        .arg(&tarball)
        .args(["-C", "/usr/share", "doc"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(tarred, "could not tar /usr/share/doc");
    // One tar for everyone: the fixture's busybox.
    let busybox = busybox_rootfs().join("bin/busybox");

    // A first write of a gigabyte on this VM takes 5-6 s, the next ones
    // under 1 s: the VM's disk is allocated on the host the first time
    // its blocks are written, and each fresh filesystem below reuses the
    // blocks the one before it freed. So that this does not land on
    // whoever runs first (native), one untimed write of the same size
    // comes before everyone's.
    warm_up_disk(&work, &mib);

    let mut columns: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    let native_vol = work.join("vol-native");
    let native_fs = FreshFs::mount(&work.join("fs-native.img"), &native_vol);
    let mut native = Command::new(&io);
    native
        .arg(&native_vol)
        .arg(&mib)
        .arg(&busybox)
        .args(["tar", "xf"])
        .arg(&tarball);
    // Every run starts with no dirty pages, so no fsync pays for another's.
    nix::unistd::sync();
    if let Some(r) = run_measurements(&mut native, "native") {
        columns.push(("native".into(), r));
    }
    drop(native_fs);
    let _ = std::fs::remove_dir_all(&native_vol);

    for (i, Runtime { name, bin, flags }) in runtimes().iter().enumerate() {
        let vol = work.join(format!("vol-{i}"));
        let fs = FreshFs::mount(&work.join(format!("fs-{i}.img")), &vol);
        let bundle = work.join(format!("bundle-{i}"));
        let mounts = [
            serde_json::json!({ "destination": "/bench", "type": "bind",
                "source": bin_dir, "options": ["rbind", "ro"] }),
            serde_json::json!({ "destination": "/vol", "type": "bind",
                "source": vol, "options": ["rbind", "rw"] }),
        ];
        write_bundle(
            &bundle,
            &busybox_rootfs(),
            &[
                "/bench/io",
                "/vol",
                mib.as_str(),
                "/bin/busybox",
                "tar",
                "xf",
                "/bench/tree.tar",
            ],
            &mounts,
        );
        let mut c = Command::new(bin);
        c.arg("--root")
            .arg(work.join(format!("root-{i}")))
            .args(flags)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("io{i}"));
        nix::unistd::sync();
        if let Some(r) = run_measurements(&mut c, name) {
            columns.push((name.clone(), r));
        }
        drop(fs);
        let _ = std::fs::remove_dir_all(&vol);
    }
    print_table(&columns);
    let _ = std::fs::remove_dir_all(&work);
}

/// Writes and fsyncs `mib` MiB on a fresh filesystem, then removes it.
fn warm_up_disk(work: &std::path::Path, mib: &str) {
    use std::io::Write;
    let vol = work.join("vol-warm-up");
    let fs = FreshFs::mount(&work.join("fs-warm-up.img"), &vol);
    let chunk = vec![0x5au8; 1 << 20];
    let written = std::fs::File::create(vol.join("big")).and_then(|mut f| {
        for _ in 0..mib.parse::<u64>().unwrap_or(1024) {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    });
    if let Err(e) = written {
        eprintln!("io: warm-up write failed: {e}");
    }
    drop(fs);
    let _ = std::fs::remove_dir_all(&vol);
}

/// A new ext4 filesystem mounted at a directory for one runtime's turn;
/// unmounted and its image deleted on drop.
struct FreshFs {
    image: std::path::PathBuf,
    at: Option<std::path::PathBuf>,
}

impl FreshFs {
    fn mount(image: &std::path::Path, at: &std::path::Path) -> FreshFs {
        std::fs::create_dir_all(at).expect("volume");
        let made = std::fs::File::create(image)
            .and_then(|f| f.set_len(4 << 30))
            .is_ok()
            // Inode tables and journal written now: the kernel would
            // otherwise zero them in the background during the runs.
            && Command::new("mkfs.ext4")
                .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
                .arg(image)
                .status()
                .is_ok_and(|s| s.success())
            && Command::new("mount")
                .args(["-o", "loop"])
                .arg(image)
                .arg(at)
                .status()
                .is_ok_and(|s| s.success());
        if !made {
            eprintln!(
                "io: no fresh ext4 volume (mkfs.ext4 or loop mount failed); using a directory"
            );
        }
        FreshFs {
            image: image.to_path_buf(),
            at: made.then(|| at.to_path_buf()),
        }
    }
}

impl Drop for FreshFs {
    fn drop(&mut self) {
        if let Some(at) = &self.at {
            let _ = Command::new("umount").arg(at).status();
        }
        let _ = std::fs::remove_file(&self.image);
    }
}
