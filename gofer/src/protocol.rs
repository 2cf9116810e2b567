//! The wire protocol between the sentry (client) and the gofer (server).
//!
//! Every request and every reply is exactly one `SOCK_SEQPACKET` message
//! holding one [postcard]-encoded [`Request`] or [`Response`]. Message
//! boundaries are kept by the socket, so there is no length prefix. A reply
//! to [`Request::Open`] carries the opened host fd as `SCM_RIGHTS` ancillary
//! data on the same message.
//!
//! Decoding is total: any byte string yields either a value or a
//! [`CodecError`], never a panic, because the gofer must survive a
//! compromised sentry sending it anything.

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to [`Request`] or [`Response`].
pub const PROTOCOL_VERSION: u32 = 3;

/// Maximum size of one message on the socket (both directions).
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Names a node the gofer holds an `O_PATH` fd for.
///
/// Handles are never reused within one connection, so a stale handle can
/// never silently alias a different file.
pub type Handle = u64;

/// The handle of the root directory, valid from the start of a connection.
pub const ROOT_HANDLE: Handle = 0;

/// The host `struct stat` of a node, field for field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime_sec: i64,
    pub atime_nsec: i64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
}

impl FileStat {
    /// Converts a host `stat`. The field widths of `libc::stat` differ
    /// between architectures (e.g. `st_nlink` is `u32` on aarch64), hence the
    /// `From` conversions that are no-ops on some targets.
    #[allow(clippy::useless_conversion)]
    pub fn from_host(st: &libc::stat) -> FileStat {
        FileStat {
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            mode: u32::from(st.st_mode),
            nlink: u64::from(st.st_nlink),
            uid: u32::from(st.st_uid),
            gid: u32::from(st.st_gid),
            rdev: u64::from(st.st_rdev),
            size: i64::from(st.st_size),
            blksize: i64::from(st.st_blksize),
            blocks: i64::from(st.st_blocks),
            atime_sec: i64::from(st.st_atime),
            atime_nsec: i64::from(st.st_atime_nsec),
            mtime_sec: i64::from(st.st_mtime),
            mtime_nsec: i64::from(st.st_mtime_nsec),
            ctime_sec: i64::from(st.st_ctime),
            ctime_nsec: i64::from(st.st_ctime_nsec),
        }
    }

    /// The `S_IFMT` bits of [`FileStat::mode`].
    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    /// Whether the node is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }

    /// Whether the node is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }

    /// Whether the node is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }
}

/// One directory entry, as `getdents64` reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Dirent {
    pub ino: u64,
    /// One of the `DT_*` constants (`DT_UNKNOWN` when the filesystem does not
    /// say).
    pub d_type: u8,
    pub name: Vec<u8>,
}

/// The `DT_*` constant of a directory entry's type, as [`Dirent::d_type`]
/// holds it.
pub fn dirent_type(t: Option<nix::dir::Type>) -> u8 {
    use nix::dir::Type;
    match t {
        Some(Type::Fifo) => libc::DT_FIFO,
        Some(Type::CharacterDevice) => libc::DT_CHR,
        Some(Type::Directory) => libc::DT_DIR,
        Some(Type::BlockDevice) => libc::DT_BLK,
        Some(Type::File) => libc::DT_REG,
        Some(Type::Symlink) => libc::DT_LNK,
        Some(Type::Socket) => libc::DT_SOCK,
        None => libc::DT_UNKNOWN,
    }
}

