//! Everything about PJRT plugins, below the verbs: finding one ([`locate`]),
//! laying it out with its runtime libraries ([`runtime`]), reading its API
//! version ([`probe`]), running it in an isolated child process ([`child`],
//! [`environment`], [`isolation`], [`wake`]), talking to it ([`session`],
//! [`client_options`], [`compile_options`], [`program`]) and reading its
//! ELF ([`elf`]); and why one will not load or run here ([`diagnosis`]):
//! the dynamic loader's model ([`ldso`]), libraries it opens at run time
//! ([`dlopens`]) and who provides them ([`providers`]), symbol versions
//! ([`symbols`]), the CPU extensions its code needs ([`isa`]), its GPU
//! code and this machine's GPUs ([`gpu`]).

pub mod child;
pub(crate) mod client_options;
pub mod compile_options;
pub mod diagnosis;
pub mod dlopens;
pub mod elf;
pub mod environment;
pub mod gpu;
pub mod isa;
pub mod isolation;
pub mod ldso;
pub mod locate;
pub mod probe;
pub mod program;
pub mod providers;
pub mod runtime;
pub(crate) mod session;
pub mod symbols;
pub mod wake;
