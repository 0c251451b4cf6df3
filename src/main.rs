fn main() -> std::process::ExitCode {
    janus::cli::main()
}
