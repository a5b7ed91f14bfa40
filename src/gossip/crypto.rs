//! Packet encryption: the in-memory keyring and the envelope every UDP packet and TCP frame
//! travels in.
//!
//! Envelope: one version byte, then the body. `0` = plaintext body. `1` = AES-GCM: a random
//! 12-byte nonce, then ciphertext with its 16-byte tag, sealed with the primary key. The key
//! size picks AES-128/192/256, as memberlist's keyring does. Receivers try every installed
//! key, so a key rotation (install, use, remove) never drops traffic. A pool with a keyring
//! refuses plaintext envelopes and a pool without one refuses encrypted ones: mixing the two
//! would let an unauthenticated member in.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};

type Aes192Gcm = AesGcm<Aes192, U12>;

const PLAIN: u8 = 0;
const AES_GCM: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why an incoming envelope was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("empty packet")]
    Empty,
    #[error("unencrypted packet refused: encryption is enabled on this member")]
    PlainRefused,
    #[error("encrypted packet refused: encryption is not enabled on this member")]
    EncryptedRefused,
    #[error("unknown envelope version {0}")]
    UnknownVersion(u8),
    #[error("encrypted packet too small to decrypt")]
    TooSmall,
    #[error("no installed keys could decrypt the message")]
    NoKey,
}

/// Checks a raw key the way memberlist does.
pub fn validate_key(key: &[u8]) -> Result<(), String> {
    match key.len() {
        16 | 24 | 32 => Ok(()),
        _ => Err("key size must be 16, 24 or 32 bytes".to_string()),
    }
}

/// The installed keys, primary first. An empty keyring means encryption is disabled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Vec<u8>>,
}

impl Keyring {
    /// A keyring holding `keys`, the first one primary. Every key is validated.
    pub fn new(keys: Vec<Vec<u8>>) -> Result<Keyring, String> {
        for k in &keys {
            validate_key(k)?;
        }
        let mut ring = Keyring { keys: Vec::new() };
        for k in keys {
            if !ring.keys.contains(&k) {
                ring.keys.push(k);
            }
        }
        Ok(ring)
    }

    /// Whether packets are encrypted at all.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Installed keys, primary first.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// The key new packets are sealed with.
    pub fn primary(&self) -> Option<&[u8]> {
        self.keys.first().map(Vec::as_slice)
    }

    /// Adds a key as a secondary (no-op if present). Texts follow memberlist's keyring.
    pub fn add(&mut self, key: &[u8]) -> Result<(), String> {
        validate_key(key)?;
        if !self.keys.iter().any(|k| k == key) {
            self.keys.push(key.to_vec());
        }
        Ok(())
    }

    /// Makes an installed key the primary one.
    pub fn use_key(&mut self, key: &[u8]) -> Result<(), String> {
        let pos = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or_else(|| "Requested key is not in the keyring".to_string())?;
        let k = self.keys.remove(pos);
        self.keys.insert(0, k);
        Ok(())
    }

    /// Removes a secondary key; removing the primary is refused (traffic would stop).
    pub fn remove(&mut self, key: &[u8]) -> Result<(), String> {
        if self.primary() == Some(key) {
            return Err("Removing the primary key is not allowed".to_string());
        }
        self.keys.retain(|k| k != key);
        Ok(())
    }

