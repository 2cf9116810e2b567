//! A private containerd from Debian for the end-to-end tests
//! (tests/containerd.rs, tests/cri.rs): its root, state and sockets under
//! one temp dir, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A private containerd from Debian, its state under one temp dir.
pub struct Containerd {
    pub dir: TempDir,
    daemon: Child,
}

impl Containerd {
    pub fn start() -> Option<Containerd> {
        Containerd::start_with("")
    }

    /// A containerd whose config.toml ends with `extra`.
    pub fn start_with(extra: &str) -> Option<Containerd> {
        Containerd::start_in(TempDir::new("containerd"), extra, None, "default")
    }

    /// A containerd in `dir` whose config.toml ends with `extra` (`{D}`
    /// in it stands for `dir`), with `shim_dir` first on its PATH (where
    /// it finds `containerd-shim-NAME-v1` for a runtime type), and the
    /// busybox image imported into `namespace`.
    pub fn start_in(
        dir: TempDir,
        extra: &str,
        shim_dir: Option<&Path>,
        namespace: &str,
    ) -> Option<Containerd> {
        let bin = which("containerd")?;
        which("ctr")?;
        let image = busybox_image_archive()?;
        let d = dir.path().display();
        let extra = extra.replace("{D}", &d.to_string());
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{d}/containerd-ttrpc.sock\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_tcp_service = true\n{extra}"
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("containerd config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log");
        let mut cmd = Command::new(bin);
        if let Some(shims) = shim_dir {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", shims.display()));
        }
        let daemon = cmd
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd { dir, daemon };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        c.import(namespace, &image);
        Some(c)
    }

    /// Imports an OCI archive into `namespace`.
    pub fn import(&self, namespace: &str, archive: &Path) {
        let out = self.ctr(&[
            "-n",
            namespace,
            "images",
            "import",
            &archive.to_string_lossy(),
        ]);
        assert_success("ctr images import", &out);
    }

    /// containerd's gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        run_with_timeout(
            Command::new("ctr")
                .arg("-a")
                .arg(self.dir.path().join("containerd.sock"))
                .args(args),
            Duration::from_secs(60),
        )
    }

    pub fn runtime_root(&self, rt: &Path) -> PathBuf {
        let name = rt.file_name().map(|n| n.to_string_lossy().into_owned());
        self.dir
            .path()
            .join(format!("state-{}", name.unwrap_or_default()))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
