//! Where what Nix got came from, as the counters and the dashboard name it.

/// Where a narinfo or NAR Nix got came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// This machine's store.
    Local,
    /// A Peerix peer.
    Peer,
    /// The NAR cache (`--cache-size`): fetched from a peer before.
    NarCache,
    /// A machine on the LAN running the old program.
    OldPeer,
}

impl Source {
    pub const ALL: [Source; 4] = [Self::Local, Self::Peer, Self::NarCache, Self::OldPeer];

    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Peer => "peer",
            Self::NarCache => "nar_cache",
            Self::OldPeer => "old_peer",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}
