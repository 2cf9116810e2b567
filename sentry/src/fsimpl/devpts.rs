//! Pseudo-terminals: /dev/ptmx, /dev/pts/N and the line discipline
//! (gVisor's `fsimpl/devpts`). Entirely in the sentry: no host tty exists.
//!
//! A [`Terminal`] pairs a master (what `posix_openpt` returns; a terminal
//! emulator or `script` holds it) with replicas (/dev/pts/N, the program's
//! stdin/stdout). Bytes written to the master go through input processing
//! (ICRNL, canonical line editing, echo, and ISIG: ^C, ^\ and ^Z signal the
//! foreground process group) and are read from the replica; bytes written
//! to the replica go through output processing (ONLCR) and are read from
//! the master. Sessions, the controlling terminal and the foreground
//! process group live here too, for job control.
//!
//! Blocking: each direction has a host eventfd whose counter is non-zero
//! exactly while a read on that side would not block, so poll, epoll and
//! blocking reads wait on it like on any host fd.

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use nix::errno::Errno;

use super::ready::ReadyFlag;
use super::simple::{next_ino, synthetic_stat};
use crate::kernel::{kernel, lock};
use crate::vfs::{DirEntry, FileOps, FileStat, FileType, Inode, VfsResult};

/// Size of the System V struct termio (TCGETA/TCSETA), and how many
/// control characters it carries.
pub const TERMIO_SIZE: usize = 18;
const TERMIO_NCC: usize = 8;

/// Size of the kernel's struct termios (TCGETS/TCSETS).
pub const TERMIOS_SIZE: usize = 36;
/// Most bytes the input queue holds, as N_TTY's buffer.
const INPUT_MAX: usize = 4095;
/// Most bytes of output the master has not read yet before replica writes
/// block.
const OUTPUT_MAX: usize = 64 * 1024;
/// Major number of pty replicas (UNIX98_PTY_SLAVE_MAJOR).
const PTS_MAJOR: u32 = 136;
/// gid of the "tty" group, which owns /dev/pts/N.
const TTY_GID: u32 = 5;

// termios flag bits (asm-generic/termbits.h).
const IGNCR: u32 = 0o200;
const ICRNL: u32 = 0o400;
const INLCR: u32 = 0o100;
const ISTRIP: u32 = 0o40;
const OPOST: u32 = 0o1;
const ONLCR: u32 = 0o4;
const OCRNL: u32 = 0o10;
const ISIG: u32 = 0o1;
const ICANON: u32 = 0o2;
const ECHO: u32 = 0o10;
const ECHOE: u32 = 0o20;
const ECHOK: u32 = 0o40;
const ECHONL: u32 = 0o100;
const NOFLSH: u32 = 0o200;
const TOSTOP: u32 = 0o400;
const ECHOCTL: u32 = 0o1000;
const ECHOKE: u32 = 0o4000;
const IEXTEN: u32 = 0o100000;
// c_cc indices.
const VINTR: usize = 0;
const VQUIT: usize = 1;
const VERASE: usize = 2;
const VKILL: usize = 3;
const VEOF: usize = 4;
const VMIN: usize = 6;
const VSUSP: usize = 10;
const VEOL: usize = 11;
const VWERASE: usize = 14;
const VLNEXT: usize = 15;
const VEOL2: usize = 16;

/// The kernel's struct termios.
#[derive(Clone, Copy, Debug)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; 19],
}

impl Termios {
    /// Linux's tty_std_termios: cooked mode with echo and signals.
    fn standard() -> Termios {
        Termios {
            iflag: ICRNL | 0o2000, // ICRNL | IXON
            oflag: OPOST | ONLCR,
            cflag: 0o17 | 0o60 | 0o200 | 0o2000, // B38400 | CS8 | CREAD | HUPCL
            lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            line: 0,
            cc: *b"\x03\x1c\x7f\x15\x04\x00\x01\x00\x11\x13\x1a\x00\x12\x0f\x17\x16\x00\x00\x00",
        }
    }

