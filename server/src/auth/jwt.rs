//! JSON Web Tokens as OpenID Connect issuers sign them (RFC 7519, compact
//! JWS): splitting a token, checking its signature against a published key
//! (RS256 or ES256, with `ring`), and its time and audience claims. Nothing
//! here fetches keys or decides who may do what; `oidc` brings the keys and
//! `rules` decides.
//!
//! Every failure names the check that failed and never echoes the token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature;
use serde_json::{Map, Value};

/// Why a token was not accepted. Each message names one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Not three base64url parts with JSON in the first two.
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    /// `alg` is not one the server verifies.
    #[error("the token is signed with {0:?}; accepted algorithms: RS256, ES256")]
    Algorithm(String),
    /// `iss` is missing or names an issuer the server does not trust.
    #[error("the token's issuer {0:?} is not trusted by this server")]
    UntrustedIssuer(String),
    /// The issuer publishes no key with the token's `kid` (and algorithm).
    #[error("the token's signing key {0:?} is not among the issuer's published keys")]
    UnknownKey(String),
    /// The signature does not verify with the issuer's key.
    #[error("the token's signature does not verify with the issuer's key")]
    Signature,
    /// `exp` is past (beyond the leeway), or missing.
    #[error("the token expired at {0} (unix time); sign in again (`hamctl login`)")]
    Expired(i64),
    /// The token has no `exp`.
    #[error("the token has no expiry (exp)")]
    NoExpiry,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid before {0} (unix time)")]
    NotYetValid(i64),
    /// `aud` does not contain the audience this issuer's tokens need.
    #[error("the token is for audience {found}, not {wanted:?}")]
    Audience {
        /// What the token's `aud` says.
        found: String,
        /// What the server expects from this issuer.
        wanted: String,
    },
    /// The issuer's keys could not be fetched.
    #[error("the token's issuer cannot be reached to check it: {0}")]
    IssuerUnavailable(String),
}

impl TokenError {
    /// Whether the failure is the token's age (sign in again) rather than
    /// its validity.
    pub(crate) fn is_expiry(&self) -> bool {
        matches!(self, TokenError::Expired(_) | TokenError::NotYetValid(_))
    }
}

/// A token split into its parts, not verified yet.
#[derive(Debug, Clone)]
pub(crate) struct Unverified {
    /// `alg` of the header.
    pub(crate) alg: String,
    /// `kid` of the header, if any.
    pub(crate) kid: Option<String>,
    /// The claims, as the token states them.
    pub(crate) claims: Map<String, Value>,
    /// `<header>.<payload>`: the signed bytes.
    signed: String,
    /// The decoded signature.
    signature: Vec<u8>,
}

/// Whether `token` has the shape of a compact JWS (three base64url parts),
/// so that a static token is never mistaken for one.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn json_part(part: &str, what: &'static str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed(what)),
    }
}

/// Splits and decodes a compact JWS.
pub(crate) fn split(token: &str) -> Result<Unverified, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("it does not have three parts"));
    };
    let head = json_part(header, "its header is not base64url JSON")?;
    let claims = json_part(payload, "its payload is not base64url JSON")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed("its signature is not base64url"))?;
    let alg = head
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed("its header has no alg"))?
        .to_string();
    Ok(Unverified {
        alg,
        kid: head.get("kid").and_then(Value::as_str).map(str::to_string),
        claims,
        signed: format!("{header}.{payload}"),
        signature,
    })
}

/// One published verification key (a JWK of the issuer's JWKS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    /// `kid`, if the issuer names its keys.
    pub(crate) kid: Option<String>,
    /// The algorithm the key verifies.
    pub(crate) alg: Algorithm,
    /// The public key as `ring` takes it.
    material: KeyMaterial,
}

/// The algorithms the server verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl Algorithm {
    fn of(alg: &str) -> Option<Self> {
        match alg {
            "RS256" => Some(Algorithm::Rs256),
            "ES256" => Some(Algorithm::Es256),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point: 0x04 || x || y.
    EcPoint(Vec<u8>),
}

impl Key {
    /// The keys of a JWKS document that can verify signatures; others
    /// (encryption keys, other curves) are skipped.
    pub(crate) fn from_jwks(jwks: &Value) -> Vec<Key> {
        let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
            return Vec::new();
        };
        keys.iter().filter_map(Key::from_jwk).collect()
    }

    fn from_jwk(jwk: &Value) -> Option<Key> {
        let field = |name: &str| {
            jwk.get(name)
                .and_then(Value::as_str)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        };
        if jwk
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            return None;
        }
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_string);
        let declared = jwk.get("alg").and_then(Value::as_str);
        let (alg, material) = match jwk.get("kty").and_then(Value::as_str)? {
            "RSA" => (
                Algorithm::Rs256,
                KeyMaterial::Rsa {
                    n: field("n")?,
                    e: field("e")?,
                },
            ),
            "EC" if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => {
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = vec![0x04];
                point.extend(x);
                point.extend(y);
                (Algorithm::Es256, KeyMaterial::EcPoint(point))
            }
            _ => return None,
        };
        // A key that declares another algorithm (RS512, say) is not used
        // for this one.
        if declared.is_some_and(|d| Algorithm::of(d) != Some(alg)) {
            return None;
        }
        Some(Key { kid, alg, material })
    }

    fn verifies(&self, signed: &[u8], signature_bytes: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    signed,
                    signature_bytes,
                )
                .is_ok(),
            KeyMaterial::EcPoint(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signed, signature_bytes)
                    .is_ok()
            }
        }
    }
}

