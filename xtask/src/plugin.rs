//! Everything about PJRT plugins, below the verbs.

pub(crate) mod child;
pub(crate) mod client_options;
pub mod compile_options;
pub mod elf;
pub mod locate;
pub mod probe;
pub mod program;
pub(crate) mod session;