    pub fn to_bytes(self) -> [u8; TERMIOS_SIZE] {
        let mut b = [0u8; TERMIOS_SIZE];
        b[0..4].copy_from_slice(&self.iflag.to_le_bytes());
        b[4..8].copy_from_slice(&self.oflag.to_le_bytes());
        b[8..12].copy_from_slice(&self.cflag.to_le_bytes());
        b[12..16].copy_from_slice(&self.lflag.to_le_bytes());
        b[16] = self.line;
        b[17..36].copy_from_slice(&self.cc);
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Termios> {
        if b.len() < TERMIOS_SIZE {
            return None;
        }
        let word = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut cc = [0u8; 19];
        cc.copy_from_slice(&b[17..36]);
        Some(Termios {
            iflag: word(0),
            oflag: word(4),
            cflag: word(8),
            lflag: word(12),
            line: b[16],
            cc,
        })
    }

    /// The System V `struct termio` (TCGETA): each flag's low 16 bits, the
    /// line discipline and the first 8 control characters (18 bytes).
    pub fn to_termio_bytes(self) -> [u8; TERMIO_SIZE] {
        let mut b = [0u8; TERMIO_SIZE];
        for (i, flag) in [self.iflag, self.oflag, self.cflag, self.lflag]
            .into_iter()
            .enumerate()
        {
            b[2 * i..2 * i + 2].copy_from_slice(&(flag as u16).to_le_bytes());
        }
        b[8] = self.line;
        b[9..17].copy_from_slice(&self.cc[..TERMIO_NCC]);
        b
    }

    /// These settings with a `struct termio` applied (TCSETA): as Linux's
    /// user_termio_to_kernel_termios, the flags' high 16 bits and the
    /// control characters past the 8th are kept.
    pub fn with_termio(mut self, b: &[u8]) -> Option<Termios> {
        if b.len() < TERMIO_SIZE {
            return None;
        }
        let low = |o: usize| u32::from(u16::from_le_bytes([b[o], b[o + 1]]));
        self.iflag = (self.iflag & 0xffff_0000) | low(0);
        self.oflag = (self.oflag & 0xffff_0000) | low(2);
        self.cflag = (self.cflag & 0xffff_0000) | low(4);
        self.lflag = (self.lflag & 0xffff_0000) | low(6);
        self.line = b[8];
        self.cc[..TERMIO_NCC].copy_from_slice(&b[9..17]);
        Some(self)
    }

    fn has_l(&self, bit: u32) -> bool {
        self.lflag & bit != 0
    }
}

struct TermState {
    termios: Termios,
    winsize: libc::winsize,
    /// A new master's replica cannot be opened until unlockpt.
    locked: bool,
    /// The line being edited in canonical mode.
    line: Vec<u8>,
    /// Bytes the replica may read.
    input: VecDeque<u8>,
    /// Canonical mode: lengths of the complete lines in `input` (a line
    /// ended by VEOF may be empty: a read of 0).
    lines: VecDeque<usize>,
    /// The next input byte is taken literally (after VLNEXT).
    literal_next: bool,
    output: VecDeque<u8>,
    masters: usize,
    replicas: usize,
    /// The last replica was closed (master reads give EIO).
    replica_hung_up: bool,
    /// Session this is the controlling terminal of.
    session: Option<i32>,
    foreground: Option<i32>,
}

pub struct Terminal {
    pub index: u32,
    state: Mutex<TermState>,
    /// Replica reads would not block.
    replica_ready: ReadyFlag,
    /// Master reads would not block.
    master_ready: ReadyFlag,
    /// Replica writes would not block.
    output_room: ReadyFlag,
    ino: u64,
}

/// Live terminals by index.
fn registry() -> MutexGuard<'static, BTreeMap<u32, Weak<Terminal>>> {
    static REG: OnceLock<Mutex<BTreeMap<u32, Weak<Terminal>>>> = OnceLock::new();
    lock(REG.get_or_init(|| Mutex::new(BTreeMap::new())))
}

/// The calling process's (pid, pgid, sid).
fn caller_ids() -> Option<(i32, i32, i32)> {
    let me = crate::kernel::current()?;
    let tree = lock(&kernel().tree);
    let e = tree.procs.get(&me.pid)?;
    Some((me.pid, e.pgid, e.sid))
}