impl Unverified {
    /// The algorithm, if the server verifies it.
    pub(crate) fn algorithm(&self) -> Result<Algorithm, TokenError> {
        Algorithm::of(&self.alg).ok_or_else(|| TokenError::Algorithm(self.alg.clone()))
    }

    /// The key among `keys` this token names: by `kid` when it has one,
    /// else the only key of its algorithm. `None`: the keys should be
    /// fetched again.
    pub(crate) fn key_in<'k>(&self, keys: &'k [Key]) -> Option<&'k Key> {
        let alg = self.algorithm().ok()?;
        let mut fitting = keys.iter().filter(|k| k.alg == alg);
        match &self.kid {
            Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let first = fitting.next()?;
                fitting.next().is_none().then_some(first)
            }
        }
    }

    /// Checks the signature with `key`.
    pub(crate) fn verify_signature(&self, key: &Key) -> Result<(), TokenError> {
        if self.algorithm()? != key.alg || !key.verifies(self.signed.as_bytes(), &self.signature) {
            return Err(TokenError::Signature);
        }
        Ok(())
    }

    /// Checks `exp` (required) and `nbf` (if present) at `now`, allowing
    /// `leeway` seconds of clock skew, and that `aud` holds `audience`.
    pub(crate) fn check_claims(
        &self,
        now: i64,
        leeway: i64,
        audience: &str,
    ) -> Result<(), TokenError> {
        let number = |name: &str| self.claims.get(name).and_then(Value::as_f64);
        let exp = number("exp").ok_or(TokenError::NoExpiry)? as i64;
        if now > exp + leeway {
            return Err(TokenError::Expired(exp));
        }
        if let Some(nbf) = number("nbf") {
            if now + leeway < nbf as i64 {
                return Err(TokenError::NotYetValid(nbf as i64));
            }
        }
        let audiences: Vec<&str> = match self.claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&audience) {
            return Err(TokenError::Audience {
                found: if audiences.is_empty() {
                    "none".to_string()
                } else {
                    format!("{audiences:?}")
                },
                wanted: audience.to_string(),
            });
        }
        Ok(())
    }

    /// The `iss` claim.
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A P-256 key pair, its JWKS entry, and a signer of compact JWS.
    fn es256() -> (EcdsaKeyPair, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        (pair, jwk)
    }

    fn sign(pair: &EcdsaKeyPair, header: Value, claims: Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = pair.sign(&SystemRandom::new(), signed.as_bytes()).unwrap();
        format!("{signed}.{}", b64(signature.as_ref()))
    }

    #[test]
    fn a_signed_token_verifies_and_a_changed_one_does_not() {
        let (pair, jwk) = es256();
        let keys = Key::from_jwks(&serde_json::json!({ "keys": [jwk] }));
        let claims = serde_json::json!({"iss": "https://idp", "aud": ["x", "rm"], "exp": 2000});
        let token = sign(
            &pair,
            serde_json::json!({"alg": "ES256", "kid": "k1"}),
            claims,
        );
        assert!(looks_like_jwt(&token));
        let parsed = split(&token).unwrap();
        let key = parsed.key_in(&keys).expect("the key by kid");
        parsed.verify_signature(key).unwrap();
        parsed.check_claims(1000, 60, "rm").unwrap();
        assert_eq!(parsed.issuer(), Some("https://idp"));

        // The payload changed (a group added): the signature fails.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = b64(br#"{"iss":"https://idp","aud":"rm","exp":2000,"groups":["sre"]}"#);
        let forged = split(&parts.join(".")).unwrap();
        assert_eq!(forged.verify_signature(key), Err(TokenError::Signature));
    }

    #[test]
    fn time_and_audience_are_checked_with_leeway() {
        let (pair, _) = es256();
        let token = sign(
            &pair,
            serde_json::json!({"alg": "ES256"}),
            serde_json::json!({"aud": "rm", "exp": 1000, "nbf": 900}),
        );
        let parsed = split(&token).unwrap();
        parsed.check_claims(1050, 60, "rm").unwrap();
        assert_eq!(
            parsed.check_claims(1061, 60, "rm"),
            Err(TokenError::Expired(1000))
        );
        assert_eq!(
            parsed.check_claims(800, 60, "rm"),
            Err(TokenError::NotYetValid(900))
        );
        let wrong = parsed.check_claims(950, 60, "other").unwrap_err();
        assert!(wrong.to_string().contains("\"other\""), "{wrong}");
        let none = split(&sign(
            &pair,
            serde_json::json!({"alg": "ES256"}),
            serde_json::json!({"aud": "rm"}),
        ))
        .unwrap();
        assert_eq!(none.check_claims(0, 60, "rm"), Err(TokenError::NoExpiry));
    }

    #[test]
    fn other_algorithms_and_shapes_are_refused() {
        let unsigned = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(br#"{"exp":1}"#));
        let parsed = split(&unsigned).unwrap();
        assert_eq!(
            parsed.algorithm(),
            Err(TokenError::Algorithm("none".into()))
        );
        assert!(matches!(split("a.b"), Err(TokenError::Malformed(_))));
        assert!(matches!(split("a.b.c"), Err(TokenError::Malformed(_))));
        assert!(!looks_like_jwt("s3cret"));
        assert!(!looks_like_jwt("a,b,c"));
    }

    #[test]
    fn keys_of_other_kinds_are_skipped() {
        let jwks = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "RS512"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r"},
        ]});
        let keys = Key::from_jwks(&jwks);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("r"));
    }
}
