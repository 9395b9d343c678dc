//! The command-line grammar: the top-level parser, with the global flags
//! (`global`) and the list of subcommands.
//!
//! It is wiring: it imports the command modules, and none of them imports
//! it. It owns the checks clap cannot express (a `policy` command without
//! `--service`). It must not connect, resolve identities or print: each
//! command's own arguments live in that command's module.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use crate::global::GlobalArgs;
use crate::{describe, policy, promote, release, rollback, status, watch};

/// hamctl: release, promote and roll back builds of services managed by the
/// release manager, see what runs where, manage release policies and watch
/// events as they happen.
#[derive(Debug, Parser)]
#[command(name = "hamctl", version)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// Parses a whole command line (program name first), including the
    /// checks clap cannot express; every failure is a clap usage error.
    pub(crate) fn parse_checked<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        cli.check()?;
        Ok(cli)
    }

    /// `policy --service` is global to the policy subcommands so that it may
    /// come before or after them, and clap cannot require a global
    /// argument: a missing one is reported here, as clap would.
    fn check(&self) -> Result<(), clap::Error> {
        if let Command::Policy(policy) = &self.command {
            if policy.service.as_deref().is_none_or(str::is_empty) {
                let mut root = Cli::command();
                // Builds the subcommands' usage lines ("hamctl policy ...").
                root.build();
                let mut policy_command = root
                    .find_subcommand_mut("policy")
                    .cloned()
                    .unwrap_or_default();
                return Err(policy_command.error(
                    ErrorKind::MissingRequiredArgument,
                    "the following required arguments were not provided:\n  --service <SERVICE>",
                ));
            }
        }
        Ok(())
    }
}

