//! The runtime options containerd passes at Create, as runsc's shim reads
//! them: containerd's CRI (and `ctr run --runtime-config-path`) sends
//! `runtimeoptions.v1.Options { type_url, config_path }`, and the TOML file
//! at `config_path` says how to run rvisor:
//!
//! ```toml
//! binary_name = "/usr/local/bin/rvisor"   # default: beside the shim
//! root = "/run/containerd/rvisor"         # default; the namespace is appended
//!
//! [rvisor_config]                         # global flags of every rvisor command
//! platform = "ptrace"
//! overlay = "self"
//! debug = "true"
//! debug-log = "/var/log/rvisor/"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use serde::{Deserialize, Serialize};

use crate::error::ShimError;

/// The runtime's TOML config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub binary_name: Option<PathBuf>,
    pub root: Option<PathBuf>,
    #[serde(default)]
    pub rvisor_config: BTreeMap<String, toml::Value>,
}

/// What a container's rvisor commands are run with; kept in the bundle so
/// that `shim delete` (after a crash) cleans up with the same settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuntimeSettings {
    pub binary: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub global_flags: Vec<String>,
}

pub const SETTINGS_FILE: &str = "rvisor-shim.json";

/// Reads one length-delimited field of a protobuf message (all fields of
/// runtimeoptions.v1.Options are strings).
fn proto_string_fields(mut b: &[u8]) -> Result<BTreeMap<u64, String>, ShimError> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let bad = || ShimError::InvalidArgument("malformed runtime options".into());
    let mut fields = BTreeMap::new();
    while !b.is_empty() {
        let key = varint(&mut b).ok_or_else(bad)?;
        match key & 7 {
            0 => {
                varint(&mut b).ok_or_else(bad)?;
            }
            2 => {
                let len = varint(&mut b).ok_or_else(bad)? as usize;
                if len > b.len() {
                    return Err(bad());
                }
                let (s, rest) = b.split_at(len);
                b = rest;
                fields.insert(key >> 3, String::from_utf8_lossy(s).into_owned());
            }
            _ => return Err(bad()),
        }
    }
    Ok(fields)
}

/// The config file path in containerd's options, if any.
pub fn config_path(options: Option<&Any>) -> Result<Option<PathBuf>, ShimError> {
    let Some(any) = options else { return Ok(None) };
    if !any.type_url.ends_with("runtimeoptions.v1.Options") {
        // runc's options (BinaryName, Root, ...) do not apply to rvisor.
        log::warn!("ignoring runtime options of type {}", any.type_url);
        return Ok(None);
    }
    let fields = proto_string_fields(&any.value)?;
    Ok(fields.get(&2).filter(|p| !p.is_empty()).map(PathBuf::from))
}

impl RuntimeSettings {
    pub fn from_config_file(path: &Path) -> Result<RuntimeSettings, ShimError> {
        let text = std::fs::read_to_string(path)
            .map_err(ShimError::io(format!("reading {}", path.display())))?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| {
            ShimError::InvalidArgument(format!("runtime config {}: {e}", path.display()))
        })?;
        let mut global_flags = Vec::new();
        for (key, value) in &file.rvisor_config {
            let value = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Integer(i) => i.to_string(),
                other => {
                    return Err(ShimError::InvalidArgument(format!(
                        "runtime config {}: {key} must be a string, not {other}",
                        path.display()
                    )))
                }
            };
            // Boolean flags take no value: "true" sets them, "false" leaves
            // them off.
            match value.as_str() {
                "true" => global_flags.push(format!("--{key}")),
                "false" => {}
                v => global_flags.push(format!("--{key}={v}")),
            }
        }
        Ok(RuntimeSettings {
            binary: file.binary_name,
            root: file.root,
            global_flags,
        })
    }

    pub fn save(&self, bundle: &Path) -> Result<(), ShimError> {
        let json = serde_json::to_vec(self)
            .map_err(|e| ShimError::InvalidArgument(format!("encoding runtime settings: {e}")))?;
        std::fs::write(bundle.join(SETTINGS_FILE), json)
            .map_err(ShimError::io("saving the runtime settings"))
    }

    pub fn load(bundle: &Path) -> RuntimeSettings {
        std::fs::read(bundle.join(SETTINGS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_containerds_runtimeoptions() {
        // type_url = "x", config_path = "/etc/rvisor.toml"
        let mut value = vec![0x0a, 1, b'x', 0x12, 16];
        value.extend_from_slice(b"/etc/rvisor.toml");
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value,
            ..Default::default()
        };
        assert_eq!(
            config_path(Some(&any)).unwrap(),
            Some(PathBuf::from("/etc/rvisor.toml"))
        );
        let truncated = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![0x12, 40, b'/'],
            ..Default::default()
        };
        assert!(config_path(Some(&truncated)).is_err());
    }

    #[test]
    fn config_keys_become_global_flags() {
        let dir = std::env::temp_dir().join(format!("rvisor-shim-opts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rvisor.toml");
        std::fs::write(
            &path,
            "root = \"/run/x\"\n[rvisor_config]\nplatform = \"notif\"\ndebug = true\nstrace = \"false\"\n",
        )
        .unwrap();
        let s = RuntimeSettings::from_config_file(&path).unwrap();
        assert_eq!(s.root, Some(PathBuf::from("/run/x")));
        assert_eq!(s.global_flags, vec!["--debug", "--platform=notif"]);
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(RuntimeSettings::from_config_file(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
