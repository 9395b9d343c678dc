//! The command-line grammar: the top-level parser, the global flags every
//! command shares (where artifact.json lives), and the list of subcommands.
//!
//! It must not read files, connect or print: each command's own arguments
//! live in that command's module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{add, end, init, push};

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

/// Flags accepted before or after any subcommand.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Build folder: holds artifact.json and one folder per environment.
    #[arg(
        long,
        global = true,
        default_value = ".",
        value_name = "DIR",
        help_heading = GLOBAL_HEADING
    )]
    pub(crate) root: PathBuf,

    /// Name of the artifact file inside the build folder.
    #[arg(
        long,
        global = true,
        default_value = "artifact.json",
        value_name = "FILE",
        help_heading = GLOBAL_HEADING
    )]
    pub(crate) file: PathBuf,

    /// The original release manager's Slack settings: accepted so its
    /// pipelines run unchanged, and ignored (this CLI posts to no Slack).
    #[command(flatten)]
    pub(crate) slack: SlackArgs,
}

/// Flags of the original `artifact` CLI's Slack notifications, ignored.
#[derive(Debug, Clone, Args)]
pub(crate) struct SlackArgs {
    #[arg(long, global = true, hide = true, value_name = "TOKEN")]
    pub(crate) slack_token: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "FILE")]
    pub(crate) message_file: Option<String>,
    #[arg(long, global = true, hide = true, value_name = "SUFFIX")]
    pub(crate) email_suffix: Option<String>,
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "EMAIL=SLACK",
        value_delimiter = ','
    )]
    pub(crate) user_mappings: Vec<String>,
}

/// Where `--help` lists the flags every command accepts.
const GLOBAL_HEADING: &str = "Global options";

// The subcommands. Each one's help text is the doc comment of its `Args`
// struct, in its own module (a doc comment here would override it).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Init(Box<init::InitArgs>),
    Add(add::AddArgs),
    End(end::EndArgs),
    Push(push::PushArgs),
}

#[cfg(test)]
mod tests {
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
