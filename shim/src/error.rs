//! The shim's errors, and how each reaches containerd: as a ttrpc status
//! whose code containerd turns back into its errdefs (NotFound,
//! AlreadyExists, FailedPrecondition, ...).

use containerd_shim::protos::ttrpc::{self, Code};

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("container {0} not found")]
    NoContainer(String),
    #[error("process {exec_id} of container {id} not found")]
    NoProcess { id: String, exec_id: String },
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("process already finished")]
    ProcessFinished,
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} is not supported by rvisor")]
    Unsupported(&'static str),
    // runc's shim words it so; clients (kubelet, scripts) match on it.
    #[error("OCI runtime {what} failed: {message}")]
    Runtime { what: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl ShimError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ShimError {
        let what = what.into();
        move |source| ShimError::Io { what, source }
    }

    fn code(&self) -> Code {
        match self {
            ShimError::NoContainer(_) | ShimError::NoProcess { .. } => Code::NOT_FOUND,
            // containerd's runc shim answers a kill of an exited process
            // with NotFound, which `ctr task kill` and the CRI expect.
            ShimError::ProcessFinished => Code::NOT_FOUND,
            ShimError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            ShimError::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            ShimError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            ShimError::Unsupported(_) => Code::UNIMPLEMENTED,
            ShimError::Runtime { .. } | ShimError::Io { .. } => Code::UNKNOWN,
        }
    }
}

impl From<ShimError> for ttrpc::Error {
    fn from(e: ShimError) -> ttrpc::Error {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}
