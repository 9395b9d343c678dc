//! The command-line grammar: the top-level parser, with the global flags
//! (`global`) and the list of subcommands.
//!
//! It is wiring: it imports the command modules, and none of them imports
//! it. It owns what clap cannot express: the global `--service`, handed to
//! the command that needs it, else taken from `shuttle.yaml` (with its
//! namespace), else a usage error; and the original hamctl's lines that
//! have another spelling here, refused naming it. It must not connect,
//! resolve identities or print: each command's own arguments live in that
//! command's module.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use crate::describe::DescribeCommand;
use crate::global::GlobalArgs;
use crate::{describe, diff, policy, promote, release, rollback, status, watch};

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
        let mut cli = Cli::try_parse_from(args)?;
        cli.resolve(crate::shuttle::ShuttleDefaults::read)?;
        Ok(cli)
    }

    /// Hands the global `--service` (else shuttle.yaml's `vars.service`) to
    /// the command, and shuttle.yaml's namespace where the original hamctl
    /// took it; refuses `--template`, naming what replaces it. clap cannot require a global argument: a missing one is
    /// reported here, as clap would.
    fn resolve(
        &mut self,
        shuttle: impl FnOnce() -> crate::shuttle::ShuttleDefaults,
    ) -> Result<(), clap::Error> {
        let given = self.global.service.clone().filter(|s| !s.trim().is_empty());
        let needs_defaults = !matches!(
            self.command,
            Command::Services(_)
                | Command::Watch(_)
                | Command::Completions(_)
                | Command::Version
                | Command::Login(_)
                | Command::Logout(_)
                | Command::Whoami(_)
        );
        let defaults = if needs_defaults {
            shuttle()
        } else {
            Default::default()
        };
        let service = given.or(defaults.service);
        let need = |path: &[&str]| {
            service.clone().ok_or_else(|| {
                usage_error(path, ErrorKind::MissingRequiredArgument, MISSING_SERVICE)
            })
        };
        let namespace = |flag: &mut Option<String>| {
            if flag.is_none() {
                flag.clone_from(&defaults.namespace);
            }
        };
        match &mut self.command {
            Command::Release(args) => args.service = need(&["release"])?,
            Command::Promote(args) => {
                args.service = need(&["promote"])?;
                namespace(&mut args.namespace);
            }
            Command::Rollback(args) => {
                args.service = need(&["rollback"])?;
                namespace(&mut args.namespace);
            }
            Command::Status(args) => {
                args.service = need(&["status"])?;
                namespace(&mut args.namespace);
            }
            Command::Diff(args) => args.service = need(&["diff"])?,
            Command::Describe(describe) => match &mut describe.what {
                DescribeCommand::Release(args) => {
                    refuse_template(&args.template, &["describe", "release"])?;
                    args.service = need(&["describe", "release"])?;
                }
                DescribeCommand::Artifact(args) => {
                    refuse_template(&args.template, &["describe", "artifact"])?;
                    args.service = need(&["describe", "artifact"])?;
                }
            },
            Command::Policy(args) => args.service = need(&["policy"])?,
            Command::Watch(args) => args.service = self.global.service.clone(),
            Command::Services(_)
            | Command::Completions(_)
            | Command::Version
            | Command::Login(_)
            | Command::Logout(_)
            | Command::Whoami(_) => {}
        }
        Ok(())
    }
}

const MISSING_SERVICE: &str = "the following required arguments were not provided:\n  \
     --service <SERVICE>\n\n(or run it where shuttle.yaml names the service in vars.service)";

fn refuse_template(
    template: &crate::shuttle::TemplateArgs,
    path: &[&str],
) -> Result<(), clap::Error> {
    match template.template {
        Some(_) => Err(usage_error(
            path,
            ErrorKind::ArgumentConflict,
            crate::shuttle::TEMPLATE_REFUSED,
        )),
        None => Ok(()),
    }
}