/// A request from the sentry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Handshake; answered by [`Response::Version`] when the versions match.
    Version { version: u32 },
    /// Looks up one path component `name` in directory `dir`, without
    /// following a symlink. Answered by [`Response::Node`].
    Walk { dir: Handle, name: Vec<u8> },
    /// As `Walk`, and the reply carries the node's own `O_PATH` fd, then,
    /// when the node is a regular file, a read-only open fd of it
    /// (`O_RDONLY|O_NONBLOCK`). With them the sentry stats the node, and
    /// revalidates a directory's children with single-component
    /// `fstatat(dir_fd, name, AT_SYMLINK_NOFOLLOW)`, without asking again
    /// (gVisor's directfs). Safe for directories because the gofer
    /// pivot_roots into the tree it serves: `..` from any fd it donates
    /// stops at that tree's root.
    WalkOpen { dir: Handle, name: Vec<u8> },
    /// Answered by [`Response::Stat`].
    Stat { node: Handle },
    /// The node's own `O_PATH` fd (as `WalkOpen` brings for the nodes it
    /// walks to): answered by [`Response::Opened`] with the fd attached.
    /// How the sentry gets its mount's root directory fd.
    NodeFd { node: Handle },
    /// Opens the node with `open(2)` flags; answered by [`Response::Opened`]
    /// with the fd attached.
    Open { node: Handle, flags: i32 },
    /// Reads the target of a symlink node; answered by [`Response::Link`].
    ReadLink { node: Handle },
    /// Reads directory entries starting at entry index `offset` (as returned
    /// in a previous `next_offset`, or 0); answered by [`Response::Dirents`].
    Getdents { node: Handle, offset: u64 },
    /// Forgets a handle; answered by [`Response::Ok`].
    Close { node: Handle },
    /// Creates regular file `name` in `dir` exclusively (`O_CREAT|O_EXCL`)
    /// and opens it with `flags` (an access mode plus `O_APPEND`,
    /// `O_NONBLOCK`...). Answered by [`Response::Node`] with the open fd
    /// attached.
    Create {
        dir: Handle,
        name: Vec<u8>,
        flags: i32,
        mode: u32,
        owner: Owner,
    },
    /// Creates a nameless regular file in `dir` (`O_TMPFILE`) and opens it
    /// with `flags` (an access mode, plus `O_EXCL` when it must never be
    /// linked). Answered by [`Response::Node`] with the open fd attached;
    /// `Link` can name it later.
    CreateTmpfile {
        dir: Handle,
        flags: i32,
        mode: u32,
        owner: Owner,
    },
    /// Answered by [`Response::Node`].
    Mkdir {
        dir: Handle,
        name: Vec<u8>,
        mode: u32,
        owner: Owner,
    },
    /// Makes a FIFO, socket or empty regular file (`mode` carries the
    /// type; device nodes are refused). Answered by [`Response::Node`].
    Mknod {
        dir: Handle,
        name: Vec<u8>,
        mode: u32,
        owner: Owner,
    },
    /// Answered by [`Response::Node`].
    Symlink {
        dir: Handle,
        name: Vec<u8>,
        target: Vec<u8>,
        owner: Owner,
    },
    /// Makes `name` in `dir` a hard link to node `target`. Answered by
    /// [`Response::Node`].
    Link {
        dir: Handle,
        name: Vec<u8>,
        target: Handle,
    },
    /// Removes `name` from `dir`: a directory when `remove_dir` (rmdir),
    /// anything else otherwise (unlink). Answered by [`Response::Ok`].
    Unlink {
        dir: Handle,
        name: Vec<u8>,
        remove_dir: bool,
    },
    /// `renameat2` with `flags` of `RENAME_NOREPLACE` and
    /// `RENAME_EXCHANGE` only. Answered by [`Response::Ok`].
    Rename {
        old_dir: Handle,
        old_name: Vec<u8>,
        new_dir: Handle,
        new_name: Vec<u8>,
        flags: u32,
    },
    /// chmod, chown, truncate and utimensat in one; answered by
    /// [`Response::Stat`] with the attributes afterwards.
    SetStat { node: Handle, attr: SetStat },
    /// Answered by [`Response::StatFs`].
    StatFs { node: Handle },
    /// Reads one extended attribute; answered by [`Response::Xattr`].
    GetXattr { node: Handle, name: Vec<u8> },
    /// `flags`: `XATTR_CREATE` / `XATTR_REPLACE`. Answered by
    /// [`Response::Ok`].
    SetXattr {
        node: Handle,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: i32,
    },
    /// Answered by [`Response::XattrNames`].
    ListXattr { node: Handle },
    /// Answered by [`Response::Ok`].
    RemoveXattr { node: Handle, name: Vec<u8> },
}

