//! `artifact end`: records in artifact.json when the CI job finished.
//!
//! It owns only `ci.end`; it must not change anything else in the spec.

use std::io::Write;

use clap::Args;

use crate::clock::Clock;
use crate::error::CliError;
use crate::spec_file::SpecFile;

/// Record now as the CI end time in artifact.json
///
/// Run it when the build is done, before `artifact push`. Running it again
/// records the later time. Set ARTIFACT_FIXED_TIME (RFC 3339, e.g.
/// 2026-01-02T03:04:05Z) to record a fixed time instead of now.
#[derive(Debug, Clone, Args)]
pub(crate) struct EndArgs {}

pub(crate) fn run(
    _args: EndArgs,
    file: &SpecFile,
    clock: &Clock,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let mut spec = file.load()?;
    spec.ci.end = clock.timestamp();
    file.save(&spec)?;
    writeln!(out, "Ended {} at {}", file.shown(), spec.ci.end)?;
    Ok(())
}
