//! The HMAC-SHA256 signatures of webhooks, as GitHub (`X-Hub-Signature-256`),
//! Flux's generic-hmac provider (`X-Signature`) and the server's own
//! CloudEvents (`X-Signature`) write them: `sha256=<hex>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