/// One message from the sentry: handles to forget first, then a request.
///
/// Closes ride along with the next request instead of costing a round trip
/// each: the sentry drops inodes all the time (every path walk makes some).
/// A handle in `close` that is unknown is ignored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RequestMessage {
    pub close: Vec<Handle>,
    pub request: Request,
}

impl From<Request> for RequestMessage {
    fn from(request: Request) -> RequestMessage {
        RequestMessage {
            close: Vec::new(),
            request,
        }
    }
}

/// Who owns a node the gofer creates (the sentry's emulated credentials,
/// after the set-group-ID directory rule).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Attribute changes; `None` leaves an attribute as it is. Times are
/// `(seconds, nanoseconds)` and may use `UTIME_NOW`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SetStat {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<(i64, i64)>,
    pub mtime: Option<(i64, i64)>,
}

/// The host `struct statfs` fields statfs(2) reports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FsStat {
    pub fs_type: i64,
    pub block_size: i64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
    pub name_max: i64,
    pub fragment_size: i64,
    pub flags: i64,
}

/// A reply from the gofer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Version {
        version: u32,
    },
    Node {
        handle: Handle,
        stat: FileStat,
    },
    Stat(FileStat),
    /// The fd travels as `SCM_RIGHTS` with this message.
    Opened,
    Link(Vec<u8>),
    Dirents {
        entries: Vec<Dirent>,
        /// `None` = end of directory.
        next_offset: Option<u64>,
    },
    Ok,
    StatFs(FsStat),
    Xattr(Vec<u8>),
    XattrNames(Vec<Vec<u8>>),
    /// The request failed with this host errno.
    Error {
        errno: i32,
    },
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encoding message: {0}")]
    Encode(#[source] postcard::Error),
    #[error("decoding message: {0}")]
    Decode(#[source] postcard::Error),
    #[error("message has {count} trailing bytes after a complete value")]
    TrailingBytes { count: usize },
    #[error("message of {len} bytes exceeds the limit of {MAX_MESSAGE}")]
    TooLarge { len: usize },
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = postcard::to_stdvec(value).map_err(CodecError::Encode)?;
    if bytes.len() > MAX_MESSAGE {
        return Err(CodecError::TooLarge { len: bytes.len() });
    }
    Ok(bytes)
}

/// Decodes exactly one value. Trailing bytes are an error rather than
/// ignored so that two peers can never disagree about what a message meant.
fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(CodecError::TooLarge { len: bytes.len() });
    }
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(CodecError::Decode)?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { count: rest.len() });
    }
    Ok(value)
}

/// Encodes a request into one message.
pub fn encode_request(msg: &RequestMessage) -> Result<Vec<u8>, CodecError> {
    encode(msg)
}

/// Decodes one message into a request. Never panics, whatever the bytes.
pub fn decode_request(bytes: &[u8]) -> Result<RequestMessage, CodecError> {
    decode(bytes)
}

/// Encodes a response into one message.
pub fn encode_response(resp: &Response) -> Result<Vec<u8>, CodecError> {
    encode(resp)
}

