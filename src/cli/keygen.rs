//! `consul keygen`: a new gossip encryption key, 32 random bytes from the
//! operating system in standard base64, ready for `encrypt` or `keyring -install`
//! (Consul's `command/keygen`).

use base64::Engine as _;
use clap::Args;
use rand::TryRngCore as _;

use super::ui::{self, fail};

/// Consul's key length: AES-256.
const KEY_BYTES: usize = 32;

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Go's flag package leaves arguments after the flags to the command, which
    /// ignores them.
    #[arg(hide = true)]
    extra: Vec<String>,
}

pub fn run(_args: &KeygenArgs) -> i32 {
    match new_key() {
        Ok(key) => {
            ui::output(&key);
            0
        }
        Err(e) => fail(format!("Error reading random data: {e}")),
    }
}

fn new_key() -> Result<String, rand::rand_core::OsError> {
    let mut key = [0u8; KEY_BYTES];
    rand::rngs::OsRng.try_fill_bytes(&mut key)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_random_bytes_in_standard_base64() {
        let a = new_key().unwrap();
        let b = new_key().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 44, "{a}");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 32);
    }
}
