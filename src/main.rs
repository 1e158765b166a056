//! The drtool binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    drtool::cli::main()
}
