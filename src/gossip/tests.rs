//! Multi-member tests of the gossip layer: several pools members on 127.0.0.1 ephemeral
//! ports in one runtime, fast timing profile. Every check polls until a deadline; nothing
//! relies on a fixed sleep being long enough.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::TryRecvError;

use super::*;

/// At most two multi-member tests at a time: the CI machine has two shared cores and
/// SWIM timeouts in the fast profile are tight.
static SLOTS: Semaphore = Semaphore::const_new(2);

const DEADLINE: Duration = Duration::from_secs(25);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn fast(name: &str) -> GossipConfig {
    let mut cfg = GossipConfig::fast(name, loopback());
    cfg.tags.insert("role".into(), "node".into());
    cfg.tags.insert("id".into(), name.into());
    cfg
}

async fn start(cfg: GossipConfig) -> Gossip {
    Gossip::start(cfg).await.expect("gossip starts")
}

/// Starts members `prefix-0..n` with `tweak` applied and joins them all through the first.
async fn cluster(prefix: &str, n: usize, tweak: impl Fn(&mut GossipConfig)) -> Vec<Gossip> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut cfg = fast(&format!("{prefix}-{i}"));
        tweak(&mut cfg);
        out.push(start(cfg).await);
    }
    let seed = out[0].local_addr();
    for g in &out[1..] {
        assert_eq!(g.join(&[seed]).await.expect("join"), 1);
    }
    for g in &out {
        wait_until(&format!("{} sees {n} alive members", g.node_name()), || {
            alive_count(g) == n
        })
        .await;
    }
    out
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if cond() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {DEADLINE:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn alive_count(g: &Gossip) -> usize {
    g.members()
        .iter()
        .filter(|m| m.status == MemberStatus::Alive)
        .count()
}

fn status(g: &Gossip, name: &str) -> Option<MemberStatus> {
    g.members()
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.status)
}

fn member(g: &Gossip, name: &str) -> Option<Member> {
    g.members().into_iter().find(|m| m.name == name)
}

/// Drains what is queued now.
fn drain(rx: &mut tokio::sync::broadcast::Receiver<GossipEvent>) -> Vec<GossipEvent> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(ev) => out.push(ev),
            Err(TryRecvError::Lagged(_)) => continue,
            Err(_) => return out,
        }
    }
}

fn user_events(events: &[GossipEvent], name: &str) -> Vec<UserEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            GossipEvent::UserEvent(u) if u.name == name => Some(u.clone()),
            _ => None,
        })
        .collect()
}

async fn shutdown_all(members: &[Gossip]) {
    for g in members {
        g.shutdown().await;
    }
}

