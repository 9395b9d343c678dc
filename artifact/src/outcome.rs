//! `artifact successful` and `artifact failure`: the last step of the
//! original release manager's pipelines, which records how the build
//! ended.
//!
//! The original records it in its message file (`--message-file`, default
//! `message.json` in the build folder: the colour, title and text of the
//! build's Slack message), never in artifact.json, whose reader refuses
//! unknown fields; these commands write the same fields the same way, so a
//! later step that reads the file finds what it always found. Like the
//! original, they never fail the build: a file they cannot read or write is
//! reported on stderr and the exit code stays 0. Nothing is posted to Slack
//! (the server sends notifications, see docs/controllers.md).

use std::io::Write;
use std::path::Path;

use clap::Args;
use serde_json::{Map, Value};

use crate::error::{show_path, CliError};

/// The original's colours of a build message.
const GREEN: &str = "#73BF69";
const RED: &str = "#F2495C";

/// The original's message file, relative to the build folder.
pub(crate) const DEFAULT_MESSAGE_FILE: &str = "message.json";

/// Record that the pipeline succeeded (the original CLI's last step)
///
/// Writes the outcome to the message file (--message-file, default
/// message.json in the build folder) as the original artifact CLI does.
/// Never fails the build.
#[derive(Debug, Clone, Args)]
pub(crate) struct SuccessfulArgs {}

/// Record that the pipeline failed, and why (the original CLI's step)
///
/// Adds the error message to the message file (--message-file, default
/// message.json in the build folder) as the original artifact CLI does.
/// Never fails the build.
#[derive(Debug, Clone, Args)]
pub(crate) struct FailureArgs {
    /// What went wrong.
    #[arg(long, default_value = "Unexpected error in pipeline")]
    pub(crate) error_message: String,
}

/// How the build ended.
pub(crate) enum Outcome {
    /// `successful`.
    Succeeded,
    /// `failure --error-message`.
    Failed(String),
}

/// Records `outcome` in the message file `path`; problems are warnings on
/// `err`, never a failure.
pub(crate) fn run(
    outcome: Outcome,
    path: &Path,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    match record(&outcome, path) {
        Ok(()) => {
            let said = match &outcome {
                Outcome::Succeeded => "succeeded".to_owned(),
                Outcome::Failed(why) => format!("failed: {why}"),
            };
            writeln!(out, "Recorded in {}: the build {said}", show_path(path))?;
        }
        Err(why) => writeln!(
            err,
            "warning: cannot record the outcome in {}: {why} (the build goes on)",
            show_path(path)
        )?,
    }
    Ok(())
}

/// Updates the message file as the original's `slack.UpdateMessage` does
/// (colour, title, text appended for a failure), creating it when missing.
fn record(outcome: &Outcome, path: &Path) -> Result<(), String> {
    let mut message = match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("it holds no JSON object".to_owned()),
            Err(e) => return Err(format!("it is not JSON: {e}")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(e.to_string()),
    };
    let text = |message: &Map<String, Value>| {
        message
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match outcome {
        Outcome::Succeeded => {
            message.insert("color".into(), GREEN.into());
            message.insert(
                "title".into(),
                ":jenkins: Jenkins :white_check_mark:".into(),
            );
        }
        Outcome::Failed(why) => {
            let text = format!("{}:no_entry: *{why}*", text(&message));
            message.insert("color".into(), RED.into());
            message.insert("text".into(), text.into());
            message.insert("title".into(), ":jenkins: Jenkins :no_entry:".into());
        }
    }
    // Go's encoder with two-space indent, and its trailing newline.
    let mut bytes =
        serde_json::to_vec_pretty(&Value::Object(message)).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_failure_are_recorded_as_the_original_records_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("message.json");
        std::fs::write(&path, "{\"channel\": \"C1\", \"text\": \"built\\n\"}").unwrap();
        record(&Outcome::Failed("tests failed".into()), &path).unwrap();
        let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(written["color"], RED);
        assert_eq!(written["text"], "built\n:no_entry: *tests failed*");
        assert_eq!(written["channel"], "C1", "other fields stay");
        let fresh = dir.path().join("new.json");
        record(&Outcome::Succeeded, &fresh).unwrap();
        let written: Value = serde_json::from_slice(&std::fs::read(&fresh).unwrap()).unwrap();
        assert_eq!(written["color"], GREEN);
    }

    #[test]
    fn a_broken_message_file_is_a_warning_and_exit_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("message.json");
        std::fs::write(&path, "[1").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run(Outcome::Succeeded, &path, &mut out, &mut err).expect("never fails");
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("warning: cannot record"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[1", "left alone");
    }
}
