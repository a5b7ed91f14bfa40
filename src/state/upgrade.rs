//! Reading state written by older concord versions: format 1 joined the parts of
//! composite keys with NUL and kept KV keys as they were (see [`super::keys`] for
//! format 2). Records of a format-1 snapshot, or of a format-1 store found at start,
//! are rewritten here one by one.

use super::catalog::instance_ref;
use super::keys;

/// The format this version writes, kept in the `meta` table under [`FORMAT_KEY`].
pub const FORMAT: u32 = 2;
pub const FORMAT_KEY: &[u8] = b"state-format";

/// Rewrites one format-1 record of `table` into format 2.
pub fn record_v1(table: &str, key: Vec<u8>, value: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let joined = |n: usize| {
        let mut out = Vec::with_capacity(key.len() + n);
        for part in keys::split_v1(&key, n) {
            keys::push_part(&mut out, part);
        }
        out
    };
    match table {
        "index" => match key.strip_prefix(b"service.") {
            Some(name) => {
                let mut out = b"service.".to_vec();
                keys::push_part(&mut out, name);
                (out, value)
            }
            None => (key, value),
        },
        "nodes" | "sessions" => (joined(1), value),
        "services" | "checks" | "coordinates" => (joined(2), value),
        "services_by_name" => {
            let parts = keys::split_v1(&key, 3);
            let (node, id) = (parts.get(1), parts.get(2));
            let row = instance_ref(node.map_or(&[][..], |n| n), id.map_or(&[][..], |i| i));
            (joined(3), row)
        }
        "session_checks" => {
            let session = keys::split_v1(&key, 3)
                .get(2)
                .map_or(Vec::new(), |s| s.to_vec());
            (joined(3), session)
        }
        "kv_by_session" => {
            let held = keys::split_v1(&key, 2)
                .get(1)
                .map_or(Vec::new(), |k| k.to_vec());
            (joined(2), held)
        }
        "kv" => (keys::kv(&key).into_owned(), value),
        "tombstones" => {
            let lmdb_key = keys::kv(&key).into_owned();
            let mut grave = value;
            if keys::has_hashed(&lmdb_key) {
                grave.extend_from_slice(&key);
            }
            (lmdb_key, grave)
        }
        _ => (key, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_are_split_and_rows_gain_their_names() {
        let (k, v) = record_v1("services_by_name", b"web\0n1\0web-1".to_vec(), vec![]);
        assert_eq!(k, keys::parts(&["web", "n1", "web-1"]));
        assert_eq!(v, instance_ref(b"n1", b"web-1"));
        let (k, v) = record_v1("kv_by_session", b"sess\0app/a".to_vec(), vec![]);
        assert_eq!((k, v), (keys::parts(&["sess", "app/a"]), b"app/a".to_vec()));
        let (k, v) = record_v1("session_checks", b"n1\0chk\0sess".to_vec(), vec![]);
        assert_eq!(
            (k, v),
            (keys::parts(&["n1", "chk", "sess"]), b"sess".to_vec())
        );
        let (k, _) = record_v1("index", b"service.web".to_vec(), vec![]);
        let mut want = b"service.".to_vec();
        keys::push_part(&mut want, b"web");
        assert_eq!(k, want);
        let (k, _) = record_v1("index", b"kvs".to_vec(), vec![]);
        assert_eq!(k, b"kvs");
        let (k, _) = record_v1("kv", b"app/a".to_vec(), b"{}".to_vec());
        assert_eq!(k, b"app/a");
    }
}
