//! The `artifact` binary: hands the command line to the library and exits
//! with the code it returns. All behaviour lives in the library so that
//! tests can run it in process.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let code = artifact::run(std::env::args_os()).await;
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
