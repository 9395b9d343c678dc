//! `hamctl completions SHELL`: prints the shell completion script of every
//! command and flag, generated from the same definitions as `--help`.

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

/// Writes the script of `grammar` (the whole command line, as `--help`
/// knows it) to the printer's output.
pub(crate) fn run(
    args: CompletionsArgs,
    mut grammar: clap::Command,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut grammar, "hamctl", &mut script);
    printer.line(String::from_utf8_lossy(&script).trim_end())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::cli::Cli;

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
