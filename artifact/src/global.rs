//! The flags every command accepts, before or after the subcommand: the
//! build folder and the name of artifact.json in it, and the original
//! artifact CLI's Slack flags, accepted and ignored so its pipelines run
//! unchanged. It must not read files, connect or print.

use std::path::PathBuf;

use clap::Args;

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
    /// pipelines run unchanged, and ignored (this CLI posts to no Slack),
    /// but for --message-file, where `successful` and `failure` record the
    /// outcome as the original did.
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
