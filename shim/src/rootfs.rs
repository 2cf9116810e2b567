//! The container's root filesystem as containerd describes it (snapshotter
//! mounts: an overlay, or a bind of a directory), mounted at the bundle's
//! `rootfs/` for the container's lifetime, as containerd's runc shim does.

use std::path::Path;

use containerd_shim::protos::types::mount::Mount;
use nix::mount::MsFlags;

use crate::error::ShimError;

/// mount(8)'s flag options; everything else is passed to the filesystem.
fn flag_option(opt: &str) -> Option<(bool, MsFlags)> {
    Some(match opt {
        "ro" => (true, MsFlags::MS_RDONLY),
        "rw" => (false, MsFlags::MS_RDONLY),
        "bind" => (true, MsFlags::MS_BIND),
        "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
        "nosuid" => (true, MsFlags::MS_NOSUID),
        "suid" => (false, MsFlags::MS_NOSUID),
        "nodev" => (true, MsFlags::MS_NODEV),
        "dev" => (false, MsFlags::MS_NODEV),
        "noexec" => (true, MsFlags::MS_NOEXEC),
        "exec" => (false, MsFlags::MS_NOEXEC),
        "noatime" => (true, MsFlags::MS_NOATIME),
        "relatime" => (true, MsFlags::MS_RELATIME),
        "sync" => (true, MsFlags::MS_SYNCHRONOUS),
        "async" => (false, MsFlags::MS_SYNCHRONOUS),
        "defaults" => (false, MsFlags::empty()),
        _ => return None,
    })
}

fn mount_one(m: &Mount, target: &Path) -> Result<(), ShimError> {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in &m.options {
        match flag_option(opt) {
            Some((true, f)) => flags |= f,
            Some((false, f)) => flags &= !f,
            None => data.push(opt.as_str()),
        }
    }
    let data = data.join(",");
    let fs_type = (!m.type_.is_empty()).then_some(m.type_.as_str());
    let source = (!m.source.is_empty()).then_some(m.source.as_str());
    let fail = |e: nix::Error| {
        ShimError::FailedPrecondition(format!(
            "mounting the rootfs ({} {} at {}): {e}",
            m.type_,
            m.source,
            target.display()
        ))
    };
    nix::mount::mount(
        source,
        target,
        fs_type,
        // With MS_BIND the kernel ignores MS_RDONLY here (see below).
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(fail)?;
    // A bind mount takes its read-only flag only on a remount.
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(fail)?;
    }
    Ok(())
}

pub fn mount(mounts: &[Mount], target: &Path) -> Result<(), ShimError> {
    std::fs::create_dir_all(target)
        .map_err(ShimError::io(format!("creating {}", target.display())))?;
    for m in mounts {
        if let Err(e) = mount_one(m, target) {
            unmount(target);
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts every mount stacked at `target` (lazily: a straggler holding a
/// file open must not keep the snapshot mounted).
pub fn unmount(target: &Path) {
    for _ in 0..16 {
        if nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}
