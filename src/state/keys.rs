//! How names become LMDB keys.
//!
//! LMDB refuses keys over 511 bytes, while Consul puts no such limit on KV keys, node
//! names or service and check IDs; and composite keys (node + service ID, ...) must
//! never let two different name tuples meet on one key. Two encodings serve that:
//!
//! - **Parts** of composite keys are prefix-free, so any concatenation of them is
//!   injective. A name of at most [`MAX_PLAIN_PART`] bytes without a NUL or 0xFF byte
//!   is written as itself followed by NUL. Any other name is written as its bytes up
//!   to the first NUL or 0xFF (at most `MAX_PLAIN_PART` of them), then 0xFF, then the
//!   SHA-256 of the whole name. Three parts of the longest form still fit LMDB.
//! - **KV keys** (whole-key tables scanned by arbitrary string prefixes) are written as
//!   themselves up to [`MAX_PLAIN_KV`] bytes; a longer key is its first `MAX_PLAIN_KV`
//!   bytes, then 0xFF, then its SHA-256. Keys are UTF-8 strings, which never contain
//!   0xFF, so the two forms cannot meet, and a string prefix of up to `MAX_PLAIN_KV`
//!   bytes still selects exactly the keys that start with it.
//!
//! Both forms keep LMDB's byte order for ordinary names. Hashed names sort among the
//! names that share their kept bytes, so a scan that meets one (see [`has_hashed`])
//! sorts its rows by the full names they carry.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// Longest name kept as itself in a composite key.
pub const MAX_PLAIN_PART: usize = 128;

/// Longest KV key kept as itself.
pub const MAX_PLAIN_KV: usize = 400;

const END: u8 = 0x00;
const HASHED: u8 = 0xFF;

/// Appends one part of a composite key.
pub fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    let plain = part
        .iter()
        .position(|b| *b == END || *b == HASHED)
        .unwrap_or(part.len());
    if plain == part.len() && part.len() <= MAX_PLAIN_PART {
        out.extend_from_slice(part);
        out.push(END);
    } else {
        out.extend_from_slice(&part[..plain.min(MAX_PLAIN_PART)]);
        out.push(HASHED);
        out.extend_from_slice(&Sha256::digest(part));
    }
}

/// The key of a tuple of names; also the prefix that selects every longer tuple
/// starting with them.
pub fn parts(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for p in parts {
        push_part(&mut out, p.as_bytes());
    }
    out
}

/// The key of one KV entry (also used by the KV tombstones).
pub fn kv<K: AsRef<[u8]> + ?Sized>(key: &K) -> Cow<'_, [u8]> {
    let bytes = key.as_ref();
    if bytes.len() <= MAX_PLAIN_KV {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(MAX_PLAIN_KV + 1 + 32);
    out.extend_from_slice(&bytes[..MAX_PLAIN_KV]);
    out.push(HASHED);
    out.extend_from_slice(&Sha256::digest(bytes));
    Cow::Owned(out)
}

/// How to scan the KV keys that start with a string `prefix`: the LMDB prefix to
/// iterate, and whether the rows found must still be checked against `prefix`
/// (a prefix longer than what long keys keep of themselves).
pub fn kv_scan(prefix: &str) -> (Cow<'_, [u8]>, bool) {
    let bytes = prefix.as_bytes();
    if bytes.len() <= MAX_PLAIN_KV {
        return (Cow::Borrowed(bytes), false);
    }
    let mut out = bytes[..MAX_PLAIN_KV].to_vec();
    out.push(HASHED);
    (Cow::Owned(out), true)
}

/// Whether an encoded key holds a hashed name (so its scan order is not the names').
pub fn has_hashed(key: &[u8]) -> bool {
    key.contains(&HASHED)
}

/// Splits a key written by format 1 of the store (parts joined by NUL) into
/// `n` parts; the last part keeps any further NULs.
pub fn split_v1(key: &[u8], n: usize) -> Vec<&[u8]> {
    key.splitn(n, |b| *b == END).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_parts_keep_their_bytes_and_order() {
        assert_eq!(parts(&["web", "a"]), b"web\0a\0");
        let mut names = ["b", "a", "ab", "a-b", "aa"];
        let mut keys: Vec<Vec<u8>> = names.iter().map(|n| parts(&[n, "x"])).collect();
        keys.sort();
        names.sort();
        let sorted: Vec<Vec<u8>> = names.iter().map(|n| parts(&[n, "x"])).collect();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn tuples_never_collide() {
        // The NUL-joined layout made ("a", "\0evil") and ("a\0", "evil")-like tuples meet.
        let cases: [&[&str]; 6] = [
            &["a", "evil"],
            &["a\0evil", ""],
            &["a", "\0evil"],
            &["a\0", "evil"],
            &["a\u{ff}", "evil"],
            &["a", "evil\0"],
        ];
        let keys: Vec<Vec<u8>> = cases.iter().map(|c| parts(c)).collect();
        for i in 0..keys.len() {
            for j in 0..keys.len() {
                if i != j {
                    assert_ne!(keys[i], keys[j], "{:?} vs {:?}", cases[i], cases[j]);
                    assert!(
                        !keys[j].starts_with(&keys[i]),
                        "{:?} {:?}",
                        cases[i],
                        cases[j]
                    );
                }
            }
        }
        // A node's prefix never selects another node's rows.
        assert!(!parts(&["a\0evil", "svc"]).starts_with(&parts(&["a"])));
    }

    #[test]
    fn long_names_fit_lmdb() {
        let long = "n".repeat(512 * 1024);
        let k = parts(&[&long, &long, &long]);
        assert!(k.len() <= 511, "{}", k.len());
        assert_ne!(parts(&[&long]), parts(&[&format!("{long}x")]));
        assert!(kv(&long).len() <= 511);
        assert!(has_hashed(&kv(&long)));
        assert!(!has_hashed(&kv("short")));
    }

    #[test]
    fn kv_prefixes_select_long_keys() {
        let long = format!("app/{}", "k".repeat(1000));
        let key = kv(&long);
        let (scan, check) = kv_scan("app/");
        assert!(key.starts_with(&scan) && !check);
        let (scan, check) = kv_scan(&long[..700]);
        assert!(key.starts_with(&scan) && check);
        let other = "x".repeat(700);
        let (scan, _) = kv_scan(&other);
        assert!(!key.starts_with(&scan));
    }
}