/// The controlling terminal of `sid`, if it has one.
pub fn controlling_terminal(sid: i32) -> Option<Arc<Terminal>> {
    registry()
        .values()
        .filter_map(|w| w.upgrade())
        .find(|t| lock(&t.state).session == Some(sid))
}

impl Terminal {
    fn new() -> VfsResult<Arc<Terminal>> {
        let mut reg = registry();
        reg.retain(|_, w| w.strong_count() > 0);
        let index = (0..).find(|i| !reg.contains_key(i)).unwrap_or(0);
        let term = Arc::new(Terminal {
            index,
            state: Mutex::new(TermState {
                termios: Termios::standard(),
                // SAFETY: winsize is plain old data; all-zero is valid.
                winsize: unsafe { std::mem::zeroed() },
                locked: true,
                line: Vec::new(),
                input: VecDeque::new(),
                lines: VecDeque::new(),
                literal_next: false,
                output: VecDeque::new(),
                masters: 0,
                replicas: 0,
                replica_hung_up: false,
                session: None,
                foreground: None,
            }),
            replica_ready: ReadyFlag::new()?,
            master_ready: ReadyFlag::new()?,
            output_room: ReadyFlag::new()?,
            ino: next_ino(),
        });
        term.output_room.update(true);
        reg.insert(index, Arc::downgrade(&term));
        Ok(term)
    }

