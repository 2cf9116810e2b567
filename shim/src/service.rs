//! containerd's task API v2, served for the containers of one shim.
//!
//! Each container is one rvisor sandbox, driven through the `rvisor` CLI:
//! Create runs `rvisor create` (the init's host pid is the sentry's, which
//! exits with the init's status), Start runs `rvisor start`, an exec runs
//! `rvisor exec --detach` (the pid is its waiter's, which exits with the
//! process's status). The reaper reports those exits; once a process's
//! output has reached its fifos the shim records the exit, wakes Wait and
//! publishes TaskExit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use containerd_shim::api::{self, Status};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{MessageDyn, MessageField};
use containerd_shim::protos::topics;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};
use log::{info, warn};

use crate::error::ShimError;
use crate::options::{self, RuntimeSettings};
use crate::reaper::{self, Exit, ExitSlot};
use crate::runtime::Runtime;
use crate::stdio::{StdioCopier, StdioPaths};
use crate::{lock, metrics, rootfs, wait_threads};

/// How long an exit waits for the process's output to drain before it is
/// reported anyway (a child that kept the stdout pipe open must not hold
/// the exit back forever).
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcState {
    Created,
    Running,
    Stopped,
}

/// One process of a container: its init (exec id "") or an exec.
struct Process {
    exec_id: String,
    stdio: StdioPaths,
    state: ProcState,
    /// Host pid: the sentry for the init, the waiter for an exec.
    pid: u32,
    /// Pid inside the sandbox (1 for the init), for signals.
    sandbox_pid: i32,
    /// For an exec not yet started: its OCI process, as JSON.
    spec: Option<Vec<u8>>,
    copier: Arc<Mutex<StdioCopier>>,
    /// The exit, once reported (after the output drained).
    exit: Arc<(Mutex<Option<Exit>>, Condvar)>,
}

impl Process {
    fn new(exec_id: &str, stdio: StdioPaths) -> Process {
        Process {
            exec_id: exec_id.to_string(),
            stdio,
            state: ProcState::Created,
            pid: 0,
            sandbox_pid: 0,
            spec: None,
            copier: Arc::default(),
            exit: Arc::default(),
        }
    }

    fn reported_exit(&self) -> Option<Exit> {
        *lock(&self.exit.0)
    }

    /// Answers every Wait on a process that will never report an exit (its
    /// start failed, or it is deleted unstarted), as runc's shim does:
    /// containerd waits before it starts an exec, and a Wait left hanging
    /// would keep the shim from ever exiting.
    fn release_waiters(&self) {
        let (m, cv) = &*self.exit;
        let mut g = lock(m);
        if g.is_none() {
            *g = Some(Exit {
                status: 255,
                at: std::time::SystemTime::now(),
            });
        }
        cv.notify_all();
    }
}

struct Container {
    id: String,
    /// The rvisor binary and flags from the runtime's config file.
    runtime: Runtime,
    bundle: PathBuf,
    rootfs_mounted: bool,
    paused: bool,
    init: Process,
    execs: HashMap<String, Process>,
}

impl Container {
    fn process(&self, exec_id: &str) -> Result<&Process, ShimError> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs.get(exec_id).ok_or_else(|| ShimError::NoProcess {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
        })
    }

    fn process_mut(&mut self, exec_id: &str) -> Result<&mut Process, ShimError> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        let id = self.id.clone();
        self.execs
            .get_mut(exec_id)
            .ok_or_else(|| ShimError::NoProcess {
                id,
                exec_id: exec_id.to_string(),
            })
    }

    /// Scratch files (pid files, logs, process specs) live beside the
    /// bundle's config.json, as runc's shim keeps them.
    fn scratch(&self, name: &str) -> PathBuf {
        self.bundle.join(name)
    }
}

fn timestamp(t: std::time::SystemTime) -> Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

