//! How the server writes its commits: with the committer it was told to use
//! (`--committer-name`, `--committer-email`), and signed with its SSH key
//! (`--signing-key`) in git's SSH signature format — the commit's bytes
//! signed with namespace `git` and SHA-512, armored as `-----BEGIN SSH
//! SIGNATURE-----` in the `gpgsig` header — which `git verify-commit`
//! checks with `gpg.format=ssh` and an allowed-signers file, and which
//! hosts such as GitHub show as verified once the public key is registered
//! as a signing key.
//!
//! Every commit of every flow goes through [`write_commit`]; nothing else
//! here decides who the author is.

use std::path::Path;
use std::sync::Arc;

use git2::{Oid, Repository};
use ssh_key::{HashAlg, LineEnding, PrivateKey};

/// A private SSH key (ed25519 or ECDSA P-256) that signs commits.
pub struct CommitSigner {
    key: PrivateKey,
}

impl std::fmt::Debug for CommitSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommitSigner({})", self.public_key())
    }
}

impl CommitSigner {
    /// Reads an unencrypted OpenSSH private key (`ssh-keygen -t ed25519 -N
    /// ''`); the error says what is wrong with it.
    pub fn from_file(path: &Path) -> Result<CommitSigner, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the signing key {}: {e}", path.display()))?;
        CommitSigner::from_openssh(&text)
            .map_err(|e| format!("signing key {}: {e}", path.display()))
    }

    /// Reads an OpenSSH private key from its text.
    pub fn from_openssh(text: &str) -> Result<CommitSigner, String> {
        let key = PrivateKey::from_openssh(text).map_err(|e| {
            format!("not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----): {e}")
        })?;
        if key.is_encrypted() {
            return Err(
                "the key is protected by a passphrase; the server needs one without (ssh-keygen -p -N '')"
                    .into(),
            );
        }
        let signer = CommitSigner { key };
        // A key type this build cannot sign with is refused at start, not
        // at the first commit.
        signer
            .sign(b"release manager signing key check")
            .map_err(|e| {
                format!(
                    "cannot sign with a {} key: {e} (use ed25519 or ecdsa-sha2-nistp256)",
                    signer.key.algorithm()
                )
            })?;
        Ok(signer)
    }

    /// The public key, as an allowed-signers file or GitHub's "New SSH key
    /// (signing key)" takes it.
    pub fn public_key(&self) -> String {
        self.key
            .public_key()
            .to_openssh()
            .unwrap_or_else(|_| "<unprintable key>".into())
    }

    /// The armored SSH signature of `payload`, as git writes it.
    fn sign(&self, payload: &[u8]) -> Result<String, String> {
        self.key
            .sign("git", HashAlg::Sha512, payload)
            .and_then(|signature| signature.to_pem(LineEnding::LF))
            .map_err(|e| e.to_string())
    }
}

/// Who the server's commits name as committer, and what signs them.
#[derive(Debug, Clone, Default)]
pub struct CommitIdentity {
    /// The committer of every commit (name, email); `None`: the person
    /// releasing (or the server's own name for builds and auto-releases).
    pub committer: Option<(String, String)>,
    /// The key that signs every commit; `None`: unsigned.
    pub signer: Option<Arc<CommitSigner>>,
}

impl CommitIdentity {
    /// Whether every commit has the configured committer (then the person
    /// releasing is the author).
    pub(crate) fn fixed_committer(&self) -> bool {
        self.committer.is_some()
    }
}

/// Writes a commit into the object database (no ref moves): `committer`
/// is replaced by the configured one if there is one, and the commit is
/// signed if a key is configured.
pub(crate) fn write_commit(
    repo: &Repository,
    identity: &CommitIdentity,
    author: &git2::Signature<'_>,
    committer: &git2::Signature<'_>,
    message: &str,
    tree: &git2::Tree<'_>,
    parents: &[&git2::Commit<'_>],
) -> Result<Oid, git2::Error> {
    let configured = match &identity.committer {
        Some((name, email)) => Some(git2::Signature::new(name, email, &committer.when())?),
        None => None,
    };
    let committer = configured.as_ref().unwrap_or(committer);
    let Some(signer) = &identity.signer else {
        return repo.commit(None, author, committer, message, tree, parents);
    };
    let buffer = repo.commit_create_buffer(author, committer, message, tree, parents)?;
    let content = std::str::from_utf8(&buffer)
        .map_err(|_| git2::Error::from_str("the commit is not UTF-8 and cannot be signed"))?;
    let signature = signer
        .sign(&buffer)
        .map_err(|e| git2::Error::from_str(&format!("cannot sign the commit: {e}")))?;
    repo.commit_signed(content, &signature, Some("gpgsig"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ed25519 key made by `ssh-keygen -t ed25519 -N '' -C test`, for
    /// tests only.
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDDYN+gsCnaedR2Y3znDKTzqjL95qiH/3fLaToq4Zx/GAAAAJB+3Hx0ftx8
dAAAAAtzc2gtZWQyNTUxOQAAACDDYN+gsCnaedR2Y3znDKTzqjL95qiH/3fLaToq4Zx/GA
AAAEA2h4lR+BO+HO3zV+SCheP2n5EEmcOlN1wl9DgPPzZW+MNg36CwKdp51HZjfOcMpPOq
Mv3mqIf/d8tpOirhnH8YAAAAB3Rlc3RrZXkBAgMEBQY=
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn a_signed_commit_carries_an_ssh_signature_over_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let signer = Arc::new(CommitSigner::from_openssh(KEY).unwrap());
        assert!(signer.public_key().starts_with("ssh-ed25519 "));
        let identity = CommitIdentity {
            committer: Some(("Release Bot".into(), "bot@example.com".into())),
            signer: Some(signer.clone()),
        };
        let person = git2::Signature::now("Dana", "dana@example.com").unwrap();
        let oid = write_commit(&repo, &identity, &person, &person, "title\n", &tree, &[]).unwrap();
        let commit = repo.find_commit(oid).unwrap();
        assert_eq!(commit.committer().email(), Some("bot@example.com"));
        assert_eq!(commit.author().email(), Some("dana@example.com"));
        let (signature, signed) = repo.extract_signature(&oid, None).unwrap();
        let signature = std::str::from_utf8(&signature).unwrap();
        assert!(
            signature.starts_with("-----BEGIN SSH SIGNATURE-----"),
            "{signature}"
        );
        let parsed: ssh_key::SshSig = signature.parse().unwrap();
        signer
            .key
            .public_key()
            .verify("git", &signed, &parsed)
            .expect("the signature is over the commit's content");
        assert!(signer
            .key
            .public_key()
            .verify("git", b"other", &parsed)
            .is_err());
    }

    #[test]
    fn unsigned_without_a_key_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let person = git2::Signature::now("Dana", "dana@example.com").unwrap();
        let oid = write_commit(
            &repo,
            &CommitIdentity::default(),
            &person,
            &person,
            "t\n",
            &tree,
            &[],
        )
        .unwrap();
        assert!(repo.extract_signature(&oid, None).is_err());
        assert_eq!(
            repo.find_commit(oid).unwrap().committer().name(),
            Some("Dana")
        );
        let error = CommitSigner::from_openssh("not a key").unwrap_err();
        assert!(error.contains("OPENSSH PRIVATE KEY"), "{error}");
    }
}