    fn state(&self) -> MutexGuard<'_, TermState> {
        lock(&self.state)
    }

    /// Recomputes the readiness flags after any change.
    fn update(&self, st: &TermState) {
        let replica = if st.termios.has_l(ICANON) {
            !st.lines.is_empty()
        } else {
            !st.input.is_empty()
        };
        self.replica_ready.update(replica || st.masters == 0);
        self.master_ready
            .update(!st.output.is_empty() || st.replica_hung_up);
        self.output_room
            .update(st.output.len() < OUTPUT_MAX || st.masters == 0);
    }

    pub fn termios(&self) -> Termios {
        self.state().termios
    }

    /// TCSETS*: switching canonical mode off makes the partial line
    /// readable; TCSETSF also flushes pending input.
    pub fn set_termios(&self, new: Termios, flush_input: bool) {
        let mut st = self.state();
        if flush_input {
            st.input.clear();
            st.lines.clear();
            st.line.clear();
        }
        let was_canon = st.termios.has_l(ICANON);
        st.termios = new;
        if was_canon && !new.has_l(ICANON) {
            let line = std::mem::take(&mut st.line);
            st.input.extend(line);
            st.lines.clear();
        } else if !was_canon && new.has_l(ICANON) && !st.input.is_empty() {
            // What raw mode left unread becomes one line.
            let n = st.input.len();
            st.lines.push_back(n);
        }
        self.update(&st);
    }

    pub fn winsize(&self) -> libc::winsize {
        self.state().winsize
    }

    /// TIOCSWINSZ: a change signals SIGWINCH to the foreground group.
    pub fn set_winsize(&self, ws: libc::winsize) {
        let fg = {
            let mut st = self.state();
            let same = st.winsize.ws_row == ws.ws_row
                && st.winsize.ws_col == ws.ws_col
                && st.winsize.ws_xpixel == ws.ws_xpixel
                && st.winsize.ws_ypixel == ws.ws_ypixel;
            st.winsize = ws;
            if same {
                None
            } else {
                st.foreground
            }
        };
        if let Some(pg) = fg {
            kernel().signal_process_group(pg, libc::SIGWINCH);
        }
    }

    pub fn set_locked(&self, locked: bool) {
        self.state().locked = locked;
    }

    /// Bytes a replica read could take now (FIONREAD on the replica).
    pub fn input_len(&self) -> usize {
        let st = self.state();
        if st.termios.has_l(ICANON) {
            st.lines.iter().sum()
        } else {
            st.input.len()
        }
    }

    /// Bytes a master read could take now (FIONREAD on the master).
    pub fn output_len(&self) -> usize {
        self.state().output.len()
    }

    /// TCFLSH: 0 input, 1 output, 2 both.
    pub fn flush(&self, which: u64) -> VfsResult<()> {
        let mut st = self.state();
        match which {
            0 | 2 => {
                st.input.clear();
                st.lines.clear();
                st.line.clear();
                if which == 2 {
                    st.output.clear();
                }
            }
            1 => st.output.clear(),
            _ => return Err(Errno::EINVAL),
        }
        self.update(&st);
        Ok(())
    }

    pub fn session(&self) -> Option<i32> {
        self.state().session
    }

    pub fn foreground(&self) -> Option<i32> {
        self.state().foreground
    }

    /// TIOCSCTTY: the calling session leader takes this terminal.
    pub fn set_controlling(&self, steal: bool, privileged: bool) -> VfsResult<()> {
        let (pid, pgid, sid) = caller_ids().ok_or(Errno::ESRCH)?;
        if pid != sid {
            return Err(Errno::EPERM);
        }
        let mine = self.state().session;
        if mine == Some(sid) {
            return Ok(());
        }
        if controlling_terminal(sid).is_some() {
            return Err(Errno::EPERM);
        }
        let mut st = self.state();
        if let Some(other) = st.session {
            // Another live session's terminal: only a privileged steal.
            if session_alive(other) && !(steal && privileged) {
                return Err(Errno::EPERM);
            }
        }
        st.session = Some(sid);
        st.foreground = Some(pgid);
        Ok(())
    }

    /// TIOCNOTTY / the session leader giving up its terminal.
    pub fn release_controlling(&self) -> VfsResult<()> {
        let (pid, _, sid) = caller_ids().ok_or(Errno::ESRCH)?;
        let fg = {
            let mut st = self.state();
            if st.session != Some(sid) {
                return Err(Errno::ENOTTY);
            }
            let fg = st.foreground;
            if pid == sid {
                st.session = None;
                st.foreground = None;
            }
            fg
        };
        if pid == sid {
            if let Some(pg) = fg {
                kernel().signal_process_group(pg, libc::SIGHUP);
                kernel().signal_process_group(pg, libc::SIGCONT);
            }
        }
        Ok(())
    }

    /// TIOCSPGRP from a process whose controlling terminal this is.
    pub fn set_foreground(&self, pgid: i32) -> VfsResult<()> {
        let (_, _, sid) = caller_ids().ok_or(Errno::ESRCH)?;
        if pgid < 0 {
            return Err(Errno::EINVAL);
        }
        if self.state().session != Some(sid) {
            return Err(Errno::ENOTTY);
        }
        let in_session = lock(&kernel().tree)
            .procs
            .values()
            .any(|e| e.pgid == pgid && e.sid == sid && e.zombie.is_none());
        if !in_session {
            return Err(Errno::EPERM);
        }
        self.state().foreground = Some(pgid);
        Ok(())
    }

    /// Whether the caller reading (or, with TOSTOP, writing) its
    /// controlling terminal from a background group must be stopped:
    /// then its group gets `sig` and the call is restarted once it
    /// continues. Ignored or blocked SIGTTIN makes the read fail with EIO.
    fn job_control_check(&self, sig: i32) -> VfsResult<()> {
        let Some((_, pgid, sid)) = caller_ids() else {
            return Ok(());
        };
        let (session, fg) = {
            let st = self.state();
            (st.session, st.foreground)
        };
        if session != Some(sid) || fg.is_none_or(|f| f == pgid) {
            return Ok(());
        }
        let Some(me) = crate::kernel::current() else {
            return Ok(());
        };
        let ignored = lock(&me.sig).action(sig).handler == libc::SIG_IGN as u64;
        let blocked = crate::kernel::current_thread()
            .map(|t| lock(&t.sig).mask & crate::kernel::signals::sig_bit(sig) != 0)
            .unwrap_or(false);
        if ignored || blocked {
            return if sig == libc::SIGTTIN {
                Err(Errno::EIO)
            } else {
                Ok(())
            };
        }
        kernel().signal_process_group(pgid, sig);
        Err(Errno::EINTR)
    }

    // ---- input side: master writes, replica reads ----

    /// Writes from the master: input processing, one byte at a time.
    fn master_write(&self, buf: &[u8]) -> VfsResult<usize> {
        let mut signals = Vec::new();
        {
            let mut st = self.state();
            for &b in buf {
                if let Some(sig) = self.input_byte(&mut st, b) {
                    signals.push((sig, st.foreground));
                }
            }
            self.update(&st);
        }
        for (sig, fg) in signals {
            if let Some(pg) = fg {
                kernel().signal_process_group(pg, sig);
            }
        }
        Ok(buf.len())
    }

    /// Processes one input byte; returns a signal to raise (ISIG).
    fn input_byte(&self, st: &mut TermState, mut c: u8) -> Option<i32> {
        let tio = st.termios;
        if tio.iflag & ISTRIP != 0 {
            c &= 0x7f;
        }
        if st.literal_next {
            st.literal_next = false;
            self.queue_input(st, c);
            return None;
        }
        if c == b'\r' {
            if tio.iflag & IGNCR != 0 {
                return None;
            }
            if tio.iflag & ICRNL != 0 {
                c = b'\n';
            }
        } else if c == b'\n' && tio.iflag & INLCR != 0 {
            c = b'\r';
        }
        let is = |i: usize| tio.cc[i] != 0 && c == tio.cc[i];
        if tio.has_l(ISIG) {
            let sig = if is(VINTR) {
                Some(libc::SIGINT)
            } else if is(VQUIT) {
                Some(libc::SIGQUIT)
            } else if is(VSUSP) {
                Some(libc::SIGTSTP)
            } else {
                None
            };
            if let Some(sig) = sig {
                if !tio.has_l(NOFLSH) {
                    st.input.clear();
                    st.lines.clear();
                    st.line.clear();
                    st.output.clear();
                }
                self.echo(st, c);
                return Some(sig);
            }
        }
        if tio.has_l(IEXTEN) && is(VLNEXT) {
            st.literal_next = true;
            return None;
        }
        if tio.has_l(ICANON) {
            if is(VERASE) {
                if st.line.pop().is_some() && tio.has_l(ECHO) && tio.has_l(ECHOE) {
                    self.output_raw(st, b"\x08 \x08");
                }
                return None;
            }
            if is(VKILL) {
                let n = st.line.len();
                st.line.clear();
                if tio.has_l(ECHO) {
                    if tio.has_l(ECHOKE) {
                        for _ in 0..n {
                            self.output_raw(st, b"\x08 \x08");
                        }
                    } else if tio.has_l(ECHOK) {
                        self.echo(st, c);
                        self.output_processed(st, b"\n");
                    }
                }
                return None;
            }
            if tio.has_l(IEXTEN) && is(VWERASE) {
                while st.line.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    st.line.pop();
                    if tio.has_l(ECHO) && tio.has_l(ECHOE) {
                        self.output_raw(st, b"\x08 \x08");
                    }
                }
                while st.line.last().is_some_and(|b| !b.is_ascii_whitespace()) {
                    st.line.pop();
                    if tio.has_l(ECHO) && tio.has_l(ECHOE) {
                        self.output_raw(st, b"\x08 \x08");
                    }
                }
                return None;
            }
            if is(VEOF) {
                let line = std::mem::take(&mut st.line);
                st.lines.push_back(line.len());
                st.input.extend(line);
                return None;
            }
            if c == b'\n' || is(VEOL) || is(VEOL2) {
                if tio.has_l(ECHO) || (c == b'\n' && tio.has_l(ECHONL)) {
                    self.echo(st, c);
                }
                let mut line = std::mem::take(&mut st.line);
                line.push(c);
                st.lines.push_back(line.len());
                st.input.extend(line);
                return None;
            }
            // Keep room for the line's end, as N_TTY does.
            if st.line.len() + st.input.len() < INPUT_MAX - 1 {
                st.line.push(c);
                if tio.has_l(ECHO) {
                    self.echo(st, c);
                }
            }
            return None;
        }
        self.queue_input(st, c);
        if tio.has_l(ECHO) {
            self.echo(st, c);
        }
        None
    }

    fn queue_input(&self, st: &mut TermState, c: u8) {
        if st.termios.has_l(ICANON) {
            st.line.push(c);
        } else if st.input.len() < INPUT_MAX {
            st.input.push_back(c);
        }
    }

    /// Echoes an input byte: control characters as ^X with ECHOCTL.
    fn echo(&self, st: &mut TermState, c: u8) {
        if !st.termios.has_l(ECHO) && c != b'\n' {
            return;
        }
        let ctl = (c < 0x20 && c != b'\t' && c != b'\n') || c == 0x7f;
        if ctl && st.termios.has_l(ECHOCTL) {
            let shown = if c == 0x7f { b'?' } else { c + 0x40 };
            self.output_raw(st, &[b'^', shown]);
        } else {
            self.output_processed(st, &[c]);
        }
    }

    /// Replica read: one line at most in canonical mode.
    fn replica_read(&self, buf: &mut [u8], nonblocking: bool) -> VfsResult<usize> {
        self.job_control_check(libc::SIGTTIN)?;
        loop {
            {
                let mut st = self.state();
                let canon = st.termios.has_l(ICANON);
                let avail = if canon {
                    st.lines.front().copied()
                } else if st.input.is_empty() {
                    None
                } else {
                    Some(st.input.len())
                };
                if let Some(avail) = avail {
                    let n = buf.len().min(avail);
                    for (i, b) in st.input.drain(..n).enumerate() {
                        buf[i] = b;
                    }
                    if canon {
                        if n == avail {
                            st.lines.pop_front();
                        } else if let Some(front) = st.lines.front_mut() {
                            *front -= n;
                        }
                    }
                    self.update(&st);
                    return Ok(n);
                }
                if st.masters == 0 {
                    return Ok(0);
                }
                if !canon && st.termios.cc[VMIN] == 0 {
                    return Ok(0);
                }
            }
            if nonblocking {
                return Err(Errno::EAGAIN);
            }
            self.replica_ready.wait()?;
        }
    }

    // ---- output side: replica writes, master reads ----

    fn output_raw(&self, st: &mut TermState, bytes: &[u8]) {
        st.output.extend(bytes);
    }

    fn output_processed(&self, st: &mut TermState, bytes: &[u8]) {
        let o = st.termios.oflag;
        if o & OPOST == 0 {
            st.output.extend(bytes);
            return;
        }
        for &b in bytes {
            match b {
                b'\n' if o & ONLCR != 0 => st.output.extend(b"\r\n"),
                b'\r' if o & OCRNL != 0 => st.output.push_back(b'\n'),
                _ => st.output.push_back(b),
            }
        }
    }

    fn replica_write(&self, buf: &[u8], nonblocking: bool) -> VfsResult<usize> {
        if self.state().termios.has_l(TOSTOP) {
            self.job_control_check(libc::SIGTTOU)?;
        }
        loop {
            {
                let mut st = self.state();
                if st.masters == 0 {
                    return Err(Errno::EIO);
                }
                if st.output.len() < OUTPUT_MAX {
                    let n = buf.len().min(OUTPUT_MAX - st.output.len());
                    self.output_processed(&mut st, &buf[..n]);
                    self.update(&st);
                    return Ok(n);
                }
            }
            if nonblocking {
                return Err(Errno::EAGAIN);
            }
            self.output_room.wait()?;
        }
    }

    fn master_read(&self, buf: &mut [u8], nonblocking: bool) -> VfsResult<usize> {
        loop {
            {
                let mut st = self.state();
                if !st.output.is_empty() {
                    let n = buf.len().min(st.output.len());
                    for (i, b) in st.output.drain(..n).enumerate() {
                        buf[i] = b;
                    }
                    self.update(&st);
                    return Ok(n);
                }
                if st.replica_hung_up {
                    return Err(Errno::EIO);
                }
            }
            if nonblocking {
                return Err(Errno::EAGAIN);
            }
            self.master_ready.wait()?;
        }
    }

    fn stat(&self, replica: bool) -> FileStat {
        let mut st = if replica {
            let mut s = synthetic_stat(self.ino, libc::S_IFCHR | 0o620, 0);
            s.gid = TTY_GID;
            s.rdev = libc::makedev(PTS_MAJOR, self.index);
            s
        } else {
            let mut s = synthetic_stat(self.ino, libc::S_IFCHR | 0o666, 0);
            s.rdev = libc::makedev(5, 2);
            s
        };
        if let Some(p) = crate::kernel::current() {
            if replica {
                st.uid = lock(&p.creds).euid;
            }
        }
        st
    }
}