/// Events go out in order from one thread, so a slow containerd never
/// holds up an RPC.
struct EventQueue {
    tx: Mutex<std::sync::mpsc::Sender<(&'static str, Box<dyn MessageDyn>)>>,
}

impl EventQueue {
    fn start(publisher: RemotePublisher, namespace: String) -> EventQueue {
        let (tx, rx) = std::sync::mpsc::channel::<(&'static str, Box<dyn MessageDyn>)>();
        std::thread::spawn(move || {
            for (topic, event) in rx {
                let ctx = containerd_shim::Context::default();
                if let Err(e) = publisher.publish(ctx, topic, &namespace, event) {
                    warn!("publishing {topic}: {e}");
                }
            }
        });
        EventQueue { tx: Mutex::new(tx) }
    }

    fn send(&self, topic: &'static str, event: impl MessageDyn + 'static) {
        let _ = lock(&self.tx).send((topic, Box::new(event)));
    }
}

/// The task service: every RPC of one shim.
pub struct TaskService {
    /// rvisor's defaults for this shim's namespace; a container's runtime
    /// config file may change them.
    base_runtime: Runtime,
    events: Arc<EventQueue>,
    exit: Arc<ExitSignal>,
    containers: Arc<Mutex<HashMap<String, Container>>>,
}

impl TaskService {
    pub fn new(
        runtime: Runtime,
        publisher: RemotePublisher,
        namespace: String,
        exit: Arc<ExitSignal>,
    ) -> TaskService {
        TaskService {
            base_runtime: runtime,
            events: Arc::new(EventQueue::start(publisher, namespace)),
            exit,
            containers: Arc::default(),
        }
    }

    /// The rvisor a container runs with.
    fn rt(&self, id: &str) -> Result<Runtime, ShimError> {
        self.with_container(id, |c| Ok(c.runtime.clone()))
    }

    fn with_container<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container) -> Result<T, ShimError>,
    ) -> Result<T, ShimError> {
        let mut cs = lock(&self.containers);
        let c = cs
            .get_mut(id)
            .ok_or_else(|| ShimError::NoContainer(id.to_string()))?;
        f(c)
    }

