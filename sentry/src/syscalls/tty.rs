//! ioctl(2) on the sandbox's pseudo-terminals (/dev/ptmx, /dev/pts/N):
//! termios, window size, job control (controlling terminal, foreground
//! process group) and the pty requests behind posix_openpt, grantpt,
//! unlockpt and ptsname. The line discipline is in `fsimpl/devpts.rs`.

use std::sync::Arc;

use nix::errno::Errno;

use super::file::install_fd;
use super::SysResult;
use crate::fsimpl::devpts::{
    PtyReplica, Terminal, TerminalEnd, Termios, TERMIOS_SIZE, TERMIO_SIZE,
};
use crate::kernel::task::Task;
use crate::kernel::{kernel, lock};
use crate::vfs::OpenFile;

const TCGETS: u64 = 0x5401;
const TCSETS: u64 = 0x5402;
const TCSETSW: u64 = 0x5403;
const TCSETSF: u64 = 0x5404;
const TCGETA: u64 = 0x5405;
const TCSETA: u64 = 0x5406;
const TCSETAW: u64 = 0x5407;
const TCSETAF: u64 = 0x5408;
const TCSBRK: u64 = 0x5409;
const TCXONC: u64 = 0x540a;
const TCFLSH: u64 = 0x540b;
const TIOCEXCL: u64 = 0x540c;
const TIOCNXCL: u64 = 0x540d;
const TIOCSCTTY: u64 = 0x540e;
const TIOCGPGRP: u64 = 0x540f;
const TIOCSPGRP: u64 = 0x5410;
const TIOCOUTQ: u64 = 0x5411;
const TIOCSTI: u64 = 0x5412;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCSWINSZ: u64 = 0x5414;
const FIONREAD: u64 = 0x541b;
const TIOCNOTTY: u64 = 0x5422;
const TIOCSETD: u64 = 0x5423;
const TIOCGETD: u64 = 0x5424;
const TCSBRKP: u64 = 0x5425;
const TIOCGSID: u64 = 0x5429;
const TCGETS2: u64 = 0x802c_542a;
const TCSETS2: u64 = 0x402c_542b;
const TCSETSW2: u64 = 0x402c_542c;
const TCSETSF2: u64 = 0x402c_542d;
const TIOCGPTN: u64 = 0x8004_5430;
const TIOCSPTLCK: u64 = 0x4004_5431;
const TIOCGDEV: u64 = 0x8004_5432;
const TIOCGPTLCK: u64 = 0x8004_5439;
const TIOCGPTPEER: u64 = 0x5441;

/// struct termios2: termios plus input and output speeds.
const TERMIOS2_SIZE: usize = TERMIOS_SIZE + 8;
const B38400_SPEED: u32 = 38400;

