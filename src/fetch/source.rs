//! Where what Nix got came from, as the counters and the dashboard name it.

/// Where a narinfo or NAR Nix got came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// This machine's store.
    Local,
    /// A Peerix peer.
    Peer,
    /// The peers that hold it and the near nodes fetching it at the same time (a swarm).
    Swarm,
    /// The NAR cache (`--cache-size`): fetched from a peer before.
    NarCache,
    /// A machine on the LAN running the old program.
    OldPeer,
    /// The upstream cache, through this node or the near node that pulled it
    /// (`--pull-through`).
    PullThrough,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Self::Local,
        Self::Peer,
        Self::Swarm,
        Self::NarCache,
        Self::OldPeer,
        Self::PullThrough,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Peer => "peer",
            Self::Swarm => "swarm",
            Self::NarCache => "nar_cache",
            Self::OldPeer => "old_peer",
            Self::PullThrough => "pull_through",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}
