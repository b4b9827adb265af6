//! Everything about PJRT plugins, below the verbs: finding one ([`locate`]),
//! reading its API version ([`probe`]), running it in an isolated child
//! process ([`child`], [`environment`], [`isolation`], [`wake`]), talking to it ([`session`],
//! [`client_options`], [`compile_options`], [`program`]) and reading its
//! ELF ([`elf`]).

pub mod child;
pub(crate) mod client_options;
pub mod compile_options;
pub mod elf;
pub mod environment;
pub mod isolation;
pub mod locate;
pub mod probe;
pub mod program;
pub(crate) mod session;
pub mod wake;