fn session_alive(sid: i32) -> bool {
    lock(&kernel().tree)
        .procs
        .values()
        .any(|e| e.sid == sid && e.zombie.is_none())
}

/// The master side of a terminal (an open of /dev/ptmx).
pub struct PtyMaster {
    pub term: Arc<Terminal>,
    nonblocking: AtomicBool,
}

/// A replica (an open of /dev/pts/N, or /dev/tty).
pub struct PtyReplica {
    pub term: Arc<Terminal>,
    nonblocking: AtomicBool,
}

/// Which side of a terminal an open file is.
pub enum TerminalEnd<'a> {
    Master(&'a Arc<Terminal>),
    Replica(&'a Arc<Terminal>),
}

impl PtyMaster {
    /// Opens /dev/ptmx: a new terminal, locked until unlockpt.
    pub fn open(flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        let term = Terminal::new()?;
        term.state().masters += 1;
        term.update(&term.state());
        Ok(Arc::new(PtyMaster {
            term,
            nonblocking: AtomicBool::new(flags & libc::O_NONBLOCK != 0),
        }))
    }
}

impl PtyReplica {
    pub fn open(term: Arc<Terminal>, flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        {
            let mut st = term.state();
            if st.locked || st.masters == 0 {
                return Err(Errno::EIO);
            }
            st.replicas += 1;
            st.replica_hung_up = false;
            term.update(&st);
        }
        // A session leader without a terminal acquires this one, unless
        // it asked not to.
        if flags & libc::O_NOCTTY == 0 {
            if let Some((pid, _, sid)) = caller_ids() {
                if pid == sid && term.session().is_none() && controlling_terminal(sid).is_none() {
                    let _ = term.set_controlling(false, false);
                }
            }
        }
        Ok(Arc::new(PtyReplica {
            term,
            nonblocking: AtomicBool::new(flags & libc::O_NONBLOCK != 0),
        }))
    }
}

impl Drop for PtyMaster {
    fn drop(&mut self) {
        let fg = {
            let mut st = self.term.state();
            st.masters = st.masters.saturating_sub(1);
            self.term.update(&st);
            if st.masters == 0 {
                st.foreground.take()
            } else {
                None
            }
        };
        // Hangup: the foreground job learns its terminal is gone.
        if let Some(pg) = fg {
            kernel().signal_process_group(pg, libc::SIGHUP);
            kernel().signal_process_group(pg, libc::SIGCONT);
        }
    }
}

impl Drop for PtyReplica {
    fn drop(&mut self) {
        let mut st = self.term.state();
        st.replicas = st.replicas.saturating_sub(1);
        if st.replicas == 0 {
            st.replica_hung_up = true;
        }
        self.term.update(&st);
    }
}

impl FileOps for PtyMaster {
    fn seekable(&self) -> bool {
        false
    }
    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        self.term
            .master_read(buf, self.nonblocking.load(Ordering::Relaxed))
    }
    fn write_at(&self, buf: &[u8], _off: u64) -> VfsResult<usize> {
        self.term.master_write(buf)
    }
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.term.stat(false))
    }
    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.term.master_ready.fd.as_raw_fd())
    }
    fn is_tty(&self) -> bool {
        true
    }
    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }
    fn terminal(&self) -> Option<TerminalEnd<'_>> {
        Some(TerminalEnd::Master(&self.term))
    }
}

