//! The library behind `cargo xtask`. One module per verb, plus the few
//! pieces they share (project paths, atomic writes, the XLA repository).

pub mod cli;
pub mod fsutil;
pub mod http;
pub mod nix;
pub mod plugin;
mod progress;
pub mod project;
pub mod tools;
pub mod xla_headers;
pub mod xla_repo;

pub mod bindgen;
pub mod cache;
pub mod conform;
pub mod deps_hash;
pub mod diff_headers;
pub mod doctor;
pub mod hash;
pub mod pins;
pub mod prebuilt;
pub mod release;
pub mod smoke;
pub mod upgrade;
