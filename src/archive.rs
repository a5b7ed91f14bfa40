//! Consul's snapshot archive envelope: a gzipped tar of `meta.json`, `state.bin`
//! and `SHA256SUMS` (the hashes of the other two). `/v1/snapshot` writes and reads
//! it; `concord snapshot save|inspect` verify it on the client side.

use std::collections::BTreeMap;
use std::io::Read;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// The two payload files of an archive whose hashes were checked.
pub struct Archive {
    pub meta_json: Vec<u8>,
    pub state: Vec<u8>,
}

/// Packs `meta.json` and `state.bin` with their hashes.
pub fn write(meta_json: &[u8], state: &[u8]) -> std::io::Result<Vec<u8>> {
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        hex::encode(Sha256::digest(meta_json)),
        hex::encode(Sha256::digest(state))
    );
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, data) in [
        ("meta.json", meta_json),
        ("state.bin", state),
        ("SHA256SUMS", sums.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, data)?;
    }
    tar.into_inner()?.finish()
}

/// Unpacks an archive and checks every file listed in `SHA256SUMS`.
pub fn read(body: &[u8]) -> Result<Archive, String> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tar = tar::Archive::new(GzDecoder::new(body));
    let entries = tar
        .entries()
        .map_err(|e| format!("failed to read snapshot archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("failed to read snapshot archive: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        if !matches!(name.as_str(), "meta.json" | "state.bin" | "SHA256SUMS") {
            return Err(format!("unexpected file {name:?} in snapshot"));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
        files.insert(name, data);
    }
    let sums = String::from_utf8_lossy(
        files
            .get("SHA256SUMS")
            .ok_or("snapshot is missing SHA256SUMS")?,
    )
    .into_owned();
    for line in sums.lines() {
        let Some((sum, name)) = line.split_once("  ") else {
            continue;
        };
        let data = files
            .get(name)
            .ok_or_else(|| format!("snapshot is missing {name}"))?;
        if hex::encode(Sha256::digest(data)) != sum {
            return Err(format!("sha256 hash mismatch for {name:?}"));
        }
    }
    for name in ["meta.json", "state.bin"] {
        if !sums.lines().any(|l| l.ends_with(&format!("  {name}"))) {
            return Err(format!("file missing from SHA256SUMS: {name}"));
        }
    }
    Ok(Archive {
        meta_json: files
            .remove("meta.json")
            .ok_or("snapshot is missing meta.json")?,
        state: files
            .remove("state.bin")
            .ok_or("snapshot is missing state.bin")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn archives_round_trip_and_tampering_is_caught() {
        let state = b"CONCORD-STATE-1\nrest".to_vec();
        let a = write(b"{}", &state).unwrap();
        let back = read(&a).unwrap();
        assert_eq!(back.state, state);
        assert_eq!(back.meta_json, b"{}");
        assert!(read(b"foo").is_err());
        let mut bad = Vec::new();
        {
            let mut gz = GzEncoder::new(&mut bad, Compression::default());
            gz.write_all(b"not a tar").unwrap();
            gz.finish().unwrap();
        }
        assert!(read(&bad).is_err());
    }

    #[test]
    fn a_changed_payload_fails_its_hash() {
        let a = write(b"{}", b"CONCORD-STATE-1\nabc").unwrap();
        // Rebuild the archive with the same SHA256SUMS but another state.
        let good = read(&a).unwrap();
        let sums = format!(
            "{}  meta.json\n{}  state.bin\n",
            hex::encode(Sha256::digest(&good.meta_json)),
            hex::encode(Sha256::digest(&good.state))
        );
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        for (name, data) in [
            ("meta.json", &b"{}"[..]),
            ("state.bin", &b"CONCORD-STATE-1\nabd"[..]),
            ("SHA256SUMS", sums.as_bytes()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_cksum();
            tar.append_data(&mut h, name, data).unwrap();
        }
        let tampered = tar.into_inner().unwrap().finish().unwrap();
        assert_eq!(
            read(&tampered).err().unwrap(),
            "sha256 hash mismatch for \"state.bin\""
        );
    }
}