    fn create_task(
        &self,
        req: api::CreateTaskRequest,
    ) -> Result<api::CreateTaskResponse, ShimError> {
        if !req.checkpoint.is_empty() || !req.parent_checkpoint.is_empty() {
            return Err(ShimError::Unsupported("restoring from a checkpoint"));
        }
        if lock(&self.containers).contains_key(&req.id) {
            return Err(ShimError::AlreadyExists(format!("container {}", req.id)));
        }
        let bundle = PathBuf::from(&req.bundle);
        let settings = match options::config_path(req.options.as_ref())? {
            Some(path) => RuntimeSettings::from_config_file(&path)?,
            None => RuntimeSettings::default(),
        };
        settings.save(&bundle)?;
        let runtime = self.base_runtime.with_settings(&settings);
        let mut rootfs_mounted = false;
        if !req.rootfs.is_empty() {
            rootfs::mount(&req.rootfs, &bundle.join("rootfs"))?;
            rootfs_mounted = true;
        }
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let mut c = Container {
            id: req.id.clone(),
            runtime,
            bundle,
            rootfs_mounted,
            paused: false,
            init: Process::new("", stdio.clone()),
            execs: HashMap::new(),
        };
        match self.start_init(&mut c) {
            Ok(()) => {}
            Err(e) => {
                if c.rootfs_mounted {
                    rootfs::unmount(&c.bundle.join("rootfs"));
                }
                return Err(e);
            }
        }
        let pid = c.init.pid;
        self.events.send(
            topics::TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                pid,
                ..Default::default()
            },
        );
        lock(&self.containers).insert(req.id.clone(), c);
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    /// `rvisor create`, then the watchers of the sentry's exit and of OOM
    /// kills.
    fn start_init(&self, c: &mut Container) -> Result<(), ShimError> {
        let pid_file = c.scratch("init.pid");
        let log = c.scratch("log.json");
        let _ = std::fs::remove_file(&pid_file);
        let mut prepared = c.init.stdio.prepare(&c.bundle, "init")?;
        let console = prepared.console_socket.as_ref().map(|s| s.path.clone());
        c.runtime.create(
            &c.id,
            &c.bundle,
            &pid_file,
            console.as_deref(),
            prepared.take_process_stdio(),
            &log,
        )?;
        // The sandbox exists now: any failure from here must end it.
        let started =
            read_pid(&pid_file).and_then(|pid| Ok((pid, prepared.start_copying(&c.init.stdio)?)));
        let (pid, copier) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = c.runtime.delete_force(&c.id, &log);
                return Err(e);
            }
        };
        c.init.pid = pid as u32;
        c.init.sandbox_pid = 1;
        *lock(&c.init.copier) = copier;
        let oom_watch = self.watch_oom(&c.id, c.runtime.clone());
        self.watch_exit(&c.id, &c.init, reaper::watch(pid), Some(oom_watch));
        Ok(())
    }

    /// Reports `p`'s exit once its output is out: records it, wakes Wait,
    /// publishes TaskExit.
    fn watch_exit(
        &self,
        id: &str,
        p: &Process,
        slot: Arc<ExitSlot>,
        oom_watch: Option<std::thread::JoinHandle<()>>,
    ) {
        let containers = self.containers.clone();
        let events = self.events.clone();
        let copier = p.copier.clone();
        let reported = p.exit.clone();
        let (id, exec_id, pid) = (id.to_string(), p.exec_id.clone(), p.pid);
        std::thread::spawn(move || {
            let exit = slot.wait();
            lock(&copier).wait_output(OUTPUT_DRAIN_TIMEOUT);
            // An OOM kill that ended the sandbox is reported before the
            // exit, as the runc shim does (the watcher's last look comes
            // right after the sentry is gone).
            if let Some(w) = oom_watch {
                wait_threads(std::slice::from_ref(&w), OUTPUT_DRAIN_TIMEOUT);
            }
            if let Some(c) = lock(&containers).get_mut(&id) {
                if let Ok(p) = c.process_mut(&exec_id) {
                    p.state = ProcState::Stopped;
                }
                if exec_id.is_empty() {
                    c.paused = false;
                }
            }
            *lock(&reported.0) = Some(exit);
            reported.1.notify_all();
            info!(
                "container {id} process {exec_id:?} (pid {pid}) exited: {}",
                exit.status
            );
            events.send(
                topics::TASK_EXIT_EVENT_TOPIC,
                TaskExit {
                    container_id: id.clone(),
                    id: if exec_id.is_empty() { id } else { exec_id },
                    pid,
                    exit_status: exit.status as u32,
                    exited_at: MessageField::some(timestamp(exit.at)),
                    ..Default::default()
                },
            );
        });
    }

    /// Publishes TaskOOM whenever the kernel OOM-kills in the container's
    /// cgroup (`rvisor events` watches the counter until the sandbox ends).
    fn watch_oom(&self, id: &str, runtime: Runtime) -> std::thread::JoinHandle<()> {
        let events = self.events.clone();
        let id = id.to_string();
        std::thread::spawn(move || {
            let on_oom = || {
                events.send(
                    topics::TASK_OOM_EVENT_TOPIC,
                    TaskOOM {
                        container_id: id.clone(),
                        ..Default::default()
                    },
                )
            };
            if let Err(e) = runtime.watch_oom(&id, on_oom) {
                warn!("no OOM events for {id}: {e}");
            }
        })
    }

    fn start_process(&self, req: &api::StartRequest) -> Result<api::StartResponse, ShimError> {
        if req.exec_id.is_empty() {
            let (log, state) =
                self.with_container(&req.id, |c| Ok((c.scratch("log.json"), c.init.state)))?;
            if state != ProcState::Created {
                return Err(ShimError::FailedPrecondition(format!(
                    "container {} is not in the created state",
                    req.id
                )));
            }
            self.rt(&req.id)?.start(&req.id, &log)?;
            let pid = self.with_container(&req.id, |c| {
                if c.init.state == ProcState::Created {
                    c.init.state = ProcState::Running;
                }
                Ok(c.init.pid)
            })?;
            self.events.send(
                topics::TASK_START_EVENT_TOPIC,
                TaskStart {
                    container_id: req.id.clone(),
                    pid,
                    ..Default::default()
                },
            );
            return Ok(api::StartResponse {
                pid,
                ..Default::default()
            });
        }
        self.start_exec(&req.id, &req.exec_id)
    }

    fn start_exec(&self, id: &str, exec_id: &str) -> Result<api::StartResponse, ShimError> {
        let (bundle, spec, stdio) = self.with_container(id, |c| {
            let bundle = c.bundle.clone();
            let p = c.process_mut(exec_id)?;
            let spec = match (&p.state, p.spec.take()) {
                (ProcState::Created, Some(spec)) => spec,
                _ => {
                    return Err(ShimError::FailedPrecondition(format!(
                        "process {exec_id} was already started"
                    )))
                }
            };
            Ok((bundle, spec, p.stdio.clone()))
        })?;
        let tag = format!("exec-{}", sanitize(exec_id));
        let spec_path = bundle.join(format!("{tag}.json"));
        let pid_file = bundle.join(format!("{tag}.pid"));
        let internal_pid_file = bundle.join(format!("{tag}.sandbox-pid"));
        let log = bundle.join(format!("{tag}.log.json"));
        std::fs::write(&spec_path, &spec).map_err(ShimError::io("writing the process spec"))?;
        let mut prepared = stdio.prepare(&bundle, &tag)?;
        let console = prepared.console_socket.as_ref().map(|s| s.path.clone());
        let ran = self.rt(id)?.exec(
            id,
            &spec_path,
            &pid_file,
            &internal_pid_file,
            console.as_deref(),
            prepared.take_process_stdio(),
            &log,
        );
        let _ = std::fs::remove_file(&spec_path);
        let pids = ran.and_then(|()| Ok((read_pid(&pid_file)?, read_pid(&internal_pid_file)?)));
        let (pid, sandbox_pid) = match pids {
            Ok(p) => p,
            Err(e) => {
                let _ = self.with_container(id, |c| {
                    c.process(exec_id)?.release_waiters();
                    Ok(())
                });
                return Err(e);
            }
        };
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&internal_pid_file);
        let slot = reaper::watch(pid);
        let copier = prepared.start_copying(&stdio)?;
        self.with_container(id, |c| {
            let p = c.process_mut(exec_id)?;
            p.pid = pid as u32;
            p.sandbox_pid = sandbox_pid;
            p.state = ProcState::Running;
            *lock(&p.copier) = copier;
            self.watch_exit(id, p, slot, None);
            Ok(())
        })?;
        self.events.send(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            TaskExecStarted {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn add_exec(&self, req: api::ExecProcessRequest) -> Result<(), ShimError> {
        let spec = req
            .spec
            .as_ref()
            .map(|any| any.value.clone())
            .ok_or_else(|| ShimError::InvalidArgument("exec without a process spec".into()))?;
        // The Any holds the OCI process as JSON; check it parses now so
        // that a bad one fails Exec, not Start.
        serde_json::from_slice::<oci_spec::runtime::Process>(&spec)
            .map_err(|e| ShimError::InvalidArgument(format!("exec process spec: {e}")))?;
        self.with_container(&req.id, |c| {
            if c.init.state == ProcState::Stopped || c.init.reported_exit().is_some() {
                return Err(ShimError::FailedPrecondition(format!(
                    "container {} is not running",
                    c.id
                )));
            }
            if c.execs.contains_key(&req.exec_id) {
                return Err(ShimError::AlreadyExists(format!("exec {}", req.exec_id)));
            }
            let mut p = Process::new(
                &req.exec_id,
                StdioPaths {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                },
            );
            p.spec = Some(spec);
            c.execs.insert(req.exec_id.clone(), p);
            Ok(())
        })?;
        self.events.send(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            },
        );
        Ok(())
    }

    fn kill_process(&self, req: &api::KillRequest) -> Result<(), ShimError> {
        let (log, state, sandbox_pid, exited) = self.with_container(&req.id, |c| {
            let p = c.process(&req.exec_id)?;
            Ok((
                c.scratch("log.json"),
                p.state,
                p.sandbox_pid,
                p.reported_exit().is_some(),
            ))
        })?;
        if state == ProcState::Stopped || exited {
            return Err(ShimError::ProcessFinished);
        }
        let sent = if req.exec_id.is_empty() {
            self.rt(&req.id)?.kill(&req.id, req.signal, req.all, &log)
        } else if state == ProcState::Created {
            return Err(ShimError::FailedPrecondition(format!(
                "process {} is not started",
                req.exec_id
            )));
        } else {
            self.rt(&req.id)?
                .kill_process(&req.id, sandbox_pid, req.signal, &log)
        };
        match sent {
            Ok(()) => Ok(()),
            // It ended while we were sending.
            Err(_) if self.process_gone(&req.id, &req.exec_id) => Err(ShimError::ProcessFinished),
            Err(e) => Err(e),
        }
    }

    /// Whether the process has exited (or its sandbox has), by now.
    fn process_gone(&self, id: &str, exec_id: &str) -> bool {
        std::thread::sleep(Duration::from_millis(50));
        self.with_container(id, |c| {
            Ok(c.init.reported_exit().is_some() || c.process(exec_id)?.reported_exit().is_some())
        })
        .unwrap_or(true)
    }

    fn delete_process(&self, req: &api::DeleteRequest) -> Result<api::DeleteResponse, ShimError> {
        if !req.exec_id.is_empty() {
            let p = self.with_container(&req.id, |c| {
                let p = c.process(&req.exec_id)?;
                if p.state == ProcState::Running && p.reported_exit().is_none() {
                    return Err(ShimError::FailedPrecondition(format!(
                        "cannot delete running exec {}",
                        req.exec_id
                    )));
                }
                Ok(c.execs.remove(&req.exec_id))
            })?;
            if let Some(p) = &p {
                if p.state == ProcState::Created {
                    p.release_waiters();
                }
            }
            let (pid, exit) = p.map_or((0, None), |p| (p.pid, p.reported_exit()));
            return Ok(delete_response(pid, exit));
        }
        let (log, running) = self.with_container(&req.id, |c| {
            Ok((
                c.scratch("log.json"),
                c.init.state == ProcState::Running && c.init.reported_exit().is_none(),
            ))
        })?;
        if running {
            return Err(ShimError::FailedPrecondition(format!(
                "cannot delete running task {}",
                req.id
            )));
        }
        // A created (never started) container still has a sentry: end it.
        self.rt(&req.id)?.delete_force(&req.id, &log)?;
        let c = lock(&self.containers).remove(&req.id);
        let Some(c) = c else {
            return Err(ShimError::NoContainer(req.id.clone()));
        };
        // The sentry is gone now; its exit reaches us shortly.
        let exit = match c.init.reported_exit() {
            Some(e) => Some(e),
            None => {
                let (m, cv) = &*c.init.exit;
                let g = lock(m);
                let (g, _) = cv
                    .wait_timeout_while(g, Duration::from_secs(5), |e| e.is_none())
                    .unwrap_or_else(|p| p.into_inner());
                *g
            }
        };
        if c.rootfs_mounted {
            rootfs::unmount(&c.bundle.join("rootfs"));
        }
        // Whatever never reported an exit (an exec whose start failed, a
        // task deleted unstarted) will not now.
        for p in std::iter::once(&c.init).chain(c.execs.values()) {
            if p.reported_exit().is_none() {
                p.release_waiters();
            }
        }
        for f in ["init.pid", "log.json"] {
            let _ = std::fs::remove_file(c.scratch(f));
        }
        let resp = delete_response(c.init.pid, exit);
        self.events.send(
            topics::TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: req.id.clone(),
                id: req.id.clone(),
                pid: resp.pid,
                exit_status: resp.exit_status,
                exited_at: resp.exited_at.clone(),
                ..Default::default()
            },
        );
        Ok(resp)
    }

    fn state(&self, req: &api::StateRequest) -> Result<api::StateResponse, ShimError> {
        self.with_container(&req.id, |c| {
            let p = c.process(&req.exec_id)?;
            let exit = p.reported_exit();
            let status = match (exit, p.state) {
                (Some(_), _) | (None, ProcState::Stopped) => Status::STOPPED,
                (None, ProcState::Created) => Status::CREATED,
                (None, ProcState::Running) if c.paused => Status::PAUSED,
                (None, ProcState::Running) => Status::RUNNING,
            };
            Ok(api::StateResponse {
                id: if req.exec_id.is_empty() {
                    c.id.clone()
                } else {
                    req.exec_id.clone()
                },
                bundle: c.bundle.to_string_lossy().into_owned(),
                pid: p.pid,
                status: status.into(),
                stdin: p.stdio.stdin.clone(),
                stdout: p.stdio.stdout.clone(),
                stderr: p.stdio.stderr.clone(),
                terminal: p.stdio.terminal,
                exit_status: exit.map_or(0, |e| e.status as u32),
                exited_at: exit.map_or(MessageField::none(), |e| {
                    MessageField::some(timestamp(e.at))
                }),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            })
        })
    }

    fn wait_process(&self, req: &api::WaitRequest) -> Result<api::WaitResponse, ShimError> {
        let exit = self.with_container(&req.id, |c| Ok(c.process(&req.exec_id)?.exit.clone()))?;
        let (m, cv) = &*exit;
        let mut g = lock(m);
        while g.is_none() {
            g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        let e = g.unwrap_or(Exit {
            status: 0,
            at: std::time::SystemTime::now(),
        });
        Ok(api::WaitResponse {
            exit_status: e.status as u32,
            exited_at: MessageField::some(timestamp(e.at)),
            ..Default::default()
        })
    }

    fn pause_or_resume(&self, id: &str, pause: bool) -> Result<(), ShimError> {
        let log = self.with_container(id, |c| Ok(c.scratch("log.json")))?;
        if pause {
            self.rt(id)?.pause(id, &log)?;
        } else {
            self.rt(id)?.resume(id, &log)?;
        }
        self.with_container(id, |c| {
            c.paused = pause;
            Ok(())
        })?;
        if pause {
            self.events.send(
                topics::TASK_PAUSED_EVENT_TOPIC,
                TaskPaused {
                    container_id: id.to_string(),
                    ..Default::default()
                },
            );
        } else {
            self.events.send(
                topics::TASK_RESUMED_EVENT_TOPIC,
                TaskResumed {
                    container_id: id.to_string(),
                    ..Default::default()
                },
            );
        }
        Ok(())
    }

    fn pids(&self, id: &str) -> Result<api::PidsResponse, ShimError> {
        let log = self.with_container(id, |c| Ok(c.scratch("log.json")))?;
        let pids = self.rt(id)?.pids(id, &log)?;
        Ok(api::PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| containerd_shim::protos::types::task::ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn update(&self, req: &api::UpdateTaskRequest) -> Result<(), ShimError> {
        let (log, path) = self.with_container(&req.id, |c| {
            Ok((c.scratch("log.json"), c.scratch("resources.json")))
        })?;
        let Some(resources) = req.resources.as_ref() else {
            return Ok(());
        };
        // containerd sends the OCI LinuxResources as JSON in the Any.
        std::fs::write(&path, &resources.value).map_err(ShimError::io("writing resources"))?;
        let r = self.rt(&req.id)?.update(&req.id, &path, &log);
        let _ = std::fs::remove_file(&path);
        r
    }

    fn stats(&self, id: &str) -> Result<api::StatsResponse, ShimError> {
        let log = self.with_container(id, |c| Ok(c.scratch("log.json")))?;
        let stats = self.rt(id)?.stats(id, &log)?;
        let any: Any = metrics::from_rvisor_stats(&stats)?;
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }
}

fn delete_response(pid: u32, exit: Option<Exit>) -> api::DeleteResponse {
    // A process that never ran, or whose exit never came, counts as killed.
    let exit = exit.unwrap_or(Exit {
        status: 128 + libc::SIGKILL,
        at: std::time::SystemTime::now(),
    });
    api::DeleteResponse {
        pid,
        exit_status: exit.status as u32,
        exited_at: MessageField::some(timestamp(exit.at)),
        ..Default::default()
    }
}

fn read_pid(path: &Path) -> Result<i32, ShimError> {
    let text = std::fs::read_to_string(path)
        .map_err(ShimError::io(format!("reading {}", path.display())))?;
    text.trim().parse().map_err(|_| {
        ShimError::FailedPrecondition(format!("bad pid in {}: {text:?}", path.display()))
    })
}

/// An exec id as a file name part (containerd allows more than a path
/// component does).
fn sanitize(exec_id: &str) -> String {
    exec_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

impl containerd_shim::Task for TaskService {
    fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        info!("create {}", req.id);
        Ok(self.create_task(req)?)
    }

    fn start(&self, _: &TtrpcContext, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        info!("start {} {:?}", req.id, req.exec_id);
        Ok(self.start_process(&req)?)
    }

    fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        info!("delete {} {:?}", req.id, req.exec_id);
        Ok(self.delete_process(&req)?)
    }

    fn state(&self, _: &TtrpcContext, req: api::StateRequest) -> TtrpcResult<api::StateResponse> {
        Ok(TaskService::state(self, &req)?)
    }

    fn wait(&self, _: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        Ok(self.wait_process(&req)?)
    }

    fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        info!(
            "kill {} {:?} signal {} all {}",
            req.id, req.exec_id, req.signal, req.all
        );
        self.kill_process(&req)?;
        Ok(api::Empty::new())
    }

    fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        info!("exec {} {:?}", req.id, req.exec_id);
        self.add_exec(req)?;
        Ok(api::Empty::new())
    }

    fn pids(&self, _: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        Ok(TaskService::pids(self, &req.id)?)
    }

    fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        self.pause_or_resume(&req.id, true)?;
        Ok(api::Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        self.pause_or_resume(&req.id, false)?;
        Ok(api::Empty::new())
    }

    fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        if req.stdin {
            let copier =
                self.with_container(&req.id, |c| Ok(c.process(&req.exec_id)?.copier.clone()))?;
            lock(&copier).close_stdin();
        }
        Ok(api::Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: api::ResizePtyRequest) -> TtrpcResult<api::Empty> {
        let copier =
            self.with_container(&req.id, |c| Ok(c.process(&req.exec_id)?.copier.clone()))?;
        lock(&copier).resize(req.width, req.height)?;
        Ok(api::Empty::new())
    }

    fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        TaskService::update(self, &req)?;
        Ok(api::Empty::new())
    }

    fn stats(&self, _: &TtrpcContext, req: api::StatsRequest) -> TtrpcResult<api::StatsResponse> {
        Ok(TaskService::stats(self, &req.id)?)
    }

    fn checkpoint(
        &self,
        _: &TtrpcContext,
        _: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        Err(ShimError::Unsupported("checkpoint").into())
    }

    fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self
            .with_container(&req.id, |c| Ok(c.init.pid))
            .unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _: &TtrpcContext, req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        // One shim may serve several containers (a pod): it goes only when
        // the last one has been deleted.
        if !lock(&self.containers).is_empty() && !req.now {
            return Ok(api::Empty::new());
        }
        info!("shutting down");
        self.exit.signal();
        Ok(api::Empty::new())
    }
}