// The subcommands. Each one's help text is the doc comment of its `Args`
// struct, in its own module (a doc comment here would override it).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Release(release::ReleaseArgs),
    Promote(promote::PromoteArgs),
    Rollback(rollback::RollbackArgs),
    Status(status::StatusArgs),
    Services(crate::services::ServicesArgs),
    Describe(describe::DescribeArgs),
    Policy(policy::PolicyArgs),
    Watch(watch::WatchArgs),
    Login(crate::login::LoginArgs),
    Logout(crate::login::LogoutArgs),
    Whoami(crate::whoami::WhoamiArgs),
    Completions(crate::completions::CompletionsArgs),
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;
    use crate::describe::DescribeCommand;
    use crate::output::OutputFormat;
    use crate::policy::{ApplyCommand, PolicyArgs, PolicyCommand};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_checked(std::iter::once("hamctl").chain(args.iter().copied()))
    }

    #[test]
    fn the_original_hamctl_flags_are_accepted() {
        let cli = parse(&[
            "--http-base-url",
            "rm.example.com:8080",
            "--http-auth-token",
            "t0k",
            "--http-timeout",
            "20s",
            "promote",
            "--service",
            "s",
            "--env",
            "prod",
            "--config-repo",
            "git@github.com:acme/k8s.git",
        ])
        .expect("parses");
        assert_eq!(cli.global.server, "http://rm.example.com:8080");
        assert_eq!(cli.global.auth_token.as_deref(), Some("t0k"));
        assert_eq!(
            cli.global.request_timeout,
            std::time::Duration::from_secs(20)
        );
        let Command::Promote(args) = cli.command else {
            panic!("promote");
        };
        assert!(args.obsolete.config_repo.is_some());
        parse(&["status", "--service", "s", "--file", "x.yaml"]).expect("status takes --file");
    }

    #[test]
    fn global_flags_before_the_subcommand() {
        let cli = parse(&[
            "--server",
            "rm.example.com:443",
            "--auth-token",
            "t0k",
            "--output",
            "json",
            "status",
            "--service",
            "product-api",
        ])
        .expect("parses");
        assert_eq!(cli.global.server, "http://rm.example.com:443");
        assert_eq!(cli.global.auth_token.as_deref(), Some("t0k"));
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert!(matches!(cli.command, Command::Status(_)));
    }

    #[test]
    fn global_flags_after_the_subcommand() {
        let cli = parse(&[
            "status",
            "--service",
            "product-api",
            "--server",
            "http://10.0.0.1:9000",
            "--output",
            "json",
            "--auth-token",
            "t0k",
        ])
        .expect("parses");
        assert_eq!(cli.global.server, "http://10.0.0.1:9000");
        assert_eq!(cli.global.auth_token.as_deref(), Some("t0k"));
        assert_eq!(cli.global.output, OutputFormat::Json);
    }

    #[test]
    fn global_flags_after_a_nested_subcommand() {
        let cli = parse(&[
            "describe",
            "release",
            "--service",
            "product-api",
            "--env",
            "prod",
            "--count",
            "3",
            "--output",
            "json",
            "--server",
            "localhost:1234",
        ])
        .expect("parses");
        assert_eq!(cli.global.server, "http://localhost:1234");
        assert_eq!(cli.global.output, OutputFormat::Json);
        let Command::Describe(describe) = cli.command else {
            panic!("not describe: {:?}", cli.command);
        };
        let DescribeCommand::Release(release) = describe.what else {
            panic!("not describe release");
        };
        assert_eq!(release.service, "product-api");
        assert_eq!(release.env, "prod");
        assert_eq!(release.count, Some(3));
    }

    #[test]
    fn output_defaults_to_table() {
        let cli = parse(&["status", "--service", "s"]).expect("parses");
        assert_eq!(cli.global.output, OutputFormat::Table);
    }

    #[test]
    fn unknown_output_format_is_rejected() {
        let error = parse(&["status", "--service", "s", "--output", "yaml"]).expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn release_takes_a_branch() {
        let cli = parse(&[
            "release",
            "--service",
            "product-api",
            "--env",
            "dev",
            "--branch",
            "feature/x",
        ])
        .expect("parses");
        let Command::Release(args) = cli.command else {
            panic!("not release");
        };
        assert_eq!(args.branch.as_deref(), Some("feature/x"));
        assert_eq!(args.artifact, None);
        assert_eq!(args.namespace, None);
    }

    #[test]
    fn release_takes_an_artifact_and_namespace() {
        let cli = parse(&[
            "release",
            "--service",
            "product-api",
            "--env",
            "dev",
            "--artifact",
            "master-1-2",
            "--namespace",
            "team-a",
        ])
        .expect("parses");
        let Command::Release(args) = cli.command else {
            panic!("not release");
        };
        assert_eq!(args.artifact.as_deref(), Some("master-1-2"));
        assert_eq!(args.branch, None);
        assert_eq!(args.namespace.as_deref(), Some("team-a"));
    }

    #[test]
    fn release_rejects_both_branch_and_artifact() {
        let error = parse(&[
            "release",
            "--service",
            "s",
            "--env",
            "dev",
            "--branch",
            "master",
            "--artifact",
            "master-1-2",
        ])
        .expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn release_rejects_neither_branch_nor_artifact() {
        let error = parse(&["release", "--service", "s", "--env", "dev"]).expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn release_requires_service_and_env() {
        let error = parse(&["release", "--branch", "master"]).expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn rollback_artifact_is_optional() {
        let cli = parse(&["rollback", "--service", "s", "--env", "prod"]).expect("parses");
        let Command::Rollback(args) = cli.command else {
            panic!("not rollback");
        };
        assert_eq!(args.artifact, None);
    }

    #[test]
    fn describe_artifact_takes_branch_and_count() {
        let cli = parse(&[
            "describe",
            "artifact",
            "--service",
            "s",
            "--branch",
            "master",
            "--count",
            "10",
        ])
        .expect("parses");
        let Command::Describe(describe) = cli.command else {
            panic!("not describe");
        };
        let DescribeCommand::Artifact(args) = describe.what else {
            panic!("not describe artifact");
        };
        assert_eq!(args.branch.as_deref(), Some("master"));
        assert_eq!(args.count, Some(10));
    }

    #[test]
    fn count_must_be_positive() {
        let error = parse(&["describe", "artifact", "--service", "s", "--count", "0"])
            .expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn bad_server_flag_is_a_usage_error() {
        let error =
            parse(&["status", "--service", "s", "--server", "ftp://x:1"]).expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert_eq!(error.exit_code(), 2);
    }

    fn policy(args: &[&str]) -> PolicyArgs {
        let cli = parse(args).expect("parses");
        let Command::Policy(policy) = cli.command else {
            panic!("not policy");
        };
        policy
    }

    #[test]
    fn policy_list_takes_the_service_before_or_after() {
        for args in [
            &["policy", "--service", "shop", "list"][..],
            &["policy", "list", "--service", "shop"][..],
        ] {
            let policy = policy(args);
            assert_eq!(policy.service.as_deref(), Some("shop"), "{args:?}");
            assert!(matches!(policy.what, PolicyCommand::List(_)), "{args:?}");
        }
    }

    #[test]
    fn policy_apply_auto_release() {
        let policy = policy(&[
            "policy",
            "--service",
            "shop",
            "apply",
            "auto-release",
            "--branch",
            "master",
            "--env",
            "dev",
        ]);
        assert_eq!(policy.service.as_deref(), Some("shop"));
        let PolicyCommand::Apply(apply) = policy.what else {
            panic!("not apply");
        };
        let ApplyCommand::AutoRelease(args) = apply.what else {
            panic!("not auto-release");
        };
        assert_eq!((args.branch.as_str(), args.env.as_str()), ("master", "dev"));
    }

    #[test]
    fn policy_apply_branch_restriction() {
        let policy = policy(&[
            "policy",
            "apply",
            "branch-restriction",
            "--env",
            "prod",
            "--branch-regex",
            "^master$",
            "--service",
            "shop",
        ]);
        assert_eq!(policy.service.as_deref(), Some("shop"));
        let PolicyCommand::Apply(apply) = policy.what else {
            panic!("not apply");
        };
        let ApplyCommand::BranchRestriction(args) = apply.what else {
            panic!("not branch-restriction");
        };
        assert_eq!(args.env, "prod");
        assert_eq!(args.branch_regex, "^master$");
    }

    #[test]
    fn policy_apply_needs_its_flags() {
        let error = parse(&[
            "policy",
            "--service",
            "shop",
            "apply",
            "auto-release",
            "--env",
            "dev",
        ])
        .expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
        let error =
            parse(&["policy", "--service", "shop", "apply", "restrict"]).expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::InvalidSubcommand);
    }

    #[test]
    fn policy_delete_takes_one_or_more_ids() {
        let policy = policy(&[
            "policy",
            "--service",
            "shop",
            "delete",
            "auto-release-master-dev",
            "branch-restriction-prod",
        ]);
        let PolicyCommand::Delete(args) = policy.what else {
            panic!("not delete");
        };
        assert_eq!(
            args.ids,
            ["auto-release-master-dev", "branch-restriction-prod"]
        );
        let error = parse(&["policy", "--service", "shop", "delete"]).expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn policy_without_service_is_a_usage_error() {
        for args in [
            &["policy", "list"][..],
            &["policy", "--service", "", "list"][..],
            &["policy", "delete", "x"][..],
        ] {
            let error = parse(args).expect_err("rejects");
            assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument, "{args:?}");
            assert_eq!(error.exit_code(), 2);
            let text = error.to_string();
            assert!(text.contains("--service <SERVICE>"), "{text}");
            assert!(text.contains("Usage: hamctl policy"), "{text}");
        }
    }

    #[test]
    fn watch_filters_are_optional() {
        let cli = parse(&["watch"]).expect("parses");
        let Command::Watch(args) = cli.command else {
            panic!("not watch");
        };
        assert_eq!(
            (args.service, args.env, args.max_events),
            (None, None, None)
        );

        let cli = parse(&[
            "watch",
            "--service",
            "shop",
            "--env",
            "dev",
            "--max-events",
            "3",
            "--output",
            "json",
        ])
        .expect("parses");
        assert_eq!(cli.global.output, OutputFormat::Json);
        let Command::Watch(args) = cli.command else {
            panic!("not watch");
        };
        assert_eq!(args.service.as_deref(), Some("shop"));
        assert_eq!(args.env.as_deref(), Some("dev"));
        assert_eq!(args.max_events, Some(3));
    }

    #[test]
    fn watch_max_events_is_hidden_and_positive() {
        let error = parse(&["watch", "--max-events", "0"]).expect_err("rejects");
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        let help = parse(&["watch", "--help"]).expect_err("help is an early exit");
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        let text = help.to_string();
        assert!(text.contains("--env"), "{text}");
        assert!(!text.contains("max-events"), "{text}");
    }
}
