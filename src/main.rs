//! The `faultline` binary: see `faultline --help`.

fn main() -> std::process::ExitCode {
    faultline::cli::main()
}
