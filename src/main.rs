//! The `quarry` command line; see `quarry::cli`.

fn main() -> std::process::ExitCode {
    quarry::cli::main()
}
