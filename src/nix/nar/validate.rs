//! A push parser that checks a NAR's structure as its bytes arrive, without buffering contents.
//!
//! It enforces what Nix enforces when it unpacks (the grammar, zero padding, strictly sorted and
//! unique entry names, no `.`/`..`/`/`/NUL in names) plus bounds that keep a hostile peer from
//! making it allocate or recurse without limit.

use thiserror::Error;

use super::{padding, MAGIC};

/// Longest entry name Linux file systems accept.
pub const MAX_NAME_LEN: usize = 255;
/// PATH_MAX, counting the terminating NUL.
pub const MAX_TARGET_LEN: usize = 4095;
/// Deeper trees do not occur in store paths; the bound keeps the stack finite.
pub const MAX_DEPTH: usize = 256;
/// Longest keyword in the grammar (`nix-archive-1`, `executable`, ...).
const MAX_KEYWORD_LEN: usize = 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NarError {
    #[error("NAR byte {offset}: expected {expected}")]
    Unexpected { offset: u64, expected: &'static str },
    #[error("NAR byte {offset}: string of {len} bytes exceeds {max}")]
    TooLong { offset: u64, len: u64, max: usize },
    #[error("NAR byte {offset}: non-zero padding")]
    Padding { offset: u64 },
    #[error("NAR byte {offset}: invalid entry name")]
    Name { offset: u64 },
    #[error("NAR byte {offset}: entry names not strictly sorted")]
    Order { offset: u64 },
    #[error("NAR byte {offset}: directories nested deeper than {MAX_DEPTH}")]
    Depth { offset: u64 },
    #[error("NAR byte {offset}: data after the end of the archive")]
    Trailing { offset: u64 },
    #[error("NAR ended early, at byte {offset}")]
    Truncated { offset: u64 },
}

/// Where the grammar stands: what the next token must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grammar {
    Magic,
    NodeOpen,
    TypeKeyword,
    TypeValue,
    /// `executable` or `contents`.
    RegularField,
    ExecutableValue,
    ContentsKeyword,
    ContentsLength,
    NodeClose,
    TargetKeyword,
    TargetValue,
    /// `entry` or `)`.
    DirectoryNext,
    EntryOpen,
    NameKeyword,
    NameValue,
    NodeKeyword,
    EntryClose,
    End,
}

/// How the next bytes are read.
enum Token {
    /// A length-prefixed, padded string of at most `max` bytes.
    Str {
        max: usize,
    },
    Number,
    /// File contents passed through unbuffered, then their padding.
    Contents {
        left: u64,
        pad: usize,
    },
}

pub struct NarValidator {
    grammar: Grammar,
    token: Token,
    buf: Vec<u8>,
    /// Last entry name of each open directory.
    dirs: Vec<Option<Vec<u8>>>,
    offset: u64,
}

impl Default for NarValidator {
    fn default() -> Self {
        Self {
            grammar: Grammar::Magic,
            token: Token::Str {
                max: MAX_KEYWORD_LEN,
            },
            buf: Vec::with_capacity(64),
            dirs: Vec::new(),
            offset: 0,
        }
    }
}