impl FileOps for PtyReplica {
    fn seekable(&self) -> bool {
        false
    }
    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        self.term
            .replica_read(buf, self.nonblocking.load(Ordering::Relaxed))
    }
    fn write_at(&self, buf: &[u8], _off: u64) -> VfsResult<usize> {
        self.term
            .replica_write(buf, self.nonblocking.load(Ordering::Relaxed))
    }
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.term.stat(true))
    }
    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.term.replica_ready.fd.as_raw_fd())
    }
    fn is_tty(&self) -> bool {
        true
    }
    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }
    fn terminal(&self) -> Option<TerminalEnd<'_>> {
        Some(TerminalEnd::Replica(&self.term))
    }
}

/// /dev/pts: one node per live terminal, plus ptmx.
pub struct PtsDir {
    ino: u64,
    ptmx: Arc<PtmxNode>,
}

impl PtsDir {
    pub fn new() -> Arc<PtsDir> {
        Arc::new(PtsDir {
            ino: next_ino(),
            ptmx: Arc::new(PtmxNode {
                ino: next_ino(),
                mode: 0o000,
            }),
        })
    }
}

fn live_terminals() -> Vec<Arc<Terminal>> {
    registry().values().filter_map(|w| w.upgrade()).collect()
}

impl Inode for PtsDir {
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(synthetic_stat(self.ino, libc::S_IFDIR | 0o755, 0))
    }
    fn file_type(&self) -> FileType {
        FileType::Directory
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn lookup(&self, name: &[u8]) -> VfsResult<Arc<dyn Inode>> {
        if name == b"ptmx" {
            return Ok(self.ptmx.clone());
        }
        let index: u32 = std::str::from_utf8(name)
            .ok()
            .filter(|s| !s.starts_with('0') || s.len() == 1)
            .and_then(|s| s.parse().ok())
            .ok_or(Errno::ENOENT)?;
        let term = registry()
            .get(&index)
            .and_then(|w| w.upgrade())
            .ok_or(Errno::ENOENT)?;
        Ok(Arc::new(PtsNode { term }))
    }
    fn readdir(&self) -> VfsResult<Vec<DirEntry>> {
        let mut out = vec![DirEntry {
            name: b"ptmx".to_vec(),
            ino: self.ptmx.ino,
            ftype: FileType::CharDev,
        }];
        for t in live_terminals() {
            out.push(DirEntry {
                name: t.index.to_string().into_bytes(),
                ino: t.ino,
                ftype: FileType::CharDev,
            });
        }
        Ok(out)
    }
    fn open(&self, _flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        Ok(Arc::new(super::simple::DirFile { stat: self.stat()? }))
    }
}

