//! Transfers between two peers awaiting both sides' reports. In memory only: a transfer is a
//! few seconds long, and one lost to a restart is simply not counted.
//!
//! Either side opens a transfer for (sender, receiver, path); while it is pending, opening it
//! again (from the other side) gives the same id, so both learn one id without talking.

use std::collections::HashMap;

use peerix_http::StoreHash;
use peerix_node::PeerId;
use thiserror::Error;

use crate::wire::tracker::Role;

/// Reports further apart than this share of the larger count are a dispute.
const AGREEMENT: f64 = 0.05;

#[derive(Clone, Copy, Debug)]
pub struct TransferLimits {
    pub max_pending: usize,
    /// Transfers a peer may have opened and not yet seen resolved.
    pub max_per_peer: usize,
    /// Seconds a transfer waits for its reports.
    pub max_age: u64,
}

impl Default for TransferLimits {
    fn default() -> Self {
        Self {
            max_pending: 100_000,
            max_per_peer: 1_000,
            max_age: 600,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TransferError {
    #[error("a transfer is opened by its sender or its receiver")]
    NotAParty,
    #[error("sender and receiver are the same peer")]
    SamePeer,
    #[error("no pending transfer {0} (unknown, resolved or older than the limit)")]
    Unknown(u64),
    #[error("only the {0:?} of transfer {1} may report that side")]
    WrongRole(Role, u64),
    #[error("the {0:?} of transfer {1} reported already")]
    AlreadyReported(Role, u64),
    #[error("too many pending transfers; report or wait")]
    TooMany,
}

/// A transfer both sides reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Agreed {
        sender: PeerId,
        receiver: PeerId,
        bytes: u64,
    },
    Disputed {
        sender: PeerId,
    },
}

struct Pending {
    sender: PeerId,
    receiver: PeerId,
    hash: StoreHash,
    opener: PeerId,
    opened: u64,
    sender_bytes: Option<u64>,
    receiver_bytes: Option<u64>,
}

pub struct Transfers {
    limits: TransferLimits,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    by_parties: HashMap<(PeerId, PeerId, StoreHash), u64>,
    opened_by: HashMap<PeerId, usize>,
}

impl Transfers {
    /// Ids count from `first_id`: random per start, so a report for a transfer of an earlier
    /// run does not land on a new one.
    pub fn new(limits: TransferLimits, first_id: u64) -> Self {
        Self {
            limits,
            next_id: first_id,
            pending: HashMap::new(),
            by_parties: HashMap::new(),
            opened_by: HashMap::new(),
        }
    }

    pub fn open(
        &mut self,
        writer: PeerId,
        sender: PeerId,
        receiver: PeerId,
        hash: StoreHash,
        now: u64,
    ) -> Result<u64, TransferError> {
        if writer != sender && writer != receiver {
            return Err(TransferError::NotAParty);
        }
        if sender == receiver {
            return Err(TransferError::SamePeer);
        }
        if let Some(&id) = self.by_parties.get(&(sender, receiver, hash)) {
            return Ok(id);
        }
        let opened = self.opened_by.get(&writer).copied().unwrap_or(0);
        if self.pending.len() >= self.limits.max_pending || opened >= self.limits.max_per_peer {
            return Err(TransferError::TooMany);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                sender,
                receiver,
                hash,
                opener: writer,
                opened: now,
                sender_bytes: None,
                receiver_bytes: None,
            },
        );
        self.by_parties.insert((sender, receiver, hash), id);
        *self.opened_by.entry(writer).or_default() += 1;
        Ok(id)
    }

