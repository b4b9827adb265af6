//! A scratch project (its own pins.toml) with an empty cache directory, and
//! the xtask run on them: what the prebuilt and network tests start from.

use std::process::Command;

pub struct Scratch {
    pub root: tempfile::TempDir,
    pub cache: tempfile::TempDir,
}

impl Scratch {
    /// A project root holding `pins_text` as pins.toml, and an empty cache.
    pub fn new(pins_text: &str) -> Scratch {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("pins.toml"), pins_text).unwrap();
        Scratch { root, cache: tempfile::tempdir().unwrap() }
    }

    /// The xtask with `args`, on this project and this cache.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(args).env("PJRTPKGS_ROOT", self.root.path()).env("PJRTPKGS_CACHE_DIR", self.cache.path());
        cmd
    }
}
