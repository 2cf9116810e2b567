//! A process's stdio as containerd hands it over: the paths of fifos its
//! client reads and writes (or `file://` paths for log files), or a
//! terminal.
//!
//! As containerd's runc shim does, the shim never gives the fifos to the
//! sandbox itself: the container gets pipes (or a pty) and shim threads copy
//! between those and the fifos. So a client that comes and goes does not
//! hang the container, and CloseIO can end the container's stdin even while
//! the client keeps its fifo open.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::ShimError;
use crate::runtime::ProcessStdio;
use crate::{lock, wait_threads};

/// The fifo (or file) paths of one process's stdio; empty = none.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The shim's side of a running process's stdio.
#[derive(Default)]
pub struct StdioCopier {
    /// Where the container's stdin comes from; None once closed.
    stdin_writer: Arc<Mutex<Option<File>>>,
    /// The pty master, for resizes.
    console: Option<Arc<File>>,
    /// The threads copying output; waited for so all output is out before
    /// the exit is reported.
    output_threads: Vec<JoinHandle<()>>,
}

/// The stdio set up for a process about to be created: what the `rvisor`
/// command gets, and what the shim keeps.
pub struct PreparedStdio {
    pub for_process: ProcessStdio,
    pub console_socket: Option<ConsoleSocket>,
    pipes: PipeEnds,
}

#[derive(Default)]
struct PipeEnds {
    stdin_writer: Option<File>,
    stdout_reader: Option<File>,
    stderr_reader: Option<File>,
}

/// A listening unix socket that `rvisor create --console-socket` sends the
/// pty master to.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pipe() -> Result<(File, File), ShimError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ShimError::io("creating a pipe")(e.into()))?;
    Ok((File::from(r), File::from(w)))
}

impl StdioPaths {
    /// Makes the pipes or the console socket for a process.
    pub fn prepare(&self, scratch_dir: &Path, tag: &str) -> Result<PreparedStdio, ShimError> {
        if self.terminal {
            return Ok(PreparedStdio {
                for_process: ProcessStdio::null(),
                console_socket: Some(ConsoleSocket::bind(scratch_dir, tag)?),
                pipes: PipeEnds::default(),
            });
        }
        let mut pipes = PipeEnds::default();
        let mut for_process = ProcessStdio::null();
        if !self.stdin.is_empty() {
            let (r, w) = pipe()?;
            for_process.stdin = Some(r.into());
            pipes.stdin_writer = Some(w);
        }
        if !self.stdout.is_empty() {
            let (r, w) = pipe()?;
            for_process.stdout = Some(w.into());
            pipes.stdout_reader = Some(r);
        }
        if !self.stderr.is_empty() {
            let (r, w) = pipe()?;
            for_process.stderr = Some(w.into());
            pipes.stderr_reader = Some(r);
        }
        Ok(PreparedStdio {
            for_process,
            console_socket: None,
            pipes,
        })
    }
}

impl PreparedStdio {
    /// Takes the fds the `rvisor` command inherits, leaving the shim's.
    pub fn take_process_stdio(&mut self) -> ProcessStdio {
        std::mem::replace(&mut self.for_process, ProcessStdio::null())
    }

    /// Once the process exists: starts copying between the fifos and the
    /// pipes (or the pty master that came over the console socket).
    pub fn start_copying(self, paths: &StdioPaths) -> Result<StdioCopier, ShimError> {
        let (ends, console) = match &self.console_socket {
            Some(sock) => {
                let master = Arc::new(sock.receive_master()?);
                let dup = || master.try_clone().map_err(ShimError::io("dup pty master"));
                let ends = PipeEnds {
                    stdin_writer: (!paths.stdin.is_empty()).then(dup).transpose()?,
                    stdout_reader: (!paths.stdout.is_empty()).then(dup).transpose()?,
                    // A terminal is one stream: stderr comes out on stdout.
                    stderr_reader: None,
                };
                (ends, Some(master))
            }
            None => (self.pipes, None),
        };
        let mut copier = StdioCopier {
            console,
            ..StdioCopier::default()
        };
        if let Some(w) = ends.stdin_writer {
            *lock(&copier.stdin_writer) = Some(w);
            copy_stdin(&paths.stdin, copier.stdin_writer.clone());
        }
        for (reader, path) in [
            (ends.stdout_reader, &paths.stdout),
            (ends.stderr_reader, &paths.stderr),
        ] {
            if let Some(r) = reader {
                copier
                    .output_threads
                    .push(copy_output(r, open_output(path)?));
            }
        }
        Ok(copier)
    }
}

