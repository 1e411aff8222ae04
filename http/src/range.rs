//! Single `Range: bytes=...` requests (RFC 9110 §14.1.2). Anything else is served whole.

/// A parsed, not yet resolved, byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-` or `bytes=start-last` (inclusive last).
    From { start: u64, last: Option<u64> },
    /// `bytes=-n`: the final n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// `None` for headers that are absent, malformed or ask for several ranges: the RFC lets a
    /// server ignore those and answer 200 with the whole body.
    pub fn parse(header: &str) -> Option<Self> {
        let spec = header.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        if first.trim().is_empty() {
            return number(last).map(ByteRange::Suffix);
        }
        let start = number(first)?;
        let last = if last.trim().is_empty() {
            None
        } else {
            Some(number(last)?)
        };
        if last.is_some_and(|l| l < start) {
            return None;
        }
        Some(ByteRange::From { start, last })
    }

    /// The half-open span within a body of `size` bytes, or `None` when unsatisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            // An empty body has no byte to return, whatever the form.
            _ if size == 0 => None,
            ByteRange::From { start, .. } if start >= size => None,
            ByteRange::From { start, last } => {
                Some((start, last.map_or(size, |l| l.saturating_add(1).min(size))))
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((size.saturating_sub(n), size)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        let r = |h| ByteRange::parse(h).and_then(|r| r.resolve(1000));
        assert_eq!(r("bytes=0-99"), Some((0, 100)));
        assert_eq!(r("bytes=900-"), Some((900, 1000)));
        assert_eq!(r("bytes=900-5000"), Some((900, 1000)));
        assert_eq!(r("bytes=-100"), Some((900, 1000)));
        assert_eq!(r("bytes=-5000"), Some((0, 1000)));
        assert_eq!(r("bytes=1000-"), None);
        assert_eq!(r("bytes=-0"), None);
        assert_eq!(ByteRange::parse("bytes=-1").unwrap().resolve(0), None);
        assert_eq!(ByteRange::parse("bytes=0-").unwrap().resolve(0), None);
    }

    #[test]
    fn ignores_what_it_does_not_serve() {
        for h in [
            "",
            "bytes=",
            "bytes=-",
            "items=0-1",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "bytes=+1-2",
            "bytes=a-b",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(ByteRange::parse(h), None, "{h:?}");
        }
    }
}
