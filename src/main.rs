//! The `wmbusd` binary: everything lives in the library; see `wmbusd::cli`.

fn main() -> std::process::ExitCode {
    wmbusd::cli::main()
}
