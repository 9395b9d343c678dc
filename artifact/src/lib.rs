//! The CI CLI of the release manager: writes `artifact.json` for a build step
//! by step and pushes the finished build to the server. The commands arrive
//! with the build-upload work; for now the binary only answers `--help` and
//! `--version`.

/// Runs the CLI with `args` (program name first); returns the exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let command = clap::Command::new("artifact")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Write artifact.json for a build and push the build to the release manager");
    match command.try_get_matches_from(args) {
        Ok(_) => {
            eprintln!(
                "error: no command given; the build commands are not available in this version yet"
            );
            2
        }
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            code
        }
    }
}
