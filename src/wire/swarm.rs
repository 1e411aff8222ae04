//! `/peerix/<tag>/swarm/1.0.0`: a node that starts fetching a NAR by its CID tells the near
//! members. The opener sends one frame, a [`Fetching`] notice (the binary CID); the answer is
//! one frame of one byte, [`SwarmAnswer`]: whether the answerer fetches that CID too, in which
//! case both now fetch it together (each adds the other to its swarm).

use cid::Cid;

use super::WireError;

/// A CID is a few dozen bytes; anything longer is not one.
const MAX_CID_LEN: usize = 128;
const NOT_FETCHING: u8 = 0;
const FETCHING: u8 = 1;

/// "I am fetching this file now."
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetching(pub Cid);

impl Fetching {
    pub fn encode(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        if frame.is_empty() || frame.len() > MAX_CID_LEN {
            return Err(WireError::BadCid(format!("{} bytes", frame.len())));
        }
        let cid = Cid::try_from(frame).map_err(|e| WireError::BadCid(e.to_string()))?;
        // Trailing bytes or overlong varints would make two encodings of one notice.
        if cid.to_bytes() != frame {
            return Err(WireError::BadCid("not the canonical encoding".to_owned()));
        }
        Ok(Self(cid))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwarmAnswer {
    Fetching,
    NotFetching,
}

impl SwarmAnswer {
    pub fn encode(self) -> Vec<u8> {
        match self {
            Self::Fetching => vec![FETCHING],
            Self::NotFetching => vec![NOT_FETCHING],
        }
    }

    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        match frame {
            [FETCHING] => Ok(Self::Fetching),
            [NOT_FETCHING] => Ok(Self::NotFetching),
            _ => Err(WireError::BadAnswer(frame.len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_and_answers_round_trip_and_junk_is_refused() {
        let cid: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            .parse()
            .unwrap();
        let notice = Fetching(cid);
        assert_eq!(Fetching::decode(&notice.encode()), Ok(notice));
        let mut long = notice.encode();
        long.push(0);
        assert!(Fetching::decode(&long).is_err());
        assert!(Fetching::decode(&[]).is_err());
        assert!(Fetching::decode(&[0xff; 200]).is_err());
        // A codec written as an overlong varint (found by fuzzing).
        let overlong = [1, 255, 255, 255, 255, 255, 255, 255, 255, 255, 53, 0, 1, 0];
        assert!(Fetching::decode(&overlong).is_err());
        for answer in [SwarmAnswer::Fetching, SwarmAnswer::NotFetching] {
            assert_eq!(SwarmAnswer::decode(&answer.encode()), Ok(answer));
        }
        assert!(SwarmAnswer::decode(&[2]).is_err());
        assert!(SwarmAnswer::decode(&[1, 1]).is_err());
    }
}