/// /dev/pts/N.
struct PtsNode {
    term: Arc<Terminal>,
}

impl Inode for PtsNode {
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.term.stat(true))
    }
    fn file_type(&self) -> FileType {
        FileType::CharDev
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn open(&self, flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        PtyReplica::open(self.term.clone(), flags)
    }
    fn set_attr(&self, _attr: &crate::vfs::SetAttr) -> VfsResult<()> {
        // grantpt's chown/chmod: the node's owner follows its opener.
        Ok(())
    }
}

/// /dev/ptmx (and /dev/pts/ptmx): each open makes a new terminal.
pub struct PtmxNode {
    ino: u64,
    mode: u32,
}

impl PtmxNode {
    pub fn new() -> Arc<PtmxNode> {
        Arc::new(PtmxNode {
            ino: next_ino(),
            mode: 0o666,
        })
    }
}

impl Inode for PtmxNode {
    fn stat(&self) -> VfsResult<FileStat> {
        let mut st = synthetic_stat(self.ino, libc::S_IFCHR | self.mode, 0);
        st.rdev = libc::makedev(5, 2);
        Ok(st)
    }
    fn file_type(&self) -> FileType {
        FileType::CharDev
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn open(&self, flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        PtyMaster::open(flags)
    }
}

/// Opens /dev/tty: the caller's controlling terminal, or ENXIO.
pub fn open_controlling(flags: i32) -> VfsResult<Arc<dyn FileOps>> {
    let (_, _, sid) = caller_ids().ok_or(Errno::ENXIO)?;
    let term = controlling_terminal(sid).ok_or(Errno::ENXIO)?;
    PtyReplica::open(term, flags | libc::O_NOCTTY)
}
