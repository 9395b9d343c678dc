//! Flags of the original release manager's hamctl that mean nothing here:
//! accepted, so old scripts keep working, and answered with a warning.

use clap::Args;

use crate::output::Printer;

/// Flags the original release manager's hamctl took for `promote` and
/// `status`, which mean nothing here (the server knows its config
/// repository): accepted, so old scripts keep working, with a warning.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ObsoleteArgs {
    #[arg(long, hide = true, value_name = "URL")]
    pub(crate) config_repo: Option<String>,
    #[arg(long, hide = true, value_name = "FILE")]
    pub(crate) file: Option<String>,
}

impl ObsoleteArgs {
    /// Warns about each obsolete flag given.
    pub(crate) fn warn(&self, printer: &mut Printer<'_>) -> std::io::Result<()> {
        for (flag, given) in [("--config-repo", &self.config_repo), ("--file", &self.file)] {
            if given.is_some() {
                printer.note(&format!(
                    "warning: {flag} is ignored: the server reads its own config repository"
                ))?;
            }
        }
        Ok(())
    }
}
