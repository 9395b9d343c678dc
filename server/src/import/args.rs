//! The flags of `release-manager import-s3` and the configuration they
//! make, with AWS's variables (credentials, region, endpoint) and the
//! original release manager's `CONFIG_REPO`, read from an injected lookup
//! so tests give their own; the committer and signing key are read as
//! `start` reads them (`commit_flags`).

use std::path::PathBuf;

use crate::commit_flags::{resolve_commits, CommitArgs};
use crate::repo::remote::{GitCredentials, RemoteLocation};

/// Flags of `release-manager import-s3`. AWS credentials come from
/// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportS3Args {
    /// The bucket the original release manager stored builds in (its
    /// --s3-artifact-storage-bucket-name).
    #[arg(long, alias = "s3-artifact-storage-bucket-name", value_name = "NAME")]
    pub bucket: String,
    /// Only the builds of this service.
    #[arg(long)]
    pub service: Option<String>,
    /// The bucket's region [default: AWS_REGION, else AWS_DEFAULT_REGION,
    /// else eu-west-1, where the original looked].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// An S3-compatible endpoint (MinIO, ...), addressed path-style
    /// [default: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// List what would be imported; commit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The config repository (as for `start`; CONFIG_REPO is read too).
    #[arg(long, env = "RELEASE_MANAGER_CONFIG_REPO")]
    pub config_repo: Option<String>,
    /// Its branch [default: the remote's HEAD].
    #[arg(long, env = "RELEASE_MANAGER_CONFIG_BRANCH")]
    pub config_branch: Option<String>,
    /// Where the import keeps its mirror (`import.git` below it).
    #[arg(
        long,
        env = "RELEASE_MANAGER_DATA_DIR",
        default_value = ".release-manager-data"
    )]
    pub data_dir: PathBuf,
    /// The environments: the folders of a build that are imported.
    #[arg(
        long,
        env = "RELEASE_MANAGER_ENVIRONMENTS",
        value_delimiter = ',',
        default_value = "dev,staging,prod"
    )]
    pub environments: Vec<String>,
    /// SSH private key for ssh remotes.
    #[arg(
        long,
        env = "RELEASE_MANAGER_SSH_PRIVATE_KEY",
        default_value = "/etc/release-manager/ssh/identity"
    )]
    pub ssh_private_key: PathBuf,
    /// known_hosts file for SSH host keys (as for `start`).
    #[arg(long, env = "RELEASE_MANAGER_SSH_KNOWN_HOSTS")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Token for https remotes.
    #[arg(long, env = "RELEASE_MANAGER_GIT_HTTPS_TOKEN", hide_env_values = true)]
    pub git_https_token: Option<String>,
    /// Who commits the imported builds and what signs them, as for
    /// `start` (a repository that requires signed commits needs
    /// --signing-key) [default committer: "Release Manager (import)",
    /// unsigned].
    #[command(flatten)]
    pub commits: CommitArgs,
}

