//! The exit-code contract both CLIs keep: 0 on success (also `--help`,
//! `--version` and a stdout closed early), 1 when the operation failed, 2
//! for a usage error; clap's own messages on the stream clap meant, and a
//! failure as one final `error: ...` line.

use std::fmt::Display;
use std::io::Write;

/// Exit code of a successful run (also `--help`, `--version` and a stdout
/// closed early).
pub const EXIT_SUCCESS: i32 = 0;
/// Exit code when the operation failed.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of a usage error (unknown flag, missing argument, ...).
pub const EXIT_USAGE: i32 = 2;

/// Where ANSI styling may be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Colour {
    /// On stdout.
    pub out: bool,
    /// On stderr.
    pub err: bool,
}

/// Prints clap's own message: help and version on stdout (exit 0), usage
/// errors on stderr (exit 2). Styled where `colour` allows it on that stream.
pub fn report_clap_error<'a>(
    clap_error: &clap::Error,
    out: &'a mut (dyn Write + Send),
    err: &'a mut (dyn Write + Send),
    colour: Colour,
) -> i32 {
    let rendered = clap_error.render();
    // clap sends help and version to stdout and everything else to stderr.
    let (stream, colour, code) = if clap_error.use_stderr() {
        (err, colour.err, EXIT_USAGE)
    } else {
        (out, colour.out, EXIT_SUCCESS)
    };
    let text = if colour {
        rendered.ansi().to_string()
    } else {
        rendered.to_string()
    };
    // Nothing sensible is left to do when that stream is closed.
    let _ = stream
        .write_all(text.as_bytes())
        .and_then(|()| stream.flush());
    code
}

/// The exit code of a command's `outcome`, printing a failure as one
/// `error: ...` line on `err`. A failure for which `broken_pipe` holds (its
/// output could not be written because the reader went away, e.g. `| head`)
/// is a normal end: the work is done, only its report was not read to the end.
pub fn report_outcome<E: Display>(
    outcome: Result<(), E>,
    broken_pipe: impl FnOnce(&E) -> bool,
    err: &mut (dyn Write + Send),
) -> i32 {
    match outcome {
        Ok(()) => EXIT_SUCCESS,
        Err(error) if broken_pipe(&error) => EXIT_SUCCESS,
        Err(error) => {
            // Nothing sensible is left to do when stderr itself is gone.
            let _ = writeln!(err, "error: {error}");
            EXIT_FAILURE
        }
    }
}

/// Whether `error` says the reader of the output went away.
pub fn is_broken_pipe(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_exit_codes() {
        let mut err = Vec::new();
        assert_eq!(report_outcome(Ok::<(), String>(()), |_| false, &mut err), 0);
        assert_eq!(
            report_outcome(Err("closed".to_owned()), |_| true, &mut err),
            0
        );
        assert!(err.is_empty());
        assert_eq!(
            report_outcome(Err("boom".to_owned()), |_| false, &mut err),
            1
        );
        assert_eq!(String::from_utf8(err).expect("utf-8"), "error: boom\n");
    }
}
