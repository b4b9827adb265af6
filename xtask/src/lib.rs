//! The library behind `cargo xtask`. Layers run one way (docs/architecture.md):
//! `cli` parses and dispatches to the verbs; each verb is one module that
//! stands on the shared modules below it and never on another verb; the
//! shared modules never reach up. `tests/layering.rs` checks it.

// The one module above the verbs.
pub mod cli;

// The verbs, one module each (what `cli` dispatches to).
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

// What the verbs share, one idea a module.
pub mod bazel_deps;
pub mod binary_cache;
pub mod bindings;
pub mod glibc_floor;
pub mod hashing;
pub mod header_diff;
pub mod pinfile;
pub mod plugin;
pub mod wheels;

// The ground floor: output, project paths, processes, the network, files.
pub mod fsutil;
pub mod http;
pub mod nix;
pub mod output;
mod progress;
pub mod project;
pub mod tools;
pub mod xla_headers;
pub mod xla_repo;
