//! `hamctl completions SHELL`: prints the shell completion script of every
//! command and flag, generated from the same definitions as `--help`.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::CliError;
use crate::output::Printer;

/// Print a shell completion script.
///
/// For example `hamctl completions bash > /etc/bash_completion.d/hamctl`, or
/// `source <(hamctl completions zsh)` in ~/.zshrc.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Writes the script to the printer's output.
pub(crate) fn run(args: CompletionsArgs, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "hamctl", &mut script);
    printer.line(String::from_utf8_lossy(&script).trim_end())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_completion_knows_the_commands() {
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "hamctl",
            &mut script,
        );
        let script = String::from_utf8(script).unwrap();
        for word in [
            "release",
            "promote",
            "rollback",
            "policy",
            "watch",
            "--auth-token",
        ] {
            assert!(script.contains(word), "{word} missing");
        }
    }
}
