//! `-dev` scratch directories. A `-dev` agent without `-data-dir` keeps its state in
//! a fresh directory under the temp dir and removes it when it exits. A killed agent
//! cannot, so every scratch directory holds a lock file its agent keeps locked
//! (`flock`) for as long as it runs: the kernel drops the lock when the process dies,
//! however it dies, and the next `-dev` agent to start removes every scratch
//! directory whose lock it can take.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Scratch directories are `<temp>/concord-dev-<uuid>`.
const PREFIX: &str = "concord-dev-";
const LOCK: &str = ".owner.lock";

/// A scratch directory held by this process; removed on [`Scratch::remove`].
pub struct Scratch {
    pub dir: PathBuf,
    /// Held open (and locked) until the process exits.
    _lock: File,
}

impl Scratch {
    /// Removes the scratch directories of agents that are gone, then creates and
    /// locks a new one.
    pub fn create() -> std::io::Result<Scratch> {
        let tmp = std::env::temp_dir();
        sweep(&tmp);
        let dir = tmp.join(format!("{PREFIX}{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let lock = File::create(dir.join(LOCK))?;
        if !try_lock(&lock) {
            return Err(std::io::Error::other(format!(
                "cannot lock the scratch directory {}",
                dir.display()
            )));
        }
        Ok(Scratch { dir, _lock: lock })
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Takes an exclusive lock without waiting; false when another process holds it.
fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a descriptor this File owns; no memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Removes every scratch directory in `tmp` whose owner no longer runs.
fn sweep(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_scratch = name.to_str().is_some_and(|n| n.starts_with(PREFIX));
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_scratch && is_dir && abandoned(&entry.path()) {
            tracing::info!(dir = %entry.path().display(), "removing the scratch directory of a -dev agent that is gone");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `dir`'s owner is gone: its lock file exists and nobody holds it. A
/// directory without a lock file is left alone: it is being created this
/// instant, or an older concord that does not lock runs in it.
fn abandoned(dir: &Path) -> bool {
    // Our probe's descriptor (and the lock it may take) closes on drop.
    File::open(dir.join(LOCK)).is_ok_and(|lock| try_lock(&lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_without_a_live_owner_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        // Held by a live owner (this process, through another descriptor).
        let live = tmp.path().join(format!("{PREFIX}live"));
        std::fs::create_dir(&live).unwrap();
        let held = File::create(live.join(LOCK)).unwrap();
        assert!(try_lock(&held));
        // Its owner is gone: the lock file is there, nobody holds it.
        let dead = tmp.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir(&dead).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        // No lock file (being created, or an older concord's): kept.
        let fresh = tmp.path().join(format!("{PREFIX}fresh"));
        std::fs::create_dir(&fresh).unwrap();
        // Not ours at all.
        let other = tmp.path().join("something-else");
        std::fs::create_dir(&other).unwrap();
        File::create(other.join(LOCK)).unwrap();

        sweep(tmp.path());
        assert!(live.exists());
        assert!(!dead.exists());
        assert!(fresh.exists());
        assert!(other.exists());
        drop(held);
    }
}