impl NarValidator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes accepted so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), NarError> {
        while !input.is_empty() {
            if self.grammar == Grammar::End {
                return Err(NarError::Trailing {
                    offset: self.offset,
                });
            }
            let used = match self.token {
                Token::Contents { left, pad } => self.contents(input, left, pad)?,
                Token::Number => self.fill(input, 8),
                Token::Str { max } => self.string_bytes(input, max)?,
            };
            input = &input[used..];
            self.offset += used as u64;
            self.complete_token()?;
        }
        Ok(())
    }

    /// Call after the last byte: a NAR that stops mid-way is an error.
    pub fn finish(&self) -> Result<(), NarError> {
        match self.grammar {
            Grammar::End => Ok(()),
            _ => Err(NarError::Truncated {
                offset: self.offset,
            }),
        }
    }

    fn fill(&mut self, input: &[u8], target: usize) -> usize {
        let n = target.saturating_sub(self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        n
    }

    fn string_bytes(&mut self, input: &[u8], max: usize) -> Result<usize, NarError> {
        // The length prefix first, then (possibly over several calls) the text and padding.
        let mut used = self.fill(input, 8);
        if self.buf.len() >= 8 {
            let len = self.length_prefix();
            if len > max as u64 {
                return Err(NarError::TooLong {
                    offset: self.offset,
                    len,
                    max,
                });
            }
            let total = 8 + len as usize + padding(len);
            used += self.fill(&input[used..], total);
        }
        Ok(used)
    }

    fn length_prefix(&self) -> u64 {
        u64::from_le_bytes(self.buf[..8].try_into().unwrap_or_default())
    }

    fn contents(&mut self, input: &[u8], left: u64, pad: usize) -> Result<usize, NarError> {
        if left > 0 {
            let n = left.min(input.len() as u64);
            self.token = Token::Contents {
                left: left - n,
                pad,
            };
            return Ok(n as usize);
        }
        let n = self.fill(input, pad);
        if self.buf.iter().any(|&b| b != 0) {
            return Err(NarError::Padding {
                offset: self.offset,
            });
        }
        Ok(n)
    }

    /// If the current token is whole, hands it to the grammar.
    fn complete_token(&mut self) -> Result<(), NarError> {
        match self.token {
            Token::Contents { left: 0, pad } if self.buf.len() == pad => {
                self.buf.clear();
                self.expect_keyword(Grammar::NodeClose);
            }
            Token::Number if self.buf.len() == 8 => {
                let len = self.length_prefix();
                self.buf.clear();
                self.token = Token::Contents {
                    left: len,
                    pad: padding(len),
                };
                self.complete_token()?;
            }
            Token::Str { .. } if self.buf.len() >= 8 => {
                let len = self.length_prefix() as usize;
                if self.buf.len() == 8 + len + padding(len as u64) {
                    let (text, pad) = self.buf[8..].split_at(len);
                    if pad.iter().any(|&b| b != 0) {
                        return Err(NarError::Padding {
                            offset: self.offset,
                        });
                    }
                    let text = text.to_vec();
                    self.buf.clear();
                    self.on_string(&text)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn expect_keyword(&mut self, next: Grammar) {
        self.grammar = next;
        self.token = Token::Str {
            max: MAX_KEYWORD_LEN,
        };
    }

    fn unexpected(&self, expected: &'static str) -> NarError {
        NarError::Unexpected {
            offset: self.offset,
            expected,
        }
    }

    fn keyword(&self, text: &[u8], want: &'static str) -> Result<(), NarError> {
        (text == want.as_bytes())
            .then_some(())
            .ok_or_else(|| self.unexpected(want))
    }

    fn on_string(&mut self, text: &[u8]) -> Result<(), NarError> {
        use Grammar::*;
        match self.grammar {
            Magic => {
                self.keyword(text, MAGIC)?;
                self.expect_keyword(NodeOpen);
            }
            NodeOpen => {
                self.keyword(text, "(")?;
                self.expect_keyword(TypeKeyword);
            }
            TypeKeyword => {
                self.keyword(text, "type")?;
                self.expect_keyword(TypeValue);
            }
            TypeValue => match text {
                b"regular" => self.expect_keyword(RegularField),
                b"symlink" => self.expect_keyword(TargetKeyword),
                b"directory" => {
                    if self.dirs.len() >= MAX_DEPTH {
                        return Err(NarError::Depth {
                            offset: self.offset,
                        });
                    }
                    self.dirs.push(None);
                    self.expect_keyword(DirectoryNext);
                }
                _ => return Err(self.unexpected("regular, symlink or directory")),
            },
            RegularField => match text {
                b"executable" => self.expect_keyword(ExecutableValue),
                b"contents" => self.start_contents(),
                _ => return Err(self.unexpected("executable or contents")),
            },
            ExecutableValue => {
                self.keyword(text, "")?;
                self.expect_keyword(ContentsKeyword);
            }
            ContentsKeyword => {
                self.keyword(text, "contents")?;
                self.start_contents();
            }
            TargetKeyword => {
                self.keyword(text, "target")?;
                self.grammar = TargetValue;
                self.token = Token::Str {
                    max: MAX_TARGET_LEN,
                };
            }
            TargetValue => {
                if text.is_empty() || text.contains(&0) {
                    return Err(self.unexpected("a non-empty symlink target without NUL"));
                }
                self.expect_keyword(NodeClose);
            }
            NodeClose => {
                self.keyword(text, ")")?;
                self.node_closed();
            }
            DirectoryNext => match text {
                b"entry" => self.expect_keyword(EntryOpen),
                b")" => {
                    self.dirs.pop();
                    self.node_closed();
                }
                _ => return Err(self.unexpected("entry or )")),
            },
            EntryOpen => {
                self.keyword(text, "(")?;
                self.expect_keyword(NameKeyword);
            }
            NameKeyword => {
                self.keyword(text, "name")?;
                self.grammar = NameValue;
                self.token = Token::Str { max: MAX_NAME_LEN };
            }
            NameValue => {
                self.check_name(text)?;
                self.expect_keyword(NodeKeyword);
            }
            NodeKeyword => {
                self.keyword(text, "node")?;
                self.expect_keyword(NodeOpen);
            }
            EntryClose => {
                self.keyword(text, ")")?;
                self.expect_keyword(DirectoryNext);
            }
            // Numbers and contents are read in these states, never strings.
            ContentsLength | End => return Err(self.unexpected("no string here")),
        }
        Ok(())
    }

    fn start_contents(&mut self) {
        self.grammar = Grammar::ContentsLength;
        self.token = Token::Number;
    }

    fn node_closed(&mut self) {
        if self.dirs.is_empty() {
            self.grammar = Grammar::End;
        } else {
            self.expect_keyword(Grammar::EntryClose);
        }
    }

    fn check_name(&mut self, name: &[u8]) -> Result<(), NarError> {
        let offset = self.offset;
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            return Err(NarError::Name { offset });
        }
        let last = self.dirs.last_mut().ok_or(NarError::Name { offset })?;
        if last.as_deref().is_some_and(|prev| prev >= name) {
            return Err(NarError::Order { offset });
        }
        *last = Some(name.to_vec());
        Ok(())
    }
}
