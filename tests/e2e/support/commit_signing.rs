//! Commit signatures as git checks them: a fresh SSH signing key made by
//! ssh-keygen, and `git verify-commit` against an allowed-signers file
//! (git's SSH signature format, as the server's `--signing-key` writes).

use std::path::{Path, PathBuf};
use std::process::Output;

use super::git::git_output;

/// A fresh ed25519 key pair made by ssh-keygen in `dir`; the private key's
/// path and the public key's line.
pub fn signing_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("signing-key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "release-bot", "-f"])
        .arg(&key)
        .env_clear()
        .output()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(made.status.success(), "{made:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

/// `git verify-commit` of `commit` in `repo`, trusting `allowed_signers`.
pub fn verify_commit(repo: &Path, allowed_signers: &Path, commit: &str) -> Output {
    git_output(
        repo,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", allowed_signers.display()),
            "verify-commit",
            "--verbose",
            commit,
        ],
    )
}
