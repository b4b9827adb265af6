//! Reading a Nix binary cache, independently of Nix.

pub mod decode;
pub mod narinfo;
pub mod remote;
