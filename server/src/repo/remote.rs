//! Where the config repository lives and how to reach it: a local path or
//! `file://` URL (tests, the demo), SSH with a private key checked against a
//! known_hosts file, or HTTPS with a token. Owns the libgit2 callbacks for
//! credentials and host-key checking.

use std::path::{Path, PathBuf};

use base64::Engine;
use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

/// The published host keys of GitHub, GitLab and Bitbucket, checked when no
/// known_hosts file is given.
pub const SHIPPED_KNOWN_HOSTS: &str = include_str!("known_hosts");

/// How the server authenticates to the remote.
#[derive(Debug, Clone)]
pub struct GitCredentials {
    /// SSH private key file.
    pub ssh_private_key: Option<PathBuf>,
    /// known_hosts file to check SSH host keys against; without it, the
    /// keys in `shipped_known_hosts` (never trusted blindly).
    pub ssh_known_hosts: Option<PathBuf>,
    /// Host keys checked when there is no known_hosts file:
    /// [`SHIPPED_KNOWN_HOSTS`] (tests use a copy with their own host).
    pub shipped_known_hosts: std::borrow::Cow<'static, str>,
    /// Token for HTTPS remotes (sent as the password).
    pub https_token: Option<String>,
}

impl GitCredentials {
    /// The credentials the flags of `start` and `import-s3` name: the SSH
    /// key if the file exists, the known_hosts that goes with it, the
    /// HTTPS token.
    pub(crate) fn from_flags(
        ssh_private_key: &Path,
        ssh_known_hosts: Option<&Path>,
        https_token: Option<String>,
    ) -> Self {
        GitCredentials {
            ssh_private_key: Some(ssh_private_key.to_path_buf()).filter(|p| p.exists()),
            ssh_known_hosts: known_hosts_file(ssh_known_hosts, ssh_private_key),
            https_token,
            ..GitCredentials::default()
        }
    }
}

impl Default for GitCredentials {
    fn default() -> Self {
        GitCredentials {
            ssh_private_key: None,
            ssh_known_hosts: None,
            shipped_known_hosts: std::borrow::Cow::Borrowed(SHIPPED_KNOWN_HOSTS),
            https_token: None,
        }
    }
}

/// The known_hosts file to use: the one named (`--ssh-known-hosts`), else
/// `known_hosts` beside the SSH key (the seed installation's secret folder)
/// when it exists, else none (the shipped keys).
pub(crate) fn known_hosts_file(named: Option<&Path>, ssh_key: &Path) -> Option<PathBuf> {
    if let Some(named) = named {
        return Some(named.to_path_buf());
    }
    let beside = ssh_key.parent()?.join("known_hosts");
    beside.is_file().then_some(beside)
}

/// The config repository's address, classified.
#[derive(Debug, Clone)]
pub enum RemoteLocation {
    /// A repository on this machine's file system.
    Local(PathBuf),
    /// Anything libgit2 reaches over the network (ssh, https).
    Network(String),
}

impl RemoteLocation {
    /// Classifies a `--config-repo` value.
    pub(crate) fn parse(url: &str) -> Self {
        if let Some(path) = url.strip_prefix("file://") {
            return RemoteLocation::Local(PathBuf::from(path));
        }
        let looks_remote = url.contains("://") || (url.contains('@') && url.contains(':'));
        if looks_remote {
            RemoteLocation::Network(url.to_string())
        } else {
            let path = Path::new(url);
            let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
            RemoteLocation::Local(path)
        }
    }

    /// The URL handed to libgit2.
    pub(crate) fn url(&self) -> String {
        match self {
            RemoteLocation::Local(path) => path.display().to_string(),
            RemoteLocation::Network(url) => url.clone(),
        }
    }
}

/// The remote as messages name it: the path, or the URL without a password.
impl std::fmt::Display for RemoteLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteLocation::Local(path) => write!(f, "{}", path.display()),
            RemoteLocation::Network(url) => f.write_str(&without_password(url)),
        }
    }
}

/// `https://user:secret@host/x` (or `https://<token>@host/x`, a form hosts
/// document for tokens) becomes `https://host/x`: the user part of a URL may
/// be a secret, so none of it is shown. An scp-like `git@host:path` has no
/// secret and stays as it is.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((_userinfo, host)) => format!("{scheme}://{host}{path}"),
        None => url.to_string(),
    }
}