/// The import's configuration from its flags and the environment `env`
/// (AWS's variables, the original's CONFIG_REPO).
pub fn resolve_import(
    args: &ImportS3Args,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<super::ImportConfig, String> {
    for environment in &args.environments {
        release_manager::names::check_environment(environment).map_err(|e| e.to_string())?;
    }
    let set = |key: &str| env(key).filter(|v| !v.trim().is_empty());
    let config_repo = args
        .config_repo
        .clone()
        .or_else(|| set(crate::original::CONFIG_REPO_VARIABLE))
        .filter(|v| !v.trim().is_empty())
        .ok_or("no config repository: give --config-repo (or RELEASE_MANAGER_CONFIG_REPO)")?;
    let access_key_id = set("AWS_ACCESS_KEY_ID")
        .ok_or("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)")?;
    let secret_access_key = set("AWS_SECRET_ACCESS_KEY")
        .ok_or("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")?;
    let service = args.service.clone().unwrap_or_default();
    if !service.is_empty() {
        release_manager::names::check_service(&service).map_err(|e| e.to_string())?;
    }
    let commits = resolve_commits(&args.commits)?;
    Ok(super::ImportConfig {
        config_repo: RemoteLocation::parse(config_repo.trim()),
        config_branch: args.config_branch.clone(),
        mirror_dir: args.data_dir.join("import.git"),
        credentials: GitCredentials::from_flags(
            &args.ssh_private_key,
            args.ssh_known_hosts.as_deref(),
            args.git_https_token.clone(),
        ),
        environments: args.environments.clone(),
        bucket: super::ImportBucket {
            name: args.bucket.clone(),
            region: args
                .region
                .clone()
                .or_else(|| set("AWS_REGION"))
                .or_else(|| set("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "eu-west-1".to_string()),
            endpoint: args
                .endpoint
                .clone()
                .or_else(|| set("AWS_ENDPOINT_URL_S3"))
                .or_else(|| set("AWS_ENDPOINT_URL")),
            access_key_id,
            secret_access_key,
            session_token: set("AWS_SESSION_TOKEN"),
        },
        prefix: if service.is_empty() {
            String::new()
        } else {
            format!("{service}/")
        },
        dry_run: args.dry_run,
        commits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: ImportS3Args,
    }

    fn args(extra: &[&str]) -> ImportS3Args {
        let mut argv = vec!["import-s3"];
        argv.extend_from_slice(extra);
        Command::try_parse_from(argv).expect("parses").args
    }

    #[test]
    fn aws_settings_come_from_the_usual_variables() {
        let env = |key: &str| match key {
            "AWS_ACCESS_KEY_ID" => Some("AKIA".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            "AWS_DEFAULT_REGION" => Some("eu-central-1".to_string()),
            "CONFIG_REPO" => Some("git@github.com:acme/k8s.git".to_string()),
            _ => None,
        };
        let config = resolve_import(
            &args(&[
                "--s3-artifact-storage-bucket-name",
                "b",
                "--service",
                "shop",
            ]),
            &env,
        )
        .unwrap();
        assert_eq!(config.bucket.name, "b");
        assert_eq!(config.bucket.region, "eu-central-1");
        assert_eq!(config.bucket.endpoint, None);
        assert_eq!(config.prefix, "shop/");
        assert!(config.mirror_dir.ends_with("import.git"));
        let none = |_: &str| None;
        let error = resolve_import(&args(&["--bucket", "b", "--config-repo", "/r"]), &none)
            .err()
            .unwrap();
        assert!(error.contains("AWS_ACCESS_KEY_ID"), "{error}");
        let error = resolve_import(&args(&["--bucket", "b"]), &env_without_repo)
            .err()
            .unwrap();
        assert!(error.contains("--config-repo"), "{error}");
    }

    #[test]
    fn the_committer_and_signing_key_are_read_as_start_reads_them() {
        let base = ["--bucket", "b", "--config-repo", "/r"];
        let config = resolve_import(&args(&base), &env_without_repo).unwrap();
        assert!(config.commits.committer.is_none() && config.commits.signer.is_none());
        let mut named = base.to_vec();
        named.extend([
            "--committer-name",
            "Release Bot",
            "--committer-email",
            "bot@acme.com",
        ]);
        let config = resolve_import(&args(&named), &env_without_repo).unwrap();
        assert_eq!(
            config.commits.committer,
            Some(("Release Bot".to_string(), "bot@acme.com".to_string()))
        );
        let mut missing = base.to_vec();
        missing.extend(["--signing-key", "/nonexistent/signing-key"]);
        let error = resolve_import(&args(&missing), &env_without_repo)
            .err()
            .unwrap();
        assert!(error.contains("/nonexistent/signing-key"), "{error}");
    }

    fn env_without_repo(key: &str) -> Option<String> {
        match key {
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("x".to_string()),
            _ => None,
        }
    }
}
