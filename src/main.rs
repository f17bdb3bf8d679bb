#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    kedge::cli::main()
}