/// libgit2 callbacks that offer each credential at most once (libgit2
/// otherwise asks again forever) and check SSH host keys.
pub(crate) fn callbacks(credentials: &GitCredentials) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    let mut tried_ssh_key = false;
    let mut tried_token = false;
    callbacks.credentials(move |_url, username, allowed| {
        if allowed.contains(CredentialType::SSH_KEY) && !tried_ssh_key {
            tried_ssh_key = true;
            if let Some(key) = &credentials.ssh_private_key {
                return Cred::ssh_key(username.unwrap_or("git"), None, key, None);
            }
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) && !tried_token {
            tried_token = true;
            if let Some(token) = &credentials.https_token {
                return Cred::userpass_plaintext(username.unwrap_or("x-access-token"), token);
            }
        }
        Err(git2::Error::from_str(
            "no usable credentials for the config repository",
        ))
    });
    callbacks.certificate_check(move |cert, host| {
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS certificates: let libgit2's own verification decide.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        // libgit2 reports a refusal as "invalid or unknown remote ssh
        // hostkey"; the log says why.
        let Some(key) = hostkey.hostkey() else {
            return Err(git2::Error::from_str("the SSH server sent no host key"));
        };
        let (known, source) = match &credentials.ssh_known_hosts {
            Some(path) => (
                std::borrow::Cow::Owned(std::fs::read_to_string(path).map_err(|e| {
                    git2::Error::from_str(&format!(
                        "cannot read known_hosts file {}: {e}",
                        path.display()
                    ))
                })?),
                path.display().to_string(),
            ),
            None => (
                credentials.shipped_known_hosts.clone(),
                "the shipped list (GitHub, GitLab, Bitbucket)".to_string(),
            ),
        };
        if known_hosts_allows(&known, host, key) {
            Ok(CertificateCheckStatus::CertificateOk)
        } else {
            let hint = "add its key (ssh-keyscan, after checking the fingerprint) to \
                        /etc/release-manager/ssh/known_hosts, or name a file with --ssh-known-hosts";
            tracing::error!(%host, known_hosts = %source, "SSH host key is not known: {hint}");
            Err(git2::Error::from_str(&format!(
                "SSH host key of {host} is not in {source}; {hint}"
            )))
        }
    });
    callbacks
}

/// Whether a known_hosts text lists `key` (raw key bytes) for `host`.
/// Plain host patterns (`host`, `[host]:port`, comma lists) are supported.
pub(crate) fn known_hosts_allows(known_hosts: &str, host: &str, key: &[u8]) -> bool {
    known_hosts.lines().any(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return false;
        }
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(_kind), Some(encoded)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let host_matches = hosts.split(',').any(|pattern| {
            pattern == host
                || pattern
                    .strip_prefix('[')
                    .and_then(|p| p.split_once("]:"))
                    .is_some_and(|(h, _port)| h == host)
        });
        host_matches
            && base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .is_ok_and(|decoded| decoded == key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_locations() {
        assert!(matches!(
            RemoteLocation::parse("file:///tmp/x.git"),
            RemoteLocation::Local(_)
        ));
        assert!(matches!(
            RemoteLocation::parse("/tmp/x.git"),
            RemoteLocation::Local(_)
        ));
        assert!(matches!(
            RemoteLocation::parse("git@github.com:acme/config.git"),
            RemoteLocation::Network(_)
        ));
        assert!(matches!(
            RemoteLocation::parse("ssh://git@host/config.git"),
            RemoteLocation::Network(_)
        ));
    }

    #[test]
    fn passwords_never_show() {
        let shown = RemoteLocation::Network("https://x:s3cret@git.example.com/a/b.git".into());
        assert_eq!(shown.to_string(), "https://git.example.com/a/b.git");
        let token = RemoteLocation::Network("https://ghp_s3cret@github.com/acme/c.git".into());
        assert_eq!(token.to_string(), "https://github.com/acme/c.git");
        let ssh = RemoteLocation::Network("git@github.com:acme/config.git".into());
        assert_eq!(ssh.to_string(), "git@github.com:acme/config.git");
    }

    #[test]
    fn known_hosts_matching() {
        let key = b"fake-key-bytes";
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        let text = format!("# comment\nother.example {encoded}\ngithub.com,gh ssh-ed25519 {encoded}\n[git.local]:2222 ssh-ed25519 {encoded}\n");
        assert!(known_hosts_allows(&text, "github.com", key));
        assert!(known_hosts_allows(&text, "git.local", key));
        assert!(!known_hosts_allows(&text, "github.com", b"other"));
        assert!(!known_hosts_allows(&text, "evil.example", key));
    }
}
