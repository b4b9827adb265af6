//! The plugin floor, below the verbs: reading, resolving and diagnosing
//! plugin libraries.

pub mod diagnosis;
pub mod dlopens;
pub mod gpu;
pub mod isa;
pub mod ldso;
pub mod providers;
pub mod symbols;