impl StdioCopier {
    /// CloseIO: the container's stdin reaches EOF.
    pub fn close_stdin(&self) {
        lock(&self.stdin_writer).take();
    }

    /// ResizePty: the terminal's new size.
    pub fn resize(&self, width: u32, height: u32) -> Result<(), ShimError> {
        let Some(master) = &self.console else {
            return Err(ShimError::FailedPrecondition(
                "the process has no terminal".into(),
            ));
        };
        let size = libc::winsize {
            ws_row: height.min(u16::MAX as u32) as u16,
            ws_col: width.min(u16::MAX as u32) as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which
        // outlives the call; the fd is the open pty master.
        let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        if r < 0 {
            return Err(ShimError::io("resizing the terminal")(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Waits until all output the process wrote has reached the fifos, or
    /// `timeout` (a descendant may hold the pipe open past the exit).
    pub fn wait_output(&mut self, timeout: Duration) {
        wait_threads(&self.output_threads, timeout);
        self.output_threads.retain(|t| !t.is_finished());
    }
}

/// Opens where output goes: a fifo (read-write, so the open never waits for
/// a reader and the client's reader sees EOF only when we close it) or a
/// `file://` log file.
fn open_output(path: &str) -> Result<File, ShimError> {
    if let Some(file) = path.strip_prefix("file://") {
        return OpenOptions::new()
            .append(true)
            .create(true)
            .open(file)
            .map_err(ShimError::io(format!("opening {file}")));
    }
    if path.contains("://") {
        return Err(ShimError::InvalidArgument(format!(
            "unsupported stdio URI {path} (fifo paths and file:// are)"
        )));
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(ShimError::io(format!("opening {path}")))
}

fn copy_output(mut from: File, mut to: File) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from.read(&mut buf) {
                // EIO: a pty master whose last slave closed.
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Copies the stdin fifo into the container until the client closes it or
/// CloseIO takes the writer away. The open waits (in this thread) for the
/// client to open its end.
fn copy_stdin(path: &str, to: Arc<Mutex<Option<File>>>) {
    let path = path.to_string();
    std::thread::spawn(move || {
        let Ok(mut from) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
        else {
            lock(&to).take();
            return;
        };
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut w = lock(&to);
            let Some(f) = w.as_mut() else { return };
            if f.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        // The client closed its end: so does the container's stdin (a pty
        // master stays open through its other copies, for output).
        let mut w = lock(&to);
        w.take();
    });
}

impl ConsoleSocket {
    fn bind(scratch_dir: &Path, tag: &str) -> Result<ConsoleSocket, ShimError> {
        // A unix socket path must fit in 108 bytes; bundle paths may not.
        let mut path = scratch_dir.join(format!("console-{tag}.sock"));
        if path.as_os_str().len() > 100 {
            path =
                std::env::temp_dir().join(format!("rvisor-shim-{}-{tag}.sock", std::process::id()));
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(ShimError::io(format!("binding {}", path.display())))?;
        Ok(ConsoleSocket { path, listener })
    }

    /// The pty master `rvisor` sent (it has, by the time its command
    /// returns success).
    fn receive_master(&self) -> Result<File, ShimError> {
        self.listener
            .set_nonblocking(true)
            .map_err(ShimError::io("console socket"))?;
        let (conn, _) = self
            .listener
            .accept()
            .map_err(ShimError::io("no terminal came over the console socket"))?;
        let mut name = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut name)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| ShimError::io("receiving the terminal")(e.into()))?;
        for c in msg
            .cmsgs()
            .map_err(|e| ShimError::io("receiving the terminal")(e.into()))?
        {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: SCM_RIGHTS just installed this fd in our
                    // table; nothing else owns it.
                    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                    for &extra in &fds[1..] {
                        let _ = nix::unistd::close(extra);
                    }
                    return Ok(File::from(owned));
                }
            }
        }
        Err(ShimError::FailedPrecondition(
            "the console socket message carried no terminal".into(),
        ))
    }
}