/// A usage error of the subcommand at `path`, as clap words its own.
fn usage_error(path: &[&str], kind: ErrorKind, message: &str) -> clap::Error {
    let mut root = Cli::command();
    // Builds the subcommands' usage lines ("hamctl policy ...").
    root.build();
    let mut command = root;
    for name in path {
        command = command.find_subcommand(name).cloned().unwrap_or_default();
    }
    command.error(kind, message)
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
    Diff(diff::DiffArgs),
    Policy(policy::PolicyArgs),
    Watch(watch::WatchArgs),
    Login(crate::login::LoginArgs),
    Logout(crate::login::LogoutArgs),
    Whoami(crate::whoami::WhoamiArgs),
    // The original hamctl's `completion` is the same command.
    #[command(alias = "completion")]
    Completions(crate::completions::CompletionsArgs),
    /// Print hamctl's version (as --version does)
    Version,
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
            assert_eq!(policy.service, "shop", "{args:?}");
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
        assert_eq!(policy.service, "shop");
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
        assert_eq!(policy.service, "shop");
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

    /// Parses as `parse_checked` does, with `shuttle.yaml` holding `defaults`.
    fn parse_with_shuttle(
        args: &[&str],
        defaults: crate::shuttle::ShuttleDefaults,
    ) -> Result<Cli, clap::Error> {
        let mut cli = Cli::try_parse_from(std::iter::once("hamctl").chain(args.iter().copied()))?;
        cli.resolve(|| defaults)?;
        Ok(cli)
    }

    #[test]
    fn the_originals_global_service_goes_anywhere() {
        for args in [
            &["--service", "gateway", "status"][..],
            &["status", "--service", "gateway"][..],
            &["--service", "gateway", "describe", "release", "-e", "dev"][..],
        ] {
            let cli = parse(args).expect("parses");
            let service = match cli.command {
                Command::Status(s) => s.service,
                Command::Describe(d) => match d.what {
                    DescribeCommand::Release(r) => r.service,
                    DescribeCommand::Artifact(a) => a.service,
                },
                other => panic!("{other:?}"),
            };
            assert_eq!(service, "gateway", "{args:?}");
        }
    }

    #[test]
    fn the_originals_short_flags_and_several_environments() {
        let cli = parse(&[
            "release",
            "--service",
            "s",
            "-e",
            "dev,staging",
            "-b",
            "master",
            "-n",
            "edge",
        ])
        .expect("parses");
        let Command::Release(args) = cli.command else {
            panic!("release");
        };
        assert_eq!(args.env, vec!["dev", "staging"]);
        assert_eq!(args.branch.as_deref(), Some("master"));
        assert_eq!(args.namespace.as_deref(), Some("edge"));
        let cli = parse(&["release", "--service", "s", "-e", "dev", "-c"]).expect("parses");
        let Command::Release(args) = cli.command else {
            panic!("release");
        };
        assert!(args.current_branch);
        let error = parse(&["release", "--service", "s", "-e", "dev", "-c", "-b", "x"])
            .expect_err("exclusive");
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
        let cli = parse(&[
            "describe",
            "releases",
            "--service",
            "s",
            "-e",
            "prod",
            "-c",
            "3",
        ])
        .expect("parses");
        let Command::Describe(describe) = cli.command else {
            panic!("describe");
        };
        let DescribeCommand::Release(release) = describe.what else {
            panic!("describe release");
        };
        assert_eq!(release.count, Some(3));
        parse(&["describe", "artifacts", "--service", "s"]).expect("plural alias");
        parse(&[
            "policy",
            "--service",
            "s",
            "apply",
            "auto-release",
            "-b",
            "master",
            "-e",
            "dev",
        ])
        .expect("policy short flags");
        let cli = parse(&[
            "promote",
            "--service",
            "s",
            "-e",
            "prod",
            "--from-env",
            "dev",
        ])
        .expect("parses");
        let Command::Promote(promote) = cli.command else {
            panic!("promote");
        };
        assert_eq!(promote.from_env.as_deref(), Some("dev"));
        parse(&["rollback", "--service", "s", "-e", "prod", "--length", "5"]).expect("length");
        parse(&["completion", "bash"]).expect("the original's completion");
        assert!(matches!(
            parse(&["version"]).expect("version").command,
            Command::Version
        ));
    }

    #[test]
    fn service_and_namespace_from_shuttle_yaml() {
        let defaults = crate::shuttle::ShuttleDefaults {
            service: Some("gateway".into()),
            namespace: Some("edge".into()),
        };
        let cli = parse_with_shuttle(&["promote", "-e", "prod"], defaults.clone()).expect("parses");
        let Command::Promote(args) = cli.command else {
            panic!("promote");
        };
        assert_eq!(args.service, "gateway");
        assert_eq!(args.namespace.as_deref(), Some("edge"));
        // Flags win over the file.
        let cli = parse_with_shuttle(
            &["--service", "api", "status", "-n", "team"],
            defaults.clone(),
        )
        .expect("parses");
        let Command::Status(args) = cli.command else {
            panic!("status");
        };
        assert_eq!(
            (args.service.as_str(), args.namespace.as_deref()),
            ("api", Some("team"))
        );
        // Release took no namespace from the file in the original.
        let cli =
            parse_with_shuttle(&["release", "-e", "dev", "-b", "m"], defaults).expect("parses");
        let Command::Release(args) = cli.command else {
            panic!("release");
        };
        assert_eq!((args.service.as_str(), args.namespace), ("gateway", None));
        let error = parse_with_shuttle(&["status"], Default::default()).expect_err("no service");
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
        assert!(error.to_string().contains("shuttle.yaml"), "{error}");
    }

    #[test]
    fn template_is_refused_naming_the_replacement() {
        let error = parse(&[
            "describe",
            "release",
            "--service",
            "s",
            "-e",
            "dev",
            "--template",
            "{{ .Service }}",
        ])
        .expect_err("refused");
        assert_eq!(error.exit_code(), 2);
        let text = error.to_string();
        assert!(
            text.contains("--output json") && text.contains("jq"),
            "{text}"
        );
    }
}
