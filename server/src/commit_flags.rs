//! The flags that say who the server's commits name as committer and
//! what signs them (`--signing-key`, `--committer-name`,
//! `--committer-email`, with their variables), shared by `start` and
//! `import-s3` so both write commits a repository requiring signed
//! commits takes, and the [`CommitIdentity`] they make, checked once.
//!
//! It is wiring: it reads the key file and checks the identity; how a
//! commit is signed is `repo::commits`'.

use std::path::PathBuf;

use crate::repo::commits::{CommitIdentity, CommitSigner};

/// Who commits, and what signs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommitArgs {
    /// SSH private key (ed25519 or ECDSA P-256, no passphrase) that signs
    /// every commit the server makes, in git's SSH signature format.
    #[arg(long, env = "RELEASE_MANAGER_SIGNING_KEY", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Name of the committer of every commit the server makes [default:
    /// the person releasing; for builds and imports, the server's own
    /// name]; needs --committer-email.
    #[arg(
        long,
        env = "RELEASE_MANAGER_COMMITTER_NAME",
        requires = "committer_email"
    )]
    pub committer_name: Option<String>,
    /// Email of the committer of every commit the server makes; needs
    /// --committer-name.
    #[arg(
        long,
        env = "RELEASE_MANAGER_COMMITTER_EMAIL",
        requires = "committer_name"
    )]
    pub committer_email: Option<String>,
}

/// The committer and signing key of `--committer-*` and `--signing-key`.
pub(crate) fn resolve_commits(args: &CommitArgs) -> Result<CommitIdentity, String> {
    let committer = match (&args.committer_name, &args.committer_email) {
        (Some(name), Some(email)) => {
            git2::Signature::now(name, email).map_err(|_| {
                format!("--committer-name {name:?} / --committer-email {email:?} is not a valid git identity")
            })?;
            Some((name.clone(), email.clone()))
        }
        _ => None,
    };
    let signer = match &args.signing_key {
        Some(path) => Some(std::sync::Arc::new(CommitSigner::from_file(path)?)),
        None => None,
    };
    Ok(CommitIdentity { committer, signer })
}
