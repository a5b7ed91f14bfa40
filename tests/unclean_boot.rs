//! A durable server whose state file cannot be trusted at start (changed after a
//! clean stop, cut short, or left open across a reboot) rebuilds it from the Raft
//! snapshot plus the Raft log and loses nothing; a plain kill -9 within one boot
//! keeps the file as it is.

mod common;
use common::Agent;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn server(dir: &Path) -> Agent {
    Agent::server_with(
        dir,
        &[
            "-hcl=raft_snapshot_threshold = 40",
            "-hcl=raft_trailing_logs = 5",
        ],
    )
}

fn write(a: &Agent, range: std::ops::Range<usize>) {
    for i in range {
        let r = a.put(&format!("/v1/kv/boot/{i:04}"), format!("v{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

fn all_there(a: &Agent, n: usize) {
    let keys = a.get("/v1/kv/boot/?keys").json();
    assert_eq!(keys.as_array().unwrap().len(), n, "keys after restart");
    assert_eq!(
        a.get(&format!("/v1/kv/boot/{:04}?raw", n - 1)).text(),
        format!("v{}", n - 1)
    );
}

/// The data file's inode, pinned by a hard link so that a rebuilt store's new file
/// cannot be given the same number.
fn inode(path: &Path) -> u64 {
    let ino = std::fs::metadata(path).unwrap().ino();
    let pin = path.with_extension(format!("pin-{ino}"));
    if !pin.exists() {
        std::fs::hard_link(path, pin).unwrap();
    }
    ino
}

fn start_again(a: &mut Agent) {
    a.relaunch();
    a.wait_ready();
}

#[test]
fn an_untrusted_state_file_is_rebuilt_from_snapshot_and_log() {
    let dir = Agent::scratch("unclean-boot");
    let mut a = server(&dir);
    write(&a, 0..300);
    let snapshot = dir.join("raft").join("snapshot.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !snapshot.exists() {
        assert!(Instant::now() < deadline, "no Raft snapshot was written");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Entries after the snapshot live only in the log.
    write(&a, 300..320);
    let data = dir.join("state").join("data.mdb");

    // Killed within this boot: the page cache held every write; the file is kept.
    let kept = inode(&data);
    a.restart();
    all_there(&a, 320);
    assert_eq!(inode(&data), kept, "a kill -9 alone does not rebuild");

    // Stopped cleanly, then damaged on disk: the checksum of the clean close differs.
    a.interrupt();
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 4096].fill(0xAB);
    std::fs::write(&data, &bytes).unwrap();
    let damaged = inode(&data);
    start_again(&mut a);
    all_there(&a, 320);
    assert_ne!(inode(&data), damaged, "rebuilt after damage");
    write(&a, 320..340);

    // Killed, then the file is cut short (a torn write-back).
    a.kill9();
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let cut = inode(&data);
    start_again(&mut a);
    all_there(&a, 340);
    assert_ne!(inode(&data), cut, "rebuilt after truncation");

    // Killed, and the machine went down with it: the close record names another boot.
    a.kill9();
    let guard = dir.join("state").join("guard.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&guard).unwrap()).unwrap();
    assert_eq!(record["clean"], false);
    record["boot_id"] = "another-boot".into();
    std::fs::write(&guard, record.to_string()).unwrap();
    let before = inode(&data);
    start_again(&mut a);
    all_there(&a, 340);
    assert_ne!(inode(&data), before, "rebuilt after a reboot");

    // And it keeps serving writes.
    write(&a, 340..350);
    all_there(&a, 350);
}
