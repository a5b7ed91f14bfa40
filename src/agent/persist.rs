//! The agent's own registrations on disk, so a restart keeps them: services and
//! checks registered through the API (and maintenance mode) under
//! `<data_dir>/services` and `<data_dir>/checks`, and the last status pushed to a
//! TTL check under `<data_dir>/checks/state` with the moment it expires.
//!
//! Definitions from config files are not kept (the files are read again). An agent
//! without a data directory (`-dev`) keeps nothing. One JSON file per entry, named
//! by the SHA-256 of its ID (IDs may hold `/`), written to a temporary file first
//! and renamed over the old one; a file that cannot be read back is logged and
//! skipped, never a reason not to start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::structs::{CheckDefinition, HealthCheck, NodeService};

const SERVICES_DIR: &str = "services";
const CHECKS_DIR: &str = "checks";
const CHECK_STATE_DIR: &str = "checks/state";
const TMP_SUFFIX: &str = ".tmp";

/// A service as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PersistedService {
    pub service: NodeService,
    /// The registration's ACL token.
    #[serde(default)]
    pub token: String,
    /// For a sidecar registered with its parent: the parent's ID.
    #[serde(default)]
    pub sidecar_of: Option<String>,
}

/// A check as kept on disk: its entry at registration and what to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PersistedCheck {
    pub check: HealthCheck,
    pub definition: CheckDefinition,
}

/// The status last pushed to a TTL check, valid until `Expires` (Unix seconds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct PersistedCheckState {
    #[serde(rename = "CheckID")]
    check_id: String,
    status: String,
    output: String,
    expires: u64,
}

/// Where the agent keeps its registrations (nowhere without a data directory).
#[derive(Debug, Default)]
pub struct Persistence {
    root: Option<PathBuf>,
}