/// Decodes one message into a response. Never panics, whatever the bytes.
pub fn decode_response(bytes: &[u8]) -> Result<Response, CodecError> {
    decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let reqs = [
            Request::Version {
                version: PROTOCOL_VERSION,
            },
            Request::Walk {
                dir: 7,
                name: b"etc".to_vec(),
            },
            Request::Stat { node: u64::MAX },
            Request::NodeFd { node: 3 },
            Request::WalkOpen {
                dir: 2,
                name: b"passwd".to_vec(),
            },
            Request::Open {
                node: 1,
                flags: libc::O_RDONLY | libc::O_DIRECTORY,
            },
            Request::ReadLink { node: 3 },
            Request::Getdents {
                node: 0,
                offset: 4096,
            },
            Request::Close { node: 9 },
            Request::Create {
                dir: 1,
                name: b"new".to_vec(),
                flags: libc::O_RDWR | libc::O_APPEND,
                mode: 0o640,
                owner: Owner {
                    uid: 1000,
                    gid: 100,
                },
            },
            Request::CreateTmpfile {
                dir: 1,
                flags: libc::O_RDWR | libc::O_EXCL,
                mode: 0o600,
                owner: Owner { uid: 1, gid: 2 },
            },
            Request::Mkdir {
                dir: 1,
                name: b"d".to_vec(),
                mode: 0o2755,
                owner: Owner::default(),
            },
            Request::Mknod {
                dir: 1,
                name: b"fifo".to_vec(),
                mode: libc::S_IFIFO | 0o600,
                owner: Owner::default(),
            },
            Request::Symlink {
                dir: 1,
                name: b"l".to_vec(),
                target: b"../../etc/passwd".to_vec(),
                owner: Owner::default(),
            },
            Request::Link {
                dir: 1,
                name: b"h".to_vec(),
                target: 4,
            },
            Request::Unlink {
                dir: 1,
                name: b"h".to_vec(),
                remove_dir: true,
            },
            Request::Rename {
                old_dir: 1,
                old_name: b"a".to_vec(),
                new_dir: 2,
                new_name: b"b".to_vec(),
                flags: libc::RENAME_EXCHANGE,
            },
            Request::SetStat {
                node: 3,
                attr: SetStat {
                    mode: Some(0o4755),
                    size: Some(u64::MAX),
                    atime: Some((-1, libc::UTIME_NOW)),
                    ..Default::default()
                },
            },
            Request::StatFs { node: 0 },
            Request::GetXattr {
                node: 3,
                name: b"user.a".to_vec(),
            },
            Request::SetXattr {
                node: 3,
                name: b"user.a".to_vec(),
                value: vec![0, 1, 2],
                flags: libc::XATTR_CREATE,
            },
            Request::ListXattr { node: 3 },
            Request::RemoveXattr {
                node: 3,
                name: b"user.a".to_vec(),
            },
        ];
        for req in reqs {
            let msg = RequestMessage {
                close: vec![3, u64::MAX],
                request: req,
            };
            let bytes = encode_request(&msg).unwrap();
            assert_eq!(decode_request(&bytes).unwrap(), msg);
        }
    }

    #[test]
    fn responses_round_trip() {
        let resps = [
            Response::Version { version: 1 },
            Response::Node {
                handle: 5,
                stat: FileStat {
                    ino: 42,
                    mode: 0o100644,
                    ..Default::default()
                },
            },
            Response::Stat(FileStat {
                size: -1,
                ..Default::default()
            }),
            Response::Opened,
            Response::Link(b"/etc/passwd".to_vec()),
            Response::Dirents {
                entries: vec![Dirent {
                    ino: 1,
                    d_type: libc::DT_REG,
                    name: b"a".to_vec(),
                }],
                next_offset: Some(1),
            },
            Response::Ok,
            Response::StatFs(FsStat {
                fs_type: 0xef53,
                name_max: 255,
                ..Default::default()
            }),
            Response::Xattr(b"value".to_vec()),
            Response::XattrNames(vec![b"user.a".to_vec(), b"user.b".to_vec()]),
            Response::Error {
                errno: libc::ENOENT,
            },
        ];
        for resp in resps {
            let bytes = encode_response(&resp).unwrap();
            assert_eq!(decode_response(&bytes).unwrap(), resp);
        }
    }

    #[test]
    fn trailing_and_truncated_bytes_are_rejected() {
        let mut bytes = encode_request(
            &Request::Walk {
                dir: 0,
                name: b"name".to_vec(),
            }
            .into(),
        )
        .unwrap();
        assert!(decode_request(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(matches!(
            decode_request(&bytes),
            Err(CodecError::TrailingBytes { count: 1 })
        ));
        assert!(decode_request(&[]).is_err());
    }

    #[test]
    fn oversized_is_rejected() {
        let req = Request::Walk {
            dir: 0,
            name: vec![b'x'; MAX_MESSAGE],
        };
        assert!(matches!(
            encode_request(&req.into()),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_request(&vec![0u8; MAX_MESSAGE + 1]),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn decode_never_panics_on_noise() {
        // xorshift: deterministic noise without a rand dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }
        // A huge declared length must not allocate or panic.
        let _ = decode_request(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        let _ = decode_response(&[
            5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
    }
}
