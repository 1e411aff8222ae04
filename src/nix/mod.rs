//! Nix formats only the application needs: NAR archives and binary-cache signatures. Pure code;
//! the one exception is `nar::plan`, which reads a directory tree's metadata.

pub mod nar;
pub mod signing;
