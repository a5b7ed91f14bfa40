//! FSM semantics against a scratch store: the KV, lock, session and txn rules.

use super::*;
use crate::state::Store;
use crate::structs::*;

struct Harness {
    store: Store,
    index: u64,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            store: Store::open_scratch().unwrap(),
            index: 1,
        }
    }

    fn run(&mut self, cmd: Command) -> Response {
        self.index += 1;
        let mut batch = self.store.batch().unwrap();
        let r = apply(&mut batch, self.index, &cmd);
        batch.commit().unwrap();
        r
    }

    fn get(&self, key: &str) -> (u64, Option<DirEntry>) {
        self.store.read().unwrap().view().kv_get(key).unwrap()
    }

    fn node(&mut self, name: &str) {
        let r = self.run(Command::Register(Registration {
            node: Node {
                node: name.into(),
                address: "127.0.0.1".into(),
                ..Default::default()
            },
            skip_node_update: false,
            service: None,
            checks: vec![HealthCheck {
                node: name.into(),
                check_id: SERF_CHECK_ID.into(),
                name: SERF_CHECK_NAME.into(),
                status: HEALTH_PASSING.into(),
                definition: serde_json::json!({}),
                ..Default::default()
            }],
        }));
        assert_eq!(r, Response::Bool(true));
    }

    fn session(&mut self, node: &str, behavior: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let r = self.run(Command::SessionCreate(Session {
            id: id.clone(),
            name: String::new(),
            node: node.into(),
            lock_delay: 0,
            behavior: behavior.into(),
            ttl: String::new(),
            node_checks: vec![SERF_CHECK_ID.into()],
            service_checks: None,
            create_index: 0,
            modify_index: 0,
        }));
        assert!(matches!(r, Response::Session(_)), "{r:?}");
        id
    }
}

fn entry(key: &str, value: &str) -> DirEntry {
    DirEntry {
        key: key.into(),
        value: Some(value.as_bytes().to_vec()),
        ..Default::default()
    }
}

#[test]
fn identical_writes_keep_modify_index() {
    let mut h = Harness::new();
    h.run(Command::KvSet {
        entry: entry("a", "1"),
    });
    let (idx1, e1) = h.get("a");
    h.run(Command::KvSet {
        entry: entry("a", "1"),
    });
    let (idx2, e2) = h.get("a");
    assert_eq!(idx1, idx2);
    assert_eq!(e1, e2);
    h.run(Command::KvSet {
        entry: entry("a", "2"),
    });
    assert!(h.get("a").0 > idx2);
}

#[test]
fn cas_zero_creates_only_and_cas_n_needs_exact_index() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(Command::KvCas {
            entry: entry("k", "1"),
            index: 0
        }),
        Response::Bool(true)
    );
    assert_eq!(
        h.run(Command::KvCas {
            entry: entry("k", "2"),
            index: 0
        }),
        Response::Bool(false)
    );
    let idx = h.get("k").1.unwrap().modify_index;
    assert_eq!(
        h.run(Command::KvCas {
            entry: entry("k", "3"),
            index: idx + 7
        }),
        Response::Bool(false)
    );
    assert_eq!(
        h.run(Command::KvCas {
            entry: entry("k", "3"),
            index: idx
        }),
        Response::Bool(true)
    );
    assert_eq!(h.get("k").1.unwrap().value.unwrap(), b"3");
}

#[test]
fn delete_cas_on_missing_key_is_true() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(Command::KvDeleteCas {
            key: "nope".into(),
            index: 5
        }),
        Response::Bool(true)
    );
}

#[test]
fn deleted_prefix_index_does_not_go_backwards() {
    let mut h = Harness::new();
    h.run(Command::KvSet {
        entry: entry("p/a", "1"),
    });
    h.run(Command::KvSet {
        entry: entry("p/b", "1"),
    });
    let (before, _) = h.store.read().unwrap().view().kv_list("p/").unwrap();
    h.run(Command::KvDelete { key: "p/b".into() });
    let (after, entries) = h.store.read().unwrap().view().kv_list("p/").unwrap();
    assert_eq!(entries.len(), 1);
    assert!(
        after > before,
        "tombstone keeps the prefix index moving: {after} > {before}"
    );
}

