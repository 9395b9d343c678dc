//! The command-line grammar: the top-level parser, with the global flags
//! (`global`: where artifact.json lives) and the list of subcommands.
//!
//! It is wiring: it imports the command modules, and none of them imports
//! it. It owns the refusal of the original CLI's push flags that mean
//! nothing here (a usage error naming the replacement). It must not read
//! files, connect or print: each command's own arguments live in that
//! command's module.

use clap::{Parser, Subcommand};

use crate::global::GlobalArgs;
use crate::{add, end, init, outcome, push};

/// artifact: write artifact.json for a build step by step in CI, and push the
/// finished build to the release manager.
///
/// A pipeline runs `artifact init` when the build starts, `artifact add ...`
/// after each stage, `artifact end` when it is done, and `artifact push` to
/// upload artifact.json together with the manifests in the environment
/// folders (`<root>/dev/`, `<root>/prod/`, ...).
#[derive(Debug, Parser)]
#[command(
    name = "artifact",
    version,
    after_long_help = "Environment:\n  \
        ARTIFACT_FIXED_TIME  Record this RFC 3339 time (e.g. 2026-01-02T03:04:05Z) instead of the\n                       \
        current time in `init` and `end`; for tests and reproducible builds.\n  \
        ARTIFACT_URL         Default for `push --server`.\n  \
        ARTIFACT_AUTH_TOKEN  Default for `push --auth-token`.",
    after_help = "Set ARTIFACT_FIXED_TIME (RFC 3339) to record a fixed time in `init` and `end`; see --help."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

// The subcommands. Each one's help text is the doc comment of its `Args`
// struct, in its own module (a doc comment here would override it).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Init(Box<init::InitArgs>),
    Add(add::AddArgs),
    End(end::EndArgs),
    Push(push::PushArgs),
    Successful(outcome::SuccessfulArgs),
    Failure(outcome::FailureArgs),
    /// Print artifact's version (as --version does)
    Version,
}

/// The usage error for a push given the original's flags that mean
/// nothing here, naming the replacement; `None` when there are none.
pub(crate) fn refused_push_flags(cli: &Cli) -> Option<clap::Error> {
    let Command::Push(args) = &cli.command else {
        return None;
    };
    let given = |flags: &[(&'static str, &Option<String>)]| -> Vec<&'static str> {
        flags
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(name, _)| *name)
            .collect()
    };
    let o = &args.original;
    let oauth = given(&[
        ("--idp-url", &o.idp_url),
        ("--client-id", &o.client_id),
        ("--client-secret", &o.client_secret),
        ("--artifact-scope", &o.artifact_scope),
    ]);
    let git = given(&[
        ("--ssh-private-key", &o.ssh_private_key),
        ("--config-repo", &o.config_repo),
    ]);
    let message = if !oauth.is_empty() {
        format!(
            "{} (the original's sign-on) {} not supported: this server takes the artifact \
             token; pass --auth-token or set ARTIFACT_AUTH_TOKEN to the server's \
             --artifact-auth-token",
            oauth.join(", "),
            if oauth.len() == 1 { "is" } else { "are" }
        )
    } else if !git.is_empty() {
        format!(
            "{}: push no longer commits to the config repository itself; the server does: \
             pass --server (ARTIFACT_URL) and --auth-token (ARTIFACT_AUTH_TOKEN)",
            git.join(", ")
        )
    } else {
        return None;
    };
    let mut root = <Cli as clap::CommandFactory>::command();
    root.build();
    let mut push = root.find_subcommand("push").cloned().unwrap_or_default();
    Some(push.error(clap::error::ErrorKind::ArgumentConflict, message))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_default_to_the_current_folder() {
        let cli = Cli::try_parse_from(["artifact", "end"]).expect("parses");
        assert_eq!(cli.global.root, PathBuf::from("."));
        assert_eq!(cli.global.file, PathBuf::from("artifact.json"));
    }

    #[test]
    fn global_flags_after_the_subcommand() {
        let cli = Cli::try_parse_from(["artifact", "end", "--root", "out", "--file", "a.json"])
            .expect("parses");
        assert_eq!(cli.global.root, PathBuf::from("out"));
        assert_eq!(cli.global.file, PathBuf::from("a.json"));
    }
}