fn key_b64(byte: u8, len: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(vec![byte; len])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_join_five_members_with_tags_and_protocol_fields() {
    let _slot = SLOTS.acquire().await.unwrap();
    let members = cluster("join", 5, |_| {}).await;
    for g in &members {
        wait_until("tags of every member are known", || {
            g.members()
                .iter()
                .all(|m| m.tags.get("id") == Some(&m.name))
        })
        .await;
        let list = g.members();
        assert_eq!(list.len(), 5);
        let me = list.iter().find(|m| m.name == g.node_name()).unwrap();
        assert_eq!(me.addr, g.local_addr().ip());
        assert_eq!(me.port, g.local_addr().port());
        assert_eq!(
            (me.protocol_min, me.protocol_max, me.protocol_cur),
            (1, 5, 2)
        );
        assert_eq!(
            (me.delegate_min, me.delegate_max, me.delegate_cur),
            (2, 5, 4)
        );
        assert_eq!(me.status.code(), 1);
    }
    shutdown_all(&members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_join_error_lists_every_address() {
    let _slot = SLOTS.acquire().await.unwrap();
    let g = start(fast("lonely")).await;
    // A port that was just freed: nobody listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = g.join(&[dead]).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("1 error occurred:\n\t* Failed to join {dead}: ")),
        "{err}"
    );
    assert_eq!(g.members().len(), 1);
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_graceful_leave_is_seen_as_left_by_all() {
    let _slot = SLOTS.acquire().await.unwrap();
    let members = cluster("leave", 4, |_| {}).await;
    let mut rx = members[0].subscribe();
    members[3].leave().await.unwrap();
    assert_eq!(status(&members[3], "leave-3"), Some(MemberStatus::Left));
    for g in &members[..3] {
        wait_until(&format!("{} sees leave-3 left", g.node_name()), || {
            status(g, "leave-3") == Some(MemberStatus::Left)
        })
        .await;
    }
    members[3].shutdown().await;
    let events = drain(&mut rx);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, GossipEvent::MemberLeave(m) if m.name == "leave-3")),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, GossipEvent::MemberFailed(m) if m.name == "leave-3")),
        "a graceful leave must not look like a failure: {events:?}"
    );
    assert!(matches!(
        members[3].fire_user_event("x", vec![], false),
        Err(GossipError::NotRunning)
    ));
    shutdown_all(&members[..3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_killed_member_is_failed_then_reaped() {
    let _slot = SLOTS.acquire().await.unwrap();
    let members = cluster("kill", 4, |c| c.reconnect_timeout = Duration::from_secs(4)).await;
    let mut rx = members[0].subscribe();
    members[3].shutdown().await; // no leave: the socket just goes away
    for g in &members[..3] {
        wait_until(&format!("{} sees kill-3 failed", g.node_name()), || {
            status(g, "kill-3") == Some(MemberStatus::Failed)
        })
        .await;
    }
    for g in &members[..3] {
        wait_until(&format!("{} reaps kill-3", g.node_name()), || {
            status(g, "kill-3").is_none()
        })
        .await;
    }
    let events = drain(&mut rx);
    let failed = events
        .iter()
        .position(|e| matches!(e, GossipEvent::MemberFailed(m) if m.name == "kill-3"));
    let reaped = events
        .iter()
        .position(|e| matches!(e, GossipEvent::MemberReap(m) if m.name == "kill-3"));
    assert!(
        failed.is_some() && reaped.is_some() && failed < reaped,
        "{events:?}"
    );
    shutdown_all(&members[..3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_force_leave_with_and_without_prune() {
    let _slot = SLOTS.acquire().await.unwrap();
    let members = cluster("force", 5, |_| {}).await;
    assert!(matches!(
        members[0].force_leave("nobody", false),
        Err(GossipError::NoSuchNode(_))
    ));
    assert_eq!(
        members[0]
            .force_leave("nobody", false)
            .unwrap_err()
            .to_string(),
        "agent: No node found with name 'nobody'"
    );
    // Force-leaving a live member marks it leaving at once, until it refutes.
    members[0].force_leave("force-1", false).unwrap();
    assert_eq!(status(&members[0], "force-1"), Some(MemberStatus::Leaving));
    for g in &members {
        wait_until(
            &format!("{} sees force-1 alive again", g.node_name()),
            || status(g, "force-1") == Some(MemberStatus::Alive),
        )
        .await;
    }

    members[3].shutdown().await;
    members[4].shutdown().await;
    let live = &members[..3];
    for g in live {
        wait_until("force-3 and force-4 failed", || {
            status(g, "force-3") == Some(MemberStatus::Failed)
                && status(g, "force-4") == Some(MemberStatus::Failed)
        })
        .await;
    }
    assert_eq!(status(&members[2], "force-1"), Some(MemberStatus::Alive));

    members[0].force_leave("force-3", false).unwrap();
    for g in live {
        wait_until(&format!("{} sees force-3 left", g.node_name()), || {
            status(g, "force-3") == Some(MemberStatus::Left)
        })
        .await;
    }
    members[1].force_leave("force-4", true).unwrap();
    for g in live {
        wait_until(&format!("{} pruned force-4", g.node_name()), || {
            status(g, "force-4").is_none()
        })
        .await;
    }
    // A left member can be pruned too.
    members[2].force_leave("force-3", true).unwrap();
    for g in live {
        wait_until(&format!("{} pruned force-3", g.node_name()), || {
            status(g, "force-3").is_none()
        })
        .await;
    }
    for g in live {
        assert_eq!(g.members().len(), 3);
    }
    shutdown_all(live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_user_event_reaches_every_member_exactly_once() {
    let _slot = SLOTS.acquire().await.unwrap();
    let members = cluster("event", 4, |_| {}).await;
    let mut rxs: Vec<_> = members.iter().map(|g| g.subscribe()).collect();

    let err = members[0]
        .fire_user_event("too-big", vec![0u8; 600], false)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "user event exceeds configured limit of 512 bytes before encoding"
    );

    members[1]
        .fire_user_event("deploy", b"v1".to_vec(), false)
        .unwrap();
    members[2]
        .fire_user_event("deploy", b"v2".to_vec(), true)
        .unwrap();
    let mut got: Vec<Vec<UserEvent>> = vec![Vec::new(); members.len()];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while got.iter().any(|g| g.len() < 2) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events not delivered everywhere: {got:?}"
        );
        for (i, rx) in rxs.iter_mut().enumerate() {
            got[i].extend(user_events(&drain(rx), "deploy"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let gossip and push-pull keep running for a while: nothing may arrive twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, rx) in rxs.iter_mut().enumerate() {
        got[i].extend(user_events(&drain(rx), "deploy"));
        let mut payloads: Vec<_> = got[i].iter().map(|e| e.payload.clone()).collect();
        payloads.sort();
        assert_eq!(payloads, vec![b"v1".to_vec(), b"v2".to_vec()], "member {i}");
    }
    let e = &got[0][0];
    assert!(e.origin.starts_with("event-"));
    // Lamport times: two events fired independently may share a time, but both are known.
    assert!(got[3].iter().all(|e| e.ltime < 10));
    shutdown_all(&members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_events_during_partition_arrive_once_after_heal() {
    let _slot = SLOTS.acquire().await.unwrap();
    let members = cluster("part", 3, |_| {}).await;
    let mut rxs: Vec<_> = members.iter().map(|g| g.subscribe()).collect();
    let cut = &members[2];
    cut.set_partitioned(true);
    for g in &members[..2] {
        wait_until("part-2 failed", || {
            status(g, "part-2") == Some(MemberStatus::Failed)
        })
        .await;
    }
    members[0]
        .fire_user_event("while-cut", b"a".to_vec(), false)
        .unwrap();
    cut.fire_user_event("from-cut", b"c".to_vec(), false)
        .unwrap();
    cut.set_partitioned(false);
    for g in &members {
        wait_until(
            &format!("{} sees all alive after heal", g.node_name()),
            || alive_count(g) == 3,
        )
        .await;
    }
    let mut got: Vec<Vec<UserEvent>> = vec![Vec::new(); 3];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        for (i, rx) in rxs.iter_mut().enumerate() {
            let evs = drain(rx);
            got[i].extend(user_events(&evs, "while-cut"));
            got[i].extend(user_events(&evs, "from-cut"));
        }
        if got.iter().all(|g| g.len() >= 2) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events not delivered after heal: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, rx) in rxs.iter_mut().enumerate() {
        let evs = drain(rx);
        got[i].extend(user_events(&evs, "while-cut"));
        got[i].extend(user_events(&evs, "from-cut"));
        let mut names: Vec<_> = got[i].iter().map(|e| e.name.clone()).collect();
        names.sort();
        assert_eq!(names, vec!["from-cut", "while-cut"], "member {i}");
    }
    shutdown_all(&members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_tag_update_propagates() {
    let _slot = SLOTS.acquire().await.unwrap();
    let members = cluster("tags", 3, |_| {}).await;
    let mut rx = members[2].subscribe();
    let mut tags = BTreeMap::new();
    tags.insert("role".to_string(), "consul".to_string());
    tags.insert("dc".to_string(), "dc1".to_string());
    members[0].set_tags(tags.clone()).unwrap();
    for g in &members {
        wait_until(&format!("{} sees the new tags", g.node_name()), || {
            member(g, "tags-0").map(|m| m.tags) == Some(tags.clone())
        })
        .await;
    }
    let events = drain(&mut rx);
    assert!(
        events.iter().any(
            |e| matches!(e, GossipEvent::MemberUpdate(m) if m.name == "tags-0" && m.tags == tags)
        ),
        "{events:?}"
    );
    let huge: BTreeMap<String, String> =
        (0..40).map(|i| (format!("k{i}"), "v".repeat(20))).collect();
    assert_eq!(
        members[0].set_tags(huge).unwrap_err().to_string(),
        "Encoded length of tags exceeds limit of 512 bytes"
    );
    // A member that joins later learns the current tags from push-pull.
    let late = start(fast("tags-late")).await;
    late.join(&[members[1].local_addr()]).await.unwrap();
    wait_until("the late member sees tags-0's tags", || {
        member(&late, "tags-0").map(|m| m.tags) == Some(tags.clone())
    })
    .await;
    late.shutdown().await;
    shutdown_all(&members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_encryption_same_key_joins_wrong_key_and_plain_do_not() {
    let _slot = SLOTS.acquire().await.unwrap();
    let key = vec![9u8; 32];
    let members = cluster("enc", 3, |c| c.encrypt_key = Some(key.clone())).await;
    assert!(members.iter().all(Gossip::encrypted));

    let mut wrong = fast("enc-wrong");
    wrong.encrypt_key = Some(vec![1u8; 32]);
    let wrong = start(wrong).await;
    let err = wrong.join(&[members[0].local_addr()]).await.unwrap_err();
    assert!(err.to_string().contains("Failed to join"), "{err}");

    let plain = start(fast("enc-plain")).await;
    assert!(plain.join(&[members[0].local_addr()]).await.is_err());

    // An encrypted member cannot join a plaintext one either.
    let lonely_plain = start(fast("plain-seed")).await;
    assert!(members[1].join(&[lonely_plain.local_addr()]).await.is_err());

    tokio::time::sleep(Duration::from_millis(500)).await;
    for g in &members {
        assert_eq!(g.members().len(), 3, "{:?}", g.members());
    }
    assert_eq!(wrong.members().len(), 1);
    assert_eq!(plain.members().len(), 1);
    shutdown_all(&[wrong, plain, lonely_plain]).await;
    shutdown_all(&members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_keyring_install_use_remove_propagate() {
    let _slot = SLOTS.acquire().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = key_b64(1, 16);
    let second = key_b64(2, 32);
    let members = {
        let dir = dir.path().to_path_buf();
        let mut out = Vec::new();
        for i in 0..3 {
            let mut cfg = fast(&format!("ring-{i}"));
            cfg.encrypt_key = Some(vec![1u8; 16]);
            cfg.keyring_file = Some(dir.join(format!("ring-{i}/serf/local.keyring")));
            out.push(start(cfg).await);
        }
        for g in &out[1..] {
            g.join(&[out[0].local_addr()]).await.unwrap();
        }
        for g in &out {
            wait_until("3 alive", || alive_count(g) == 3).await;
        }
        out
    };

    let list = members[0].keyring_list().await.unwrap();
    assert_eq!(list.num_nodes, 3);
    assert_eq!(list.keys.get(&first), Some(&3));
    assert_eq!(list.primary_keys.get(&first), Some(&3));

    let resp = members[1].keyring_install(&second).await.unwrap();
    assert_eq!((resp.num_nodes, resp.num_resp, resp.num_err), (3, 3, 0));
    let list = members[2].keyring_list().await.unwrap();
    assert_eq!(list.keys.get(&second), Some(&3));
    assert_eq!(list.keys.get(&first), Some(&3));

    // Removing the primary key fails on every member, with serf's texts.
    match members[0].keyring_remove(&first).await {
        Err(GossipError::Keyring { message, response }) => {
            assert_eq!(message, "3/3 nodes reported failure");
            assert_eq!(response.num_err, 3);
            assert!(
                response
                    .messages
                    .values()
                    .all(|m| m == "Removing the primary key is not allowed")
            );
        }
        other => panic!("expected a keyring error, got {other:?}"),
    }

    members[2].keyring_use(&second).await.unwrap();
    let list = members[0].keyring_list().await.unwrap();
    assert_eq!(list.primary_keys.get(&second), Some(&3));
    members[0].keyring_remove(&first).await.unwrap();
    let list = members[1].keyring_list().await.unwrap();
    assert_eq!(list.keys.len(), 1);
    assert_eq!(list.keys.get(&second), Some(&3));

    // The pool still works on the new key only, and the files were updated.
    members[0]
        .fire_user_event("after-rotation", vec![], false)
        .unwrap();
    let mut rx = members[2].subscribe();
    members[1]
        .fire_user_event("after-rotation-2", vec![], false)
        .unwrap();
    wait_until("event after rotation", || {
        !user_events(&drain(&mut rx), "after-rotation-2").is_empty()
    })
    .await;
    let file = std::fs::read_to_string(dir.path().join("ring-2/serf/local.keyring")).unwrap();
    assert_eq!(file, format!("[\"{second}\"]"));

    assert!(matches!(
        members[0].keyring_use("not base64!").await,
        Err(GossipError::InvalidKey(_))
    ));
    shutdown_all(&members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_restart_with_same_name_rejoins_alive() {
    let _slot = SLOTS.acquire().await.unwrap();
    let members = cluster("restart", 3, |_| {}).await;
    let addr = members[2].local_addr();
    members[2].shutdown().await;
    for g in &members[..2] {
        wait_until("restart-2 failed", || {
            status(g, "restart-2") == Some(MemberStatus::Failed)
        })
        .await;
    }
    let mut cfg = fast("restart-2");
    cfg.bind = addr;
    cfg.tags.insert("version".into(), "2".into());
    let again = start(cfg).await;
    again.join(&[members[0].local_addr()]).await.unwrap();
    for g in [&members[0], &members[1], &again] {
        wait_until(
            &format!("{} sees restart-2 alive again", g.node_name()),
            || {
                member(g, "restart-2").is_some_and(|m| {
                    m.status == MemberStatus::Alive && m.tags.contains_key("version")
                })
            },
        )
        .await;
        wait_until("three alive", || alive_count(g) == 3).await;
    }
    again.shutdown().await;
    shutdown_all(&members[..2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_name_conflict_keeps_the_first_member() {
    let _slot = SLOTS.acquire().await.unwrap();
    let members = cluster("dup", 3, |_| {}).await;
    let original = members[2].local_addr();
    // Make sure the impostor's generation is newer.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let impostor = start(fast("dup-2")).await;
    // The exchange itself succeeds; the impostor then finds out and goes quiet.
    let _ = impostor.join(&[members[0].local_addr()]).await;
    wait_until("the impostor stops gossiping", || {
        matches!(
            impostor.fire_user_event("x", vec![], false),
            Err(GossipError::NotRunning)
        )
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for g in &members {
        let m = member(g, "dup-2").expect("dup-2 listed");
        assert_eq!(m.status, MemberStatus::Alive, "seen by {}", g.node_name());
        assert_eq!(m.port, original.port(), "seen by {}", g.node_name());
    }
    impostor.shutdown().await;
    shutdown_all(&members).await;
}
