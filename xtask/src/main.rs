//! `cargo xtask`: the maintainer's tool of pjrtpkgs. Every verb lives in its
//! own module of the `xtask` library; this file only parses and dispatches.

use std::process::ExitCode;

use clap::Parser;
use xtask::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match xtask::cli::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(xtask::cli::EXIT_ERROR)
        }
    }
}