fn file_name(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a
/// rename, so a reader sees the old file or the new one, never half of one. With
/// `durable`, the data and the rename reach the disk before this returns.
fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Persistence {
    /// Keeps registrations under `data_dir`; `None` keeps nothing.
    pub fn new(data_dir: Option<&Path>) -> Persistence {
        Persistence {
            root: data_dir.map(Path::to_path_buf),
        }
    }

    fn path(&self, dir: &str, id: &str) -> Option<PathBuf> {
        Some(self.root.as_ref()?.join(dir).join(file_name(id)))
    }

    fn save<T: Serialize>(
        &self,
        dir: &str,
        id: &str,
        value: &T,
        durable: bool,
    ) -> Result<(), String> {
        let Some(path) = self.path(dir, id) else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        write_atomic(&path, &bytes, durable)
            .map_err(|e| format!("failed writing {}: {e}", path.display()))
    }

    fn purge(&self, dir: &str, id: &str) -> Result<(), String> {
        let Some(path) = self.path(dir, id) else {
            return Ok(());
        };
        remove(&path).map_err(|e| format!("failed removing {}: {e}", path.display()))
    }

    pub fn save_service(&self, s: &PersistedService) -> Result<(), String> {
        self.save(SERVICES_DIR, &s.service.id, s, true)
            .map_err(|e| format!("failed persisting service {:?}: {e}", s.service.id))
    }

    pub fn purge_service(&self, id: &str) -> Result<(), String> {
        self.purge(SERVICES_DIR, id)
    }

    pub fn save_check(&self, c: &PersistedCheck) -> Result<(), String> {
        self.save(CHECKS_DIR, &c.check.check_id, c, true)
            .map_err(|e| format!("failed persisting check {:?}: {e}", c.check.check_id))
    }

    pub fn purge_check(&self, id: &str) -> Result<(), String> {
        self.purge(CHECKS_DIR, id)
    }

    pub fn purge_check_state(&self, id: &str) -> Result<(), String> {
        self.purge(CHECK_STATE_DIR, id)
    }

    /// Records a TTL check's status, valid for one more `ttl`. TTL updates can come
    /// every second, so (as Consul does) this one is renamed into place without an
    /// fsync: after a power loss a check comes back critical at worst.
    pub fn save_check_state(
        &self,
        id: &str,
        status: &str,
        output: &str,
        ttl: Duration,
    ) -> Result<(), String> {
        let state = PersistedCheckState {
            check_id: id.to_string(),
            status: status.to_string(),
            output: output.to_string(),
            expires: unix_now().saturating_add(ttl.as_secs()),
        };
        self.save(CHECK_STATE_DIR, id, &state, false)
            .map_err(|e| format!("failed persisting state for check {id:?}: {e}"))
    }

    /// A TTL check's last status and output, unless none was kept or it expired
    /// (an expired or unreadable one is removed).
    pub fn load_check_state(&self, id: &str) -> Option<(String, String)> {
        let path = self.path(CHECK_STATE_DIR, id)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(check = %id, error = %e, "failed restoring state for check");
                return None;
            }
        };
        let state = match serde_json::from_slice::<PersistedCheckState>(&bytes) {
            Ok(s) if s.check_id == id => s,
            Ok(_) => return None,
            Err(e) => {
                tracing::error!(check = %id, error = %e, "failed decoding check state");
                let _ = remove(&path);
                return None;
            }
        };
        if unix_now() >= state.expires {
            tracing::debug!(check = %id, "check state expired, not restoring");
            let _ = remove(&path);
            return None;
        }
        Some((state.status, state.output))
    }

    pub fn load_services(&self) -> Vec<PersistedService> {
        self.load_all(SERVICES_DIR, "service")
    }

    pub fn load_checks(&self) -> Vec<PersistedCheck> {
        self.load_all(CHECKS_DIR, "check")
    }

    /// Every readable entry of `dir`; leftover temporary files and files that do
    /// not decode are logged and skipped.
    fn load_all<T: DeserializeOwned>(&self, dir: &str, what: &str) -> Vec<T> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        let dir = root.join(dir);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "failed reading the {what} directory");
                return Vec::new();
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for path in paths {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(TMP_SUFFIX) {
                tracing::warn!(file = %name, "Ignoring temporary {what} file");
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<T>(&b).map_err(|e| e.to_string()))
            {
                Ok(v) => out.push(v),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "Failed decoding {what} file");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("concord-persist-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn service(id: &str) -> PersistedService {
        PersistedService {
            service: NodeService {
                id: id.into(),
                service: "web".into(),
                tags: vec!["a".into()],
                ..Default::default()
            },
            token: "tok".into(),
            sidecar_of: None,
        }
    }

    #[test]
    fn services_round_trip_and_purge() {
        let dir = scratch();
        let p = Persistence::new(Some(&dir));
        p.save_service(&service("a/b")).unwrap();
        p.save_service(&service("c")).unwrap();
        let mut got = p.load_services();
        got.sort_by(|x, y| x.service.id.cmp(&y.service.id));
        assert_eq!(got, vec![service("a/b"), service("c")]);
        p.purge_service("a/b").unwrap();
        p.purge_service("never-there").unwrap();
        assert_eq!(p.load_services(), vec![service("c")]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn checks_keep_their_definition() {
        let dir = scratch();
        let p = Persistence::new(Some(&dir));
        let c = PersistedCheck {
            check: HealthCheck {
                check_id: "ttl/1".into(),
                name: "t".into(),
                ..Default::default()
            },
            definition: CheckDefinition {
                name: "t".into(),
                ttl: Some(Duration::from_millis(1500)),
                interval: Some(Duration::from_nanos(3_600_000_000_001)),
                header: [("X".to_string(), vec!["y".to_string()])].into(),
                ..Default::default()
            },
        };
        p.save_check(&c).unwrap();
        assert_eq!(p.load_checks(), vec![c]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_and_temporary_files_are_skipped() {
        let dir = scratch();
        let p = Persistence::new(Some(&dir));
        p.save_service(&service("good")).unwrap();
        std::fs::write(dir.join(SERVICES_DIR).join("junk"), b"{not json").unwrap();
        std::fs::write(dir.join(SERVICES_DIR).join("x.tmp"), b"{}").unwrap();
        assert_eq!(p.load_services(), vec![service("good")]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ttl_state_is_restored_until_it_expires() {
        let dir = scratch();
        let p = Persistence::new(Some(&dir));
        p.save_check_state("t", "passing", "ok", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            p.load_check_state("t"),
            Some(("passing".into(), "ok".into()))
        );
        p.save_check_state("gone", "passing", "", Duration::ZERO)
            .unwrap();
        assert_eq!(p.load_check_state("gone"), None);
        assert!(!dir.join(CHECK_STATE_DIR).join(file_name("gone")).exists());
        std::fs::write(dir.join(CHECK_STATE_DIR).join(file_name("bad")), b"[").unwrap();
        assert_eq!(p.load_check_state("bad"), None);
        p.purge_check_state("t").unwrap();
        assert_eq!(p.load_check_state("t"), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn without_a_data_dir_nothing_is_kept() {
        let p = Persistence::new(None);
        p.save_service(&service("a")).unwrap();
        p.save_check_state("t", "passing", "", Duration::from_secs(60))
            .unwrap();
        assert!(p.load_services().is_empty());
        assert_eq!(p.load_check_state("t"), None);
    }
}
