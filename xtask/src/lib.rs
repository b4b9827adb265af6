//! The library behind `cargo xtask`. One module per verb, plus the few
//! pieces they share (project paths, atomic writes, the XLA repository).

pub mod cli;
pub mod fsutil;
pub mod http;
pub mod nix;
mod progress;
pub mod project;
pub mod tools;
pub mod xla_headers;
pub mod xla_repo;

pub mod bazel_deps;
pub mod binary_cache;
pub mod bindings;
pub mod glibc_floor;
pub mod hashing;
pub mod header_diff;
pub mod pinfile;
pub mod plugin;
pub mod wheels;

pub mod cache;
pub mod conform;
pub mod prebuilt;
pub mod release;
pub mod smoke;
pub mod upgrade;
