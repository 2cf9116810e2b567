//! A container's state directory under `--root`: the record `create`
//! writes, the lock every command takes, and the sandbox's control socket.
//!
//! Status is never trusted from disk alone: a container whose sentry is
//! gone (or whose pid now belongs to another process) is stopped, and a
//! live sentry is asked over its control socket.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use sentry::control::{ContainerStatus, ControlReply, ControlRequest};
use serde::{Deserialize, Serialize};

/// The record's file name in the state directory.
const RECORD: &str = "container.json";
/// Where the sentry writes the init's wait status as it ends.
pub const EXIT_STATUS: &str = "exit-status";
/// The control socket's name in the state directory.
pub const CONTROL_SOCKET: &str = "control.sock";
/// How long a command waits for a sentry to answer.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// A host process, identified by pid and start time so a reused pid is
/// never mistaken for it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostProcess {
    pub pid: i32,
    pub start_time: u64,
}

impl HostProcess {
    pub fn of(pid: i32) -> Option<Self> {
        let (_, start_time) = proc_stat(pid)?;
        Some(HostProcess { pid, start_time })
    }

    /// Still running (not a zombie) and still the same process.
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    pub fn kill(&self, sig: i32) {
        if self.alive() {
            // SAFETY: plain kill(2) of a process we verified is ours.
            unsafe { libc::kill(self.pid, sig) };
        }
    }
}

/// State letter and start time (clock ticks after boot) from
/// /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the
    // last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// What `create` records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 UTC, with nanoseconds (as runc prints it).
    pub created: String,
    pub owner: String,
    pub sentry: HostProcess,
    pub gofers: Vec<HostProcess>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The spec's hooks, for the ones run after `create` returns.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The init's process settings: what `exec` starts from.
    pub process: sentry::ProcessSpec,
    /// The sandbox's cgroup (None for a container that joined another's
    /// sandbox: its processes are the pod's).
    #[serde(default)]
    pub cgroup: Option<crate::cgroups::Cgroup>,
    /// The pod's sandbox container this one joined (`sentry` is then that
    /// sandbox's), if it did.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// A joined container's stand-in for its init on the host (see
    /// `commands::join`): the pid `create --pid-file` reported.
    #[serde(default)]
    pub init_waiter: Option<HostProcess>,
}

impl Record {
    /// The host process that stands for the container's init: the
    /// sentry, or a joined container's init waiter.
    pub fn init_process(&self) -> &HostProcess {
        self.init_waiter.as_ref().unwrap_or(&self.sentry)
    }
}

/// Container ids as runc accepts them: letters, digits, `_+-.`, not `.`
/// or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok {
        bail!("invalid container ID format");
    }
    Ok(())
}

/// A locked state directory. The lock (flock on the directory) is held
/// until this is dropped, so commands on one container run one at a time.
pub struct ContainerDir {
    pub path: PathBuf,
    dir: nix::fcntl::Flock<File>,
}

fn lock(dir: File) -> Result<nix::fcntl::Flock<File>> {
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("locking the container's state directory")
}

