//! Which token a call carries, and the sign-ins hamctl keeps.
//!
//! A token given with `--auth-token` / `HAMCTL_AUTH_TOKEN` wins (the first
//! of a comma-separated list, so that a list shared with the server works).
//! Otherwise the sign-in of `hamctl login` for this server is used: its ID
//! token while it is valid, else a fresh one got with its refresh token
//! (and stored again). The sign-ins live one file per server under the
//! user's config directory (`$HAMCTL_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/hamctl`, else `~/.config/hamctl`), in `tokens/`,
//! readable by the user only (0600, in a 0700 folder).
//!
//! It must not talk to the server; `sign_in` talks to the identity
//! provider when a refresh is due.

use std::io::Write;
use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::sign_in;

/// A token is refreshed this long before it expires, so that it does not
/// expire on its way to the server.
const REFRESH_MARGIN_SECONDS: i64 = 30;

/// One server's sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The server it is for.
    pub(crate) server: String,
    /// The issuer and client it came from.
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    /// Where it is refreshed.
    pub(crate) token_endpoint: String,
    /// The bearer token.
    pub(crate) id_token: String,
    /// What renews it, if the issuer gave one.
    pub(crate) refresh_token: Option<String>,
}

impl Stored {
    fn to_json(&self) -> Value {
        json!({
            "server": self.server,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "token_endpoint": self.token_endpoint,
            "id_token": self.id_token,
            "refresh_token": self.refresh_token,
        })
    }

    fn from_json(value: &Value) -> Option<Stored> {
        let text = |name: &str| value.get(name)?.as_str().map(str::to_string);
        Some(Stored {
            server: text("server")?,
            issuer: text("issuer")?,
            client_id: text("client_id")?,
            token_endpoint: text("token_endpoint")?,
            id_token: text("id_token")?,
            refresh_token: text("refresh_token"),
        })
    }
}

/// When a JWT expires (its `exp`), read without verifying it: the server
/// verifies; hamctl only decides when to refresh.
pub(crate) fn expiry_of(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("exp")?.as_f64().map(|exp| exp as i64)
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The folder hamctl keeps its sign-ins in.
fn config_dir() -> Result<PathBuf, CliError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HAMCTL_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("hamctl"));
    }
    if let Some(home) = var("HOME") {
        return Ok(PathBuf::from(home).join(".config").join("hamctl"));
    }
    Err(CliError::Credentials(
        "cannot tell where to keep the sign-in: set HOME or HAMCTL_CONFIG_DIR".into(),
    ))
}

/// The file of `server`'s sign-in: its host and port to be recognisable,
/// a hash of the whole URL to be unique.
pub(crate) fn path_for(server: &str) -> Result<PathBuf, CliError> {
    let readable: String = server
        .split("://")
        .last()
        .unwrap_or(server)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let hash = hex::encode(&Sha256::digest(server.as_bytes())[..6]);
    Ok(config_dir()?
        .join("tokens")
        .join(format!("{readable}-{hash}.json")))
}

/// The sign-in kept for `server`, if any (none where there is no config
/// directory to keep one in).
pub(crate) fn load(server: &str) -> Result<Option<Stored>, CliError> {
    let Ok(path) = path_for(server) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::Credentials(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    Ok(serde_json::from_str::<Value>(&text)
        .ok()
        .as_ref()
        .and_then(Stored::from_json)
        .filter(|stored| stored.server == server))
}

/// Keeps `stored`, readable by the user only; where.
pub(crate) fn save(stored: &Stored) -> Result<PathBuf, CliError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = path_for(&stored.server)?;
    let failed = |what: &str, e: std::io::Error| {
        CliError::Credentials(format!("cannot {what} {}: {e}", path.display()))
    };
    let dir = path.parent().expect("the file is in tokens/");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| failed("create the folder of", e))?;
    // Written aside and renamed, so that a crash never leaves half a file,
    // and created 0600, so that the token is never readable by others.
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| failed("write", e))?;
    file.write_all(format!("{:#}\n", stored.to_json()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| failed("write", e))?;
    std::fs::rename(&temporary, &path).map_err(|e| failed("write", e))?;
    Ok(path)
}

/// Forgets `server`'s sign-in; whether there was one.
pub(crate) fn forget(server: &str) -> Result<bool, CliError> {
    let path = path_for(server)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::Credentials(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}

/// The token the global flags give: the first of a comma-separated list.
pub(crate) fn given_token(global: &GlobalArgs) -> Option<&str> {
    global
        .auth_token
        .as_deref()
        .and_then(|list| list.split(',').map(str::trim).find(|t| !t.is_empty()))
}

/// The token a call to the server carries: the given one, else this
/// server's sign-in (refreshed when it is about to expire); empty when
/// there is neither.
pub(crate) async fn token(global: &GlobalArgs) -> Result<String, CliError> {
    if let Some(token) = given_token(global) {
        return Ok(token.to_string());
    }
    let Some(mut stored) = load(&global.server)? else {
        return Ok(String::new());
    };
    let fresh = expiry_of(&stored.id_token).is_some_and(|exp| exp - REFRESH_MARGIN_SECONDS > now());
    if fresh {
        return Ok(stored.id_token);
    }
    let expired = || CliError::SignInExpired {
        server: global.server.clone(),
    };
    let Some(refresh_token) = stored.refresh_token.clone() else {
        return Err(expired());
    };
    let tokens = sign_in::refresh(&stored.token_endpoint, &stored.client_id, &refresh_token)
        .await
        .map_err(|_| expired())?;
    stored.id_token = tokens.id_token;
    if tokens.refresh_token.is_some() {
        stored.refresh_token = tokens.refresh_token;
    }
    save(&stored)?;
    Ok(stored.id_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_is_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp": 1700000000, "sub": "x"}"#);
        assert_eq!(
            expiry_of(&format!("eyJ.{payload}.sig")),
            Some(1_700_000_000)
        );
        assert_eq!(expiry_of("opaque"), None);
    }

    #[test]
    fn sign_ins_round_trip_as_json() {
        let stored = Stored {
            server: "http://h:1".into(),
            issuer: "https://idp".into(),
            client_id: "hamctl".into(),
            token_endpoint: "https://idp/token".into(),
            id_token: "a.b.c".into(),
            refresh_token: None,
        };
        assert_eq!(Stored::from_json(&stored.to_json()), Some(stored));
    }
}
