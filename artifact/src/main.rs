//! `artifact`: the CI CLI binary.

fn main() {
    std::process::exit(artifact::run(std::env::args_os()));
}