    /// Wraps `body` in an envelope: sealed with the primary key, or plaintext when
    /// encryption is disabled.
    pub fn seal(&self, body: &[u8]) -> Vec<u8> {
        let Some(key) = self.primary() else {
            let mut out = Vec::with_capacity(body.len() + 1);
            out.push(PLAIN);
            out.extend_from_slice(body);
            return out;
        };
        let nonce: [u8; NONCE_LEN] = rand::random();
        // Keys are validated on the way in, so neither construction nor sealing can fail.
        let sealed = aead_encrypt(key, &nonce, body).expect("validated AES-GCM key seals");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(AES_GCM);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens an envelope, trying every installed key.
    pub fn open(&self, packet: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (&version, rest) = packet.split_first().ok_or(CryptoError::Empty)?;
        match (version, self.enabled()) {
            (PLAIN, false) => Ok(rest.to_vec()),
            (PLAIN, true) => Err(CryptoError::PlainRefused),
            (AES_GCM, false) => Err(CryptoError::EncryptedRefused),
            (AES_GCM, true) => {
                if rest.len() < NONCE_LEN + TAG_LEN {
                    return Err(CryptoError::TooSmall);
                }
                let (nonce, sealed) = rest.split_at(NONCE_LEN);
                let nonce: &[u8; NONCE_LEN] = nonce.try_into().expect("split at nonce length");
                self.keys
                    .iter()
                    .find_map(|k| aead_decrypt(k, nonce, sealed))
                    .ok_or(CryptoError::NoKey)
            }
            (v, _) => Err(CryptoError::UnknownVersion(v)),
        }
    }
}

fn aead_encrypt(key: &[u8], nonce: &[u8; NONCE_LEN], body: &[u8]) -> Option<Vec<u8>> {
    let nonce = (*nonce).into();
    match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .ok()?
            .encrypt(&nonce, body)
            .ok(),
        24 => Aes192Gcm::new_from_slice(key)
            .ok()?
            .encrypt(&nonce, body)
            .ok(),
        32 => Aes256Gcm::new_from_slice(key)
            .ok()?
            .encrypt(&nonce, body)
            .ok(),
        _ => None,
    }
}

fn aead_decrypt(key: &[u8], nonce: &[u8; NONCE_LEN], sealed: &[u8]) -> Option<Vec<u8>> {
    let nonce = (*nonce).into();
    match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .ok()?
            .decrypt(&nonce, sealed)
            .ok(),
        24 => Aes192Gcm::new_from_slice(key)
            .ok()?
            .decrypt(&nonce, sealed)
            .ok(),
        32 => Aes256Gcm::new_from_slice(key)
            .ok()?
            .decrypt(&nonce, sealed)
            .ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_for_every_key_size() {
        for len in [16, 24, 32] {
            let ring = Keyring::new(vec![vec![7u8; len]]).unwrap();
            let packet = ring.seal(b"hello");
            assert_eq!(packet[0], AES_GCM);
            assert_eq!(ring.open(&packet).unwrap(), b"hello");
        }
    }

    #[test]
    fn wrong_key_plain_and_mixed_are_refused() {
        let a = Keyring::new(vec![vec![1u8; 16]]).unwrap();
        let b = Keyring::new(vec![vec![2u8; 16]]).unwrap();
        let plain = Keyring::default();
        assert_eq!(b.open(&a.seal(b"x")), Err(CryptoError::NoKey));
        assert_eq!(a.open(&plain.seal(b"x")), Err(CryptoError::PlainRefused));
        assert_eq!(
            plain.open(&a.seal(b"x")),
            Err(CryptoError::EncryptedRefused)
        );
        assert_eq!(plain.open(&plain.seal(b"x")).unwrap(), b"x");
    }

    #[test]
    fn secondary_keys_decrypt_and_primary_cannot_be_removed() {
        let old = vec![1u8; 16];
        let new = vec![2u8; 32];
        let mut ring = Keyring::new(vec![old.clone()]).unwrap();
        let sender = Keyring::new(vec![new.clone()]).unwrap();
        ring.add(&new).unwrap();
        assert_eq!(ring.open(&sender.seal(b"rotated")).unwrap(), b"rotated");
        assert_eq!(
            ring.remove(&old).unwrap_err(),
            "Removing the primary key is not allowed"
        );
        ring.use_key(&new).unwrap();
        ring.remove(&old).unwrap();
        assert_eq!(ring.keys(), &[new]);
        assert_eq!(
            ring.use_key(&old).unwrap_err(),
            "Requested key is not in the keyring"
        );
        assert_eq!(
            ring.add(&[0u8; 5]).unwrap_err(),
            "key size must be 16, 24 or 32 bytes"
        );
    }
}
