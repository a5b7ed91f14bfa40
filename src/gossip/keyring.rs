//! Cluster-wide keyring operations (Consul's `/v1/operator/keyring`, serf's key manager):
//! the per-node request and answer, the aggregated [`KeyringResponse`], and the keyring
//! file.
//!
//! The member running an operation sends it to every alive member (itself included) over
//! the TCP channel and counts the answers: `NumNodes`, `Keys{key: count}`,
//! `PrimaryKeys{key: count}` and per-node error messages, with serf's texts. The keyring
//! file uses the format of Consul's `serf/local.keyring`: a JSON array of base64 keys,
//! primary first.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::crypto::Keyring;

/// One keyring operation, as sent to each member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyOp {
    List,
    Install(Vec<u8>),
    Use(Vec<u8>),
    Remove(Vec<u8>),
}

/// One member's answer to a [`KeyOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeKeyResponse {
    pub result: bool,
    pub message: String,
    pub keys: Vec<String>,
    pub primary_key: String,
}

/// Answers of the whole pool, shaped like Consul's `KeyringResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyringResponse {
    /// Node name → error message, for the members that failed.
    pub messages: BTreeMap<String, String>,
    /// base64 key → number of members that have it installed (list only).
    pub keys: BTreeMap<String, usize>,
    /// base64 key → number of members using it as primary (list only).
    pub primary_keys: BTreeMap<String, usize>,
    /// Members asked.
    pub num_nodes: usize,
    /// Members that answered.
    pub num_resp: usize,
    /// Members that answered with an error.
    pub num_err: usize,
}

impl KeyringResponse {
    /// Counts per-member answers; `Err` means the member could not be reached.
    pub fn aggregate(answers: Vec<(String, Result<NodeKeyResponse, String>)>) -> KeyringResponse {
        let mut out = KeyringResponse {
            num_nodes: answers.len(),
            ..KeyringResponse::default()
        };
        for (node, answer) in answers {
            let Ok(answer) = answer else {
                continue; // no answer: counted by num_nodes - num_resp, as a serf timeout is
            };
            out.num_resp += 1;
            if !answer.result {
                out.num_err += 1;
                out.messages.insert(node, answer.message);
            }
            for k in answer.keys {
                *out.keys.entry(k).or_default() += 1;
            }
            if !answer.primary_key.is_empty() {
                *out.primary_keys.entry(answer.primary_key).or_default() += 1;
            }
        }
        out
    }

    /// serf's verdict on the pool's answers: `None` when every member succeeded.
    pub fn error(&self) -> Option<String> {
        if self.num_err != 0 {
            Some(format!(
                "{}/{} nodes reported failure",
                self.num_err, self.num_nodes
            ))
        } else if self.num_resp != self.num_nodes {
            Some(format!(
                "{}/{} nodes reported success",
                self.num_resp, self.num_nodes
            ))
        } else {
            None
        }
    }
}

/// Decodes a base64 key given by an operator and checks its size.
pub fn decode_key(key: &str) -> Result<Vec<u8>, String> {
    let raw = B64
        .decode(key.trim())
        .map_err(|e| format!("Invalid key: {e}"))?;
    super::crypto::validate_key(&raw)?;
    Ok(raw)
}

pub fn encode_key(key: &[u8]) -> String {
    B64.encode(key)
}

/// Runs one operation against this member's keyring and persists the result.
pub fn apply_op(ring: &mut Keyring, op: &KeyOp, file: Option<&Path>) -> NodeKeyResponse {
    let mut resp = NodeKeyResponse {
        result: false,
        message: String::new(),
        keys: Vec::new(),
        primary_key: String::new(),
    };
    if !ring.enabled() {
        resp.message = match op {
            KeyOp::List => "Keyring is empty (encryption not enabled)",
            _ => "No keyring to modify (encryption not enabled)",
        }
        .to_string();
        return resp;
    }
    let outcome = match op {
        KeyOp::List => {
            resp.keys = ring.keys().iter().map(|k| encode_key(k)).collect();
            resp.primary_key = ring.primary().map(encode_key).unwrap_or_default();
            Ok(())
        }
        KeyOp::Install(k) => ring.add(k),
        KeyOp::Use(k) => ring.use_key(k),
        KeyOp::Remove(k) => ring.remove(k),
    };
    if let Err(e) = outcome {
        tracing::error!(error = %e, "gossip: keyring operation failed");
        resp.message = e;
        return resp;
    }
    if !matches!(op, KeyOp::List)
        && let Some(path) = file
        && let Err(e) = write_file(path, ring)
    {
        resp.message = format!("Failed to write keyring file: {e}");
        return resp;
    }
    resp.result = true;
    resp
}

/// Reads a keyring file; `Ok(None)` when it does not exist.
pub fn read_file(path: &Path) -> anyhow::Result<Option<Keyring>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("gossip: cannot read keyring file {}: {e}", path.display()),
    };
    let encoded: Vec<String> = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "gossip: keyring file {} is not a JSON array of base64 keys: {e}",
            path.display()
        )
    })?;
    let keys = encoded
        .iter()
        .map(|k| decode_key(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("gossip: keyring file {}: {e}", path.display()))?;
    if keys.is_empty() {
        anyhow::bail!("gossip: keyring file {} holds no keys", path.display());
    }
    Ok(Some(Keyring::new(keys).map_err(anyhow::Error::msg)?))
}

/// Writes the keyring atomically (temp file + rename), readable by the owner only.
pub fn write_file(path: &Path, ring: &Keyring) -> std::io::Result<()> {
    let encoded: Vec<String> = ring.keys().iter().map(|k| encode_key(k)).collect();
    let json = serde_json::to_vec(&encoded).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_counts_keys_and_errors_like_serf() {
        let ok = |keys: &[&str], primary: &str| NodeKeyResponse {
            result: true,
            message: String::new(),
            keys: keys.iter().map(|s| s.to_string()).collect(),
            primary_key: primary.to_string(),
        };
        let r = KeyringResponse::aggregate(vec![
            ("a".into(), Ok(ok(&["k1", "k2"], "k1"))),
            ("b".into(), Ok(ok(&["k1"], "k1"))),
            ("c".into(), Err("timeout".into())),
        ]);
        assert_eq!(r.num_nodes, 3);
        assert_eq!(r.num_resp, 2);
        assert_eq!(r.keys["k1"], 2);
        assert_eq!(r.keys["k2"], 1);
        assert_eq!(r.primary_keys["k1"], 2);
        assert_eq!(r.error().unwrap(), "2/3 nodes reported success");
    }

    #[test]
    fn keyring_file_round_trip_and_disabled_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serf/local.keyring");
        assert!(read_file(&path).unwrap().is_none());
        let mut ring = Keyring::new(vec![vec![3u8; 32]]).unwrap();
        let resp = apply_op(&mut ring, &KeyOp::Install(vec![4u8; 16]), Some(&path));
        assert!(resp.result, "{}", resp.message);
        let back = read_file(&path).unwrap().unwrap();
        assert_eq!(back, ring);
        let mut none = Keyring::default();
        let resp = apply_op(&mut none, &KeyOp::Install(vec![4u8; 16]), None);
        assert_eq!(
            resp.message,
            "No keyring to modify (encryption not enabled)"
        );
        assert_eq!(
            decode_key("c2hvcnQ=").unwrap_err(),
            "key size must be 16, 24 or 32 bytes"
        );
    }
}
