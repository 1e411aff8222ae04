//! Nix formats only the application needs: NAR archives, binary-cache signatures and the store
//! paths of content addresses. Pure code;
//! the one exception is `nar::plan`, which reads a directory tree's metadata.

pub mod ca;
pub mod nar;
pub mod signing;