#[test]
fn lock_index_and_session_rules() {
    let mut h = Harness::new();
    h.node("n1");
    let s1 = h.session("n1", SESSION_BEHAVIOR_RELEASE);
    let s2 = h.session("n1", SESSION_BEHAVIOR_RELEASE);
    let lock = |s: &str| Command::KvLock {
        entry: entry("lock", "v"),
        session: s.into(),
    };
    assert_eq!(h.run(lock(&s1)), Response::Bool(true));
    assert_eq!(h.get("lock").1.unwrap().lock_index, 1);
    assert_eq!(
        h.run(lock(&s2)),
        Response::Bool(false),
        "held by another session"
    );
    assert_eq!(
        h.run(lock(&s1)),
        Response::Bool(true),
        "re-acquire by the holder"
    );
    assert_eq!(h.get("lock").1.unwrap().lock_index, 1);
    let unlock = |s: &str| Command::KvUnlock {
        entry: entry("lock", "v"),
        session: s.into(),
    };
    assert_eq!(h.run(unlock(&s2)), Response::Bool(false));
    assert_eq!(h.run(unlock(&s1)), Response::Bool(true));
    let e = h.get("lock").1.unwrap();
    assert_eq!(e.session, None);
    assert_eq!(e.lock_index, 1);
    assert_eq!(h.run(lock(&s2)), Response::Bool(true));
    assert_eq!(h.get("lock").1.unwrap().lock_index, 2);
    match h.run(Command::KvLock {
        entry: entry("x", ""),
        session: "bogus".into(),
    }) {
        Response::Rejected(msg) => assert_eq!(msg, "invalid session \"bogus\""),
        other => panic!("{other:?}"),
    }
    // Releasing with a session that is gone is a refusal, not an error (the Go
    // api's Unlock after its session was invalidated).
    assert_eq!(h.run(unlock("bogus")), Response::Bool(false));
    match h.run(unlock("")) {
        Response::Rejected(msg) => assert_eq!(msg, "missing session"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn session_end_releases_or_deletes_held_keys() {
    let mut h = Harness::new();
    h.node("n1");
    let rel = h.session("n1", SESSION_BEHAVIOR_RELEASE);
    let del = h.session("n1", SESSION_BEHAVIOR_DELETE);
    h.run(Command::KvLock {
        entry: entry("r", "1"),
        session: rel.clone(),
    });
    h.run(Command::KvLock {
        entry: entry("d", "1"),
        session: del.clone(),
    });
    h.run(Command::SessionDestroy { id: rel });
    h.run(Command::SessionDestroy { id: del });
    assert_eq!(h.get("r").1.unwrap().session, None);
    assert!(h.get("d").1.is_none());
}

#[test]
fn critical_check_and_node_removal_invalidate_sessions() {
    let mut h = Harness::new();
    h.node("n1");
    let s = h.session("n1", SESSION_BEHAVIOR_RELEASE);
    h.run(Command::Register(Registration {
        node: Node {
            node: "n1".into(),
            address: "127.0.0.1".into(),
            ..Default::default()
        },
        skip_node_update: true,
        service: None,
        checks: vec![HealthCheck {
            node: "n1".into(),
            check_id: SERF_CHECK_ID.into(),
            status: HEALTH_CRITICAL.into(),
            definition: serde_json::json!({}),
            ..Default::default()
        }],
    }));
    assert!(
        h.store
            .read()
            .unwrap()
            .view()
            .session(&s)
            .unwrap()
            .1
            .is_none()
    );
    h.node("n2");
    let s2 = h.session("n2", SESSION_BEHAVIOR_RELEASE);
    h.run(Command::DeregisterNode { node: "n2".into() });
    assert!(
        h.store
            .read()
            .unwrap()
            .view()
            .session(&s2)
            .unwrap()
            .1
            .is_none()
    );
}

#[test]
fn session_needs_node_and_healthy_checks() {
    let mut h = Harness::new();
    let r = h.run(Command::SessionCreate(Session {
        id: "x".into(),
        name: String::new(),
        node: "ghost".into(),
        lock_delay: 0,
        behavior: SESSION_BEHAVIOR_RELEASE.into(),
        ttl: String::new(),
        node_checks: vec![],
        service_checks: None,
        create_index: 0,
        modify_index: 0,
    }));
    assert!(matches!(r, Response::Rejected(m) if m.starts_with("Missing node registration")));
}

#[test]
fn failed_txn_rolls_back_everything_and_reports_each_error() {
    let mut h = Harness::new();
    let ops = vec![
        TxnOp::Kv {
            verb: "set".into(),
            entry: entry("t/a", "1"),
        },
        TxnOp::Kv {
            verb: "lock".into(),
            entry: entry("t/b", "1"),
        },
        TxnOp::Kv {
            verb: "get".into(),
            entry: entry("t/missing", ""),
        },
    ];
    match h.run(Command::Txn { ops }) {
        Response::TxnFailed(errors) => {
            assert_eq!(errors.len(), 2);
            assert_eq!(errors[0].op_index, 1);
            assert!(errors[0].what.contains("missing session"));
            assert_eq!(errors[1].op_index, 2);
            assert!(errors[1].what.contains("doesn't exist"));
        }
        other => panic!("{other:?}"),
    }
    assert!(h.get("t/a").1.is_none(), "the set was rolled back");
}

#[test]
fn txn_results_blank_values_except_get() {
    let mut h = Harness::new();
    let ops = vec![
        TxnOp::Kv {
            verb: "set".into(),
            entry: entry("k", "v"),
        },
        TxnOp::Kv {
            verb: "get".into(),
            entry: entry("k", ""),
        },
    ];
    match h.run(Command::Txn { ops }) {
        Response::Txn(resp) => {
            let results = resp.results.unwrap();
            assert_eq!(results.len(), 2);
            match (&results[0], &results[1]) {
                (TxnResult::Kv(set), TxnResult::Kv(get)) => {
                    assert_eq!(set.value, None);
                    assert_eq!(get.value.as_deref(), Some(&b"v"[..]));
                    assert_eq!(set.modify_index, get.modify_index);
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn snapshot_round_trip() {
    let mut h = Harness::new();
    h.node("n1");
    h.run(Command::KvSet {
        entry: entry("snap/a", "1"),
    });
    let mut buf = Vec::new();
    h.store.snapshot_to(&mut buf).unwrap();
    let other = Store::open_scratch().unwrap();
    other.restore_from(&mut buf.as_slice()).unwrap();
    let r = other.read().unwrap();
    assert_eq!(
        r.view().kv_get("snap/a").unwrap().1.unwrap().value.unwrap(),
        b"1"
    );
    assert!(r.view().node("n1").unwrap().is_some());
    assert!(other.restore_from(&mut &b"garbage"[..]).is_err());
}

#[test]
fn a_batch_answers_each_command_and_keeps_failures_apart() {
    let mut h = Harness::new();
    let r = h.run(Command::Batch(vec![
        Command::KvSet {
            entry: entry("b/1", "x"),
        },
        Command::KvLock {
            entry: entry("b/2", "y"),
            session: "no-such-session".into(),
        },
        Command::KvCas {
            entry: entry("b/3", "z"),
            index: 0,
        },
    ]));
    match r {
        Response::Batch(answers) => {
            assert_eq!(answers.len(), 3);
            assert_eq!(answers[0], Response::Bool(true));
            assert!(matches!(&answers[1], Response::Rejected(m) if m.contains("invalid session")));
            assert_eq!(answers[2], Response::Bool(true));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        h.get("b/1").1.is_some(),
        "a refused neighbour does not roll it back"
    );
    assert!(h.get("b/2").1.is_none());
    assert!(h.get("b/3").1.is_some());
}

#[test]
fn a_command_that_fails_in_storage_fails_alone_and_the_stream_goes_on() {
    let mut h = Harness::new();
    h.run(Command::KvSet {
        entry: entry("ok/1", "x"),
    });
    // A row no command can decode (a damaged store): writing that key fails in
    // the command's own transaction, which is rolled back; the next command of the
    // same batch, and the next entry, apply.
    h.store.put_raw("kv", b"bad", b"not json");
    let r = h.run(Command::Batch(vec![
        Command::KvSet {
            entry: entry("bad", "y"),
        },
        Command::KvSet {
            entry: entry("ok/2", "z"),
        },
    ]));
    match r {
        Response::Batch(answers) => {
            assert!(
                matches!(&answers[0], Response::Rejected(m) if m.contains("encoding")),
                "{answers:?}"
            );
            assert_eq!(answers[1], Response::Bool(true));
        }
        other => panic!("{other:?}"),
    }
    assert!(h.get("ok/2").1.is_some());
    assert_eq!(
        h.run(Command::KvSet {
            entry: entry("ok/3", "w"),
        }),
        Response::Bool(true)
    );
}

#[test]
fn long_names_are_stored_listed_and_removed() {
    let mut h = Harness::new();
    let long = |p: &str, n: usize| format!("{p}{}", "x".repeat(n));
    for n in [500, 511, 512, 4096, 70_000] {
        assert_eq!(
            h.run(Command::KvSet {
                entry: entry(&long("k/", n), "v"),
            }),
            Response::Bool(true)
        );
        h.node(&long("n", n));
    }
    let r = h.store.read().unwrap();
    let (_, listed) = r.view().kv_list("k/").unwrap();
    let keys: Vec<usize> = listed.iter().map(|e| e.key.len() - 2).collect();
    assert_eq!(keys, vec![500, 511, 512, 4096, 70_000], "in key order");
    let (_, nodes) = r.view().nodes().unwrap();
    assert_eq!(nodes.len(), 5);
    drop(r);
    h.run(Command::KvDeleteTree {
        prefix: long("k/", 600),
    });
    let deleted_at = h.index;
    let r = h.store.read().unwrap();
    let (_, listed) = r.view().kv_list("k/").unwrap();
    let keys: Vec<usize> = listed.iter().map(|e| e.key.len() - 2).collect();
    assert_eq!(keys, vec![500, 511, 512]);
    // The deleted long keys' tombstones give the long prefix its index.
    let (pidx, gone) = r.view().kv_list(&long("k/", 600)).unwrap();
    assert!(gone.is_empty());
    assert_eq!(pidx, deleted_at);
}
