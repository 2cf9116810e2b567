//! Handing host fds to a stub for file-backed mappings.
//!
//! A stub holds exactly one host fd, [`STUB_CHANNEL_FD`]: the receiving end
//! of a datagram socketpair the sentry creates at boot (every stub inherits
//! it across exec and fork). To map a file the sentry sends the file's host
//! fd over the pair and injects `recvmsg`, `mmap` and `close` into the stub,
//! so the fd exists in the stub only for the duration of one mapping. The
//! application itself can never use the channel: every one of its system
//! calls is trapped and emulated.
//!
//! One lock serialises all donations, so at most one datagram is in flight
//! and each carries a sequence number the receiver checks; a stale datagram
//! (from a stub that died mid-donation) is recognised and discarded.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// The fd number of the channel inside every stub.
pub const STUB_CHANNEL_FD: i32 = 4;

pub struct FdChannel {
    send: OwnedFd,
    recv: OwnedFd,
    /// Sequence number of the next donation; held across a whole donation.
    next: Mutex<u64>,
}

static CHANNEL: OnceLock<FdChannel> = OnceLock::new();

/// Creates the channel (once per sentry) and returns the end stubs inherit.
pub fn init() -> Result<RawFd, Errno> {
    if let Some(c) = CHANNEL.get() {
        return Ok(c.recv.as_raw_fd());
    }
    let (send, recv) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let _ = CHANNEL.set(FdChannel {
        send,
        recv,
        next: Mutex::new(1),
    });
    CHANNEL.get().map(|c| c.recv.as_raw_fd()).ok_or(Errno::EIO)
}

pub fn get() -> Option<&'static FdChannel> {
    CHANNEL.get()
}

impl FdChannel {
    /// Runs `f` with exclusive use of the channel, after queueing `fd` with a
    /// fresh sequence number that `f` passes to the stub's receive check.
    pub fn donate<T>(&self, fd: RawFd, f: impl FnOnce(u64) -> T) -> Result<T, Errno> {
        let mut next = self.next.lock().map_err(|_| Errno::EIO)?;
        let seq = *next;
        *next = next.wrapping_add(1);
        self.drain();
        let fds = [fd];
        let payload = seq.to_le_bytes();
        let iov = [std::io::IoSlice::new(&payload)];
        sendmsg::<()>(
            self.send.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let out = f(seq);
        // Whatever the stub did not take (it died, or the application
        // scribbled over the request) must not reach the next donation.
        self.drain();
        Ok(out)
    }

    /// Discards queued datagrams, closing the fds they carry.
    fn drain(&self) {
        loop {
            let mut byte = [0u8; 8];
            let mut iov = [std::io::IoSliceMut::new(&mut byte)];
            let mut cmsg = nix::cmsg_space!([RawFd; 4]);
            match recvmsg::<()>(
                self.recv.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(fds) = c {
                                for fd in fds {
                                    let _ = nix::unistd::close(fd);
                                }
                            }
                        }
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }
}