impl ContainerDir {
    /// Makes the state directory of a new container.
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating state root {}", root.display()))?;
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                bail!("container with given ID already exists")
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        let dir = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let dir = lock(dir)?;
        Ok(ContainerDir { path, dir })
    }

    /// Opens and locks an existing container's state directory.
    pub fn open(root: &Path, id: &str) -> Result<Self> {
        validate_id(id).map_err(|_| anyhow!("container does not exist"))?;
        let path = root.join(id);
        let dir = match File::open(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => bail!("container does not exist"),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let dir = lock(dir)?;
        Ok(ContainerDir { path, dir })
    }

    /// A path inside the state directory that stays short whatever --root
    /// is (unix socket paths are limited to 108 bytes).
    pub fn short_path(&self, name: &str) -> PathBuf {
        short_path(&self.dir, name)
    }

    pub fn save(&self, record: &Record) -> Result<()> {
        let tmp = self.path.join(format!("{RECORD}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, self.path.join(RECORD)).context("saving the container record")
    }

    /// The record; "does not exist" if the container was deleted while we
    /// waited for the lock (or its `create` never finished).
    pub fn load(&self) -> Result<Record> {
        let path = self.path.join(RECORD);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => bail!("container does not exist"),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// One request to the sandbox's sentry.
    pub fn request(&self, req: &ControlRequest) -> Result<ControlReply> {
        self.exchange(req, &[], Some(CONTROL_TIMEOUT))
    }

    /// A request that may take long (`start` runs startContainer hooks,
    /// each bounded by its own timeout).
    pub fn request_unbounded(&self, req: &ControlRequest) -> Result<ControlReply> {
        self.exchange(req, &[], None)
    }

    /// One request with fds attached (exec's stdio).
    pub fn request_with_fds(
        &self,
        req: &ControlRequest,
        fds: &[std::os::fd::RawFd],
    ) -> Result<ControlReply> {
        self.exchange(req, fds, Some(CONTROL_TIMEOUT))
    }

    fn exchange(
        &self,
        req: &ControlRequest,
        fds: &[std::os::fd::RawFd],
        reply_timeout: Option<Duration>,
    ) -> Result<ControlReply> {
        let mut s = self.connect()?;
        s.set_read_timeout(reply_timeout)?;
        s.set_write_timeout(Some(CONTROL_TIMEOUT))?;
        sentry::control::send_with_fds(&mut s, req, fds)?;
        Ok(sentry::control::read_message(&mut s)?)
    }

    /// A connection to the sandbox's control socket.
    pub fn connect(&self) -> Result<UnixStream> {
        connect_control(&self.dir)
    }

    /// Gives up the lock, keeping the directory open (for long waits that
    /// must not block other commands).
    pub fn unlock(self) -> Result<UnlockedDir> {
        let dir = self
            .dir
            .unlock()
            .map_err(|(_, e)| e)
            .context("unlocking the state directory")?;
        Ok(UnlockedDir { dir })
    }

    /// The container's status now.
    pub fn status(&self, record: &Record) -> ContainerStatus {
        if !record.sentry.alive() {
            return ContainerStatus::Stopped;
        }
        if record.cgroup.as_ref().is_some_and(|c| c.frozen()) {
            return ContainerStatus::Paused;
        }
        match self.request(&ControlRequest::State) {
            Ok(ControlReply::State { status }) => status,
            // A sentry that is alive but will not answer is wedged; report
            // it as running so `delete` asks for --force.
            _ => ContainerStatus::Running,
        }
    }

    /// The init's wait status, once the sandbox has ended.
    pub fn exit_status(&self) -> Option<i32> {
        std::fs::read_to_string(self.path.join(EXIT_STATUS))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Removes the state directory (the lock goes with it).
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.path)
            .with_context(|| format!("removing {}", self.path.display()))
    }
}

/// A state directory held open without its lock.
pub struct UnlockedDir {
    dir: File,
}

impl UnlockedDir {
    pub fn connect(&self) -> Result<UnixStream> {
        connect_control(&self.dir)
    }
}

/// Connects to the control socket in the state directory open as `dir`,
/// by a path short enough for a unix socket whatever --root is.
fn connect_control(dir: &File) -> Result<UnixStream> {
    UnixStream::connect(short_path(dir, CONTROL_SOCKET)).context("connecting to the sandbox")
}

fn short_path(dir: &File, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// The OCI state, as `runc state` prints it (field order included).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: &'static str,
    pub id: String,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

pub fn oci_state(record: &Record, status: ContainerStatus) -> OciState {
    OciState {
        oci_version: "1.0.2",
        id: record.id.clone(),
        pid: if status == ContainerStatus::Stopped {
            0
        } else {
            record.init_process().pid
        },
        status: status.name(),
        bundle: record.bundle.clone(),
        rootfs: record.rootfs.clone(),
        created: record.created.clone(),
        owner: record.owner.clone(),
        annotations: record.annotations.clone(),
    }
}

/// The state a hook reads on its stdin: `status` is the runtime spec's
/// (including "creating"), and a stopped container has no pid.
pub fn hook_state(record: &Record, status: &str) -> serde_json::Value {
    let mut v =
        serde_json::to_value(oci_state(record, ContainerStatus::Running)).unwrap_or_default();
    v["status"] = status.into();
    if status == "stopped" {
        if let Some(m) = v.as_object_mut() {
            m.remove("pid");
        }
    }
    v
}

/// The current time in RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Every container id under `root`.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    for e in entries.flatten() {
        if e.path().join(RECORD).exists() {
            ids.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        assert!(validate_id("abc-1_2+3.x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a\0b", "ä"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_795_334_278, 5), "2026-11-22T07:57:58.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }
}
