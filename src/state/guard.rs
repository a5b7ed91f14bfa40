//! Whether a durable store's files can be trusted at start.
//!
//! The store is written without fsync: the Raft log is the durable record, and the
//! store is only synced before a snapshot lets the log be truncated. A process that is
//! killed loses nothing (the kernel's page cache holds every write), but after an OS
//! crash or a power loss the file may be torn. A small record beside the environment
//! (`guard.json`, written with fsync) says how the store was last closed:
//!
//! - **closed cleanly**: synced, with the data file's length and CRC-32, which must
//!   still match at the next start;
//! - **still open**: trusted only within the same boot of the machine, and only if the
//!   file is as long as LMDB's own meta page says (checked once the environment opens).
//!
//! Anything else (another boot, a changed or shortened file, no record at all) means
//! the store is discarded and rebuilt from the last Raft snapshot plus the Raft log
//! (see `raft::state_machine`).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

const RECORD: &str = "guard.json";
pub(super) const DATA: &str = "data.mdb";
const LOCK: &str = "lock.mdb";

#[derive(Serialize, Deserialize)]
struct Record {
    boot_id: String,
    clean: bool,
    #[serde(default)]
    len: u64,
    #[serde(default)]
    crc: u32,
}

/// The kernel's id of this boot; empty where there is none (then only clean closes
/// are trusted).
fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Why the store in `dir` cannot be trusted, or `None` when it can (or does not
/// exist yet).
pub fn distrust(dir: &Path) -> Option<String> {
    let data = dir.join(DATA);
    if !data.exists() {
        return None;
    }
    let record = match fs::read(dir.join(RECORD)) {
        Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
            Ok(r) => r,
            Err(e) => return Some(format!("its close record is unreadable: {e}")),
        },
        Err(_) => return Some("there is no record of how it was last closed".into()),
    };
    if record.clean {
        return match checksum(&data) {
            Ok((len, crc)) if (len, crc) == (record.len, record.crc) => None,
            Ok(_) => Some("its data file changed after it was closed cleanly".into()),
            Err(e) => Some(format!("its data file cannot be read: {e}")),
        };
    }
    let now = boot_id();
    if now.is_empty() || record.boot_id != now {
        return Some("the machine restarted while the store was open".into());
    }
    None
}

/// Why an opened store's data file is torn: shorter than the pages LMDB's meta page
/// counts.
pub fn torn(dir: &Path, last_page: usize, page_size: u32) -> Option<String> {
    let need = (last_page as u64 + 1) * u64::from(page_size);
    match fs::metadata(dir.join(DATA)) {
        Ok(m) if m.len() >= need => None,
        Ok(m) => Some(format!(
            "its data file holds {} bytes where LMDB counts {need}",
            m.len()
        )),
        Err(e) => Some(format!("its data file cannot be read: {e}")),
    }
}

/// Removes the environment's files (keeping the directory).
pub fn discard(dir: &Path) -> io::Result<()> {
    for name in [DATA, LOCK, RECORD] {
        match fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Records that the store is open (it is about to be written without fsync).
pub fn mark_open(dir: &Path) -> io::Result<()> {
    write_record(
        dir,
        &Record {
            boot_id: boot_id(),
            clean: false,
            len: 0,
            crc: 0,
        },
    )
}

/// Records a clean close: call with the store synced and no writer left.
pub fn mark_clean(dir: &Path) -> io::Result<()> {
    let (len, crc) = checksum(&dir.join(DATA))?;
    write_record(
        dir,
        &Record {
            boot_id: boot_id(),
            clean: true,
            len,
            crc,
        },
    )
}

fn checksum(path: &Path) -> io::Result<(u64, u32)> {
    let mut f = File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize()))
}

fn write_record(dir: &Path, record: &Record) -> io::Result<()> {
    let tmp = dir.join(format!("{RECORD}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(record).map_err(io::Error::other)?)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(RECORD))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("concord-guard-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn clean_close_is_checked_against_the_file() {
        let dir = scratch();
        assert_eq!(distrust(&dir), None, "no store yet");
        fs::write(dir.join(DATA), b"pages").unwrap();
        assert!(distrust(&dir).unwrap().contains("no record"));
        mark_clean(&dir).unwrap();
        assert_eq!(distrust(&dir), None);
        fs::write(dir.join(DATA), b"pagez").unwrap();
        assert!(distrust(&dir).unwrap().contains("changed"));
        mark_open(&dir).unwrap();
        assert_eq!(distrust(&dir), None, "killed within this boot");
        let other = Record {
            boot_id: "another boot".into(),
            clean: false,
            len: 0,
            crc: 0,
        };
        write_record(&dir, &other).unwrap();
        assert!(distrust(&dir).unwrap().contains("restarted"));
        assert!(torn(&dir, 0, 4).is_none());
        assert!(torn(&dir, 1, 4).unwrap().contains("holds 5 bytes"));
        discard(&dir).unwrap();
        assert_eq!(distrust(&dir), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
