//! NAR (Nix ARchive): the deterministic serialisation of a store path.
//!
//! `plan` lays out the NAR of a directory tree without reading file contents, so any byte range can
//! be produced later (HTTP ranges, and content-addressed chunks that are never stored twice);
//! `validate` checks NARs that arrive from elsewhere, one chunk at a time.

mod plan;
mod validate;

pub use plan::{NarPlan, NarReader, PlanError};
pub use validate::{NarError, NarValidator};

pub const MAGIC: &str = "nix-archive-1";

/// NAR strings and file contents are zero-padded to 8-byte boundaries.
pub(crate) const fn padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}
