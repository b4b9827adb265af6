//! `cargo xtask`: the maintainer's tool of pjrtpkgs. Every verb lives in its
//! own module of the `xtask` library; `xtask::cli` parses and dispatches.

fn main() -> std::process::ExitCode {
    xtask::cli::main()
}