    /// Records one side's count; once both are in, the transfer is resolved and forgotten.
    pub fn report(
        &mut self,
        writer: PeerId,
        id: u64,
        role: Role,
        bytes: u64,
    ) -> Result<Option<Outcome>, TransferError> {
        let pending = self
            .pending
            .get_mut(&id)
            .ok_or(TransferError::Unknown(id))?;
        let (party, count) = match role {
            Role::Sender => (pending.sender, &mut pending.sender_bytes),
            Role::Receiver => (pending.receiver, &mut pending.receiver_bytes),
        };
        if party != writer {
            return Err(TransferError::WrongRole(role, id));
        }
        if count.is_some() {
            return Err(TransferError::AlreadyReported(role, id));
        }
        *count = Some(bytes);
        let (Some(sent), Some(received)) = (pending.sender_bytes, pending.receiver_bytes) else {
            return Ok(None);
        };
        let (sender, receiver) = (pending.sender, pending.receiver);
        self.forget(id);
        let larger = sent.max(received) as f64;
        let outcome = match sent.abs_diff(received) as f64 <= AGREEMENT * larger {
            true => Outcome::Agreed {
                sender,
                receiver,
                bytes: sent.min(received),
            },
            false => Outcome::Disputed { sender },
        };
        Ok(Some(outcome))
    }

    /// Forgets transfers older than the limit, reported or not.
    pub fn expire(&mut self, now: u64) {
        let old: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.opened) >= self.limits.max_age)
            .map(|(&id, _)| id)
            .collect();
        for id in old {
            self.forget(id);
        }
    }

    fn forget(&mut self, id: u64) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        self.by_parties
            .remove(&(pending.sender, pending.receiver, pending.hash));
        if let Some(count) = self.opened_by.get_mut(&pending.opener) {
            *count -= 1;
            if *count == 0 {
                self.opened_by.remove(&pending.opener);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> StoreHash {
        StoreHash::parse(&"a".repeat(32)).unwrap()
    }

    fn transfers() -> Transfers {
        Transfers::new(TransferLimits::default(), 100)
    }

    #[test]
    fn both_sides_learn_one_id_and_agreeing_reports_credit_the_sender() {
        let (s, r, third) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut t = transfers();
        let id = t.open(r, s, r, hash(), 0).unwrap();
        assert_eq!(t.open(s, s, r, hash(), 1), Ok(id));
        assert_eq!(
            t.open(third, s, r, hash(), 1),
            Err(TransferError::NotAParty)
        );
        assert_eq!(
            t.report(r, id, Role::Sender, 1000),
            Err(TransferError::WrongRole(Role::Sender, id))
        );
        assert_eq!(t.report(s, id, Role::Sender, 1000), Ok(None));
        assert_eq!(
            t.report(s, id, Role::Sender, 1000),
            Err(TransferError::AlreadyReported(Role::Sender, id))
        );
        assert_eq!(
            t.report(r, id, Role::Receiver, 960),
            Ok(Some(Outcome::Agreed {
                sender: s,
                receiver: r,
                bytes: 960
            }))
        );
        assert_eq!(
            t.report(r, id, Role::Receiver, 960),
            Err(TransferError::Unknown(id))
        );
        // Resolved, the same parties and path open a new transfer.
        assert_ne!(t.open(s, s, r, hash(), 2), Ok(id));
    }

    #[test]
    fn disagreeing_reports_count_a_failure_and_bounds_hold() {
        let (s, r) = (PeerId::random(), PeerId::random());
        let limits = TransferLimits {
            max_pending: 2,
            max_per_peer: 1,
            max_age: 600,
        };
        let mut t = Transfers::new(limits, 1);
        let id = t.open(s, s, r, hash(), 0).unwrap();
        t.report(s, id, Role::Sender, 1000).unwrap();
        assert_eq!(
            t.report(r, id, Role::Receiver, 900),
            Ok(Some(Outcome::Disputed { sender: s }))
        );
        let other = StoreHash::parse(&"b".repeat(32)).unwrap();
        t.open(s, s, r, hash(), 0).unwrap();
        assert_eq!(t.open(s, s, r, other, 0), Err(TransferError::TooMany));
        t.expire(600);
        assert!(t.open(s, s, r, other, 600).is_ok());
    }
}