/// Handles a terminal ioctl on one end of a pty.
pub fn ioctl(t: &mut Task, end: TerminalEnd<'_>, cmd: u64, arg: u64) -> SysResult {
    let (term, master) = match end {
        TerminalEnd::Master(term) => (term.clone(), true),
        TerminalEnd::Replica(term) => (term.clone(), false),
    };
    match cmd {
        TCGETS => {
            t.write_bytes(arg, &term.termios().to_bytes())?;
            Ok(0)
        }
        TCGETS2 => {
            let mut b = term.termios().to_bytes().to_vec();
            b.extend_from_slice(&B38400_SPEED.to_le_bytes());
            b.extend_from_slice(&B38400_SPEED.to_le_bytes());
            t.write_bytes(arg, &b)?;
            Ok(0)
        }
        TCSETS | TCSETSW | TCSETSF | TCSETS2 | TCSETSW2 | TCSETSF2 => {
            let size = if cmd > 0xffff {
                TERMIOS2_SIZE
            } else {
                TERMIOS_SIZE
            };
            let bytes = t.read_bytes(arg, size)?;
            let tio = Termios::from_bytes(&bytes).ok_or(Errno::EFAULT)?;
            term.set_termios(tio, matches!(cmd, TCSETSF | TCSETSF2));
            Ok(0)
        }
        // The System V struct termio, which Linux still takes on x86-64.
        TCGETA => {
            t.write_bytes(arg, &term.termios().to_termio_bytes())?;
            Ok(0)
        }
        TCSETA | TCSETAW | TCSETAF => {
            let bytes = t.read_bytes(arg, TERMIO_SIZE)?;
            let tio = term.termios().with_termio(&bytes).ok_or(Errno::EFAULT)?;
            term.set_termios(tio, cmd == TCSETAF);
            Ok(0)
        }
        TCSBRK | TCSBRKP | TCXONC | TIOCEXCL | TIOCNXCL => Ok(0),
        TCFLSH => {
            term.flush(arg)?;
            Ok(0)
        }
        TIOCGWINSZ => {
            t.write_obj(arg, &term.winsize())?;
            Ok(0)
        }
        TIOCSWINSZ => {
            let ws: libc::winsize = t.read_obj(arg)?;
            term.set_winsize(ws);
            Ok(0)
        }
        FIONREAD => {
            let n = if master {
                term.output_len()
            } else {
                term.input_len()
            };
            t.write_obj(arg, &(n as i32))?;
            Ok(0)
        }
        TIOCOUTQ => {
            let n = if master { 0 } else { term.output_len() };
            t.write_obj(arg, &(n as i32))?;
            Ok(0)
        }
        TIOCSCTTY => {
            let privileged = lock(&t.proc.creds).has_cap(crate::kernel::cap::SYS_ADMIN);
            term.set_controlling(arg == 1, privileged)?;
            Ok(0)
        }
        TIOCNOTTY => {
            term.release_controlling()?;
            Ok(0)
        }
        TIOCGPGRP => {
            if !master && !is_my_terminal(t, &term) {
                return Err(Errno::ENOTTY);
            }
            // No foreground group yet: Linux reports a pid no process has.
            let pg = term
                .foreground()
                .map_or(i32::MAX >> 1, |g| t.group_to_user(g));
            t.write_obj(arg, &pg)?;
            Ok(0)
        }
        TIOCSPGRP => {
            if master {
                return Err(Errno::ENOTTY);
            }
            let pg: i32 = t.read_obj(arg)?;
            let pg = if pg > 0 { t.group_from_user(pg) } else { pg };
            term.set_foreground(pg)?;
            Ok(0)
        }
        TIOCGSID => {
            if !master && !is_my_terminal(t, &term) {
                return Err(Errno::ENOTTY);
            }
            let sid = term.session().ok_or(Errno::ENOTTY)?;
            t.write_obj(arg, &t.group_to_user(sid))?;
            Ok(0)
        }
        TIOCGETD => {
            t.write_obj(arg, &0i32)?;
            Ok(0)
        }
        TIOCSETD => {
            let ldisc: i32 = t.read_obj(arg)?;
            if ldisc == 0 {
                Ok(0)
            } else {
                Err(Errno::EINVAL)
            }
        }
        // Faking input needs CAP_SYS_ADMIN since Linux 6.2's default.
        TIOCSTI => Err(Errno::EIO),
        TIOCGPTN if master => {
            t.write_obj(arg, &term.index)?;
            Ok(0)
        }
        TIOCSPTLCK if master => {
            let lock_it: i32 = t.read_obj(arg)?;
            term.set_locked(lock_it != 0);
            Ok(0)
        }
        TIOCGPTLCK if master => {
            // Only a fresh terminal is locked; report what unlockpt left.
            Err(Errno::ENOTTY)
        }
        TIOCGDEV => {
            let dev: u32 = if master {
                (5 << 8) | 2
            } else {
                (136 << 8) | term.index
            };
            t.write_obj(arg, &dev)?;
            Ok(0)
        }
        TIOCGPTPEER if master => {
            let flags = arg as i32;
            if flags & !(libc::O_ACCMODE | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC) != 0
            {
                return Err(Errno::EINVAL);
            }
            let ops = PtyReplica::open(term.clone(), flags)?;
            let display = format!("/dev/pts/{}", term.index).into_bytes();
            let f = OpenFile::with_display(ops, display, flags);
            install_fd(t, f, flags & libc::O_CLOEXEC != 0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// Whether `term` is the calling process's controlling terminal.
fn is_my_terminal(t: &Task, term: &Arc<Terminal>) -> bool {
    let sid = lock(&kernel().tree).procs.get(&t.pid()).map(|e| e.sid);
    sid.is_some() && term.session() == sid
}
