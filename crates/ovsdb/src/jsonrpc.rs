//! JSON-RPC 1.0 framing over a byte stream, as OVSDB uses it: messages are
//! JSON objects sent back to back, with no length prefix or delimiter.
//!
//! [`Splitter`] finds message boundaries by tracking bracket depth outside
//! strings, so a message can be handed to serde_json whole. It bounds the
//! size of one message so a peer cannot make us buffer without limit.

use serde_json::{json, Value};

/// Why the stream cannot be framed any further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A message exceeded the size limit.
    TooLarge(usize),
    /// Bytes outside any JSON object/array.
    Garbage(u8),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge(n) => write!(f, "message exceeds {n} bytes"),
            FrameError::Garbage(b) => write!(f, "unexpected byte 0x{b:02x} between messages"),
        }
    }
}

/// Incremental splitter of concatenated JSON texts.
#[derive(Debug)]
pub struct Splitter {
    cur: Vec<u8>,
    depth: u32,
    in_str: bool,
    esc: bool,
    max: usize,
}

impl Splitter {
    /// A splitter that rejects messages larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        Splitter { cur: Vec::new(), depth: 0, in_str: false, esc: false, max }
    }

    /// True while a message has begun but not ended: the peer owes us the rest of it.
    pub fn in_message(&self) -> bool {
        self.depth > 0
    }

    /// Feeds bytes; calls `emit` for every complete message.
    pub fn feed(&mut self, data: &[u8], emit: &mut dyn FnMut(Vec<u8>)) -> Result<(), FrameError> {
        let mut start = 0usize;
        let mut i = 0usize;
        while i < data.len() {
            let b = data[i];
            if self.depth == 0 {
                // Between messages.
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => {
                        i += 1;
                        start = i;
                        continue;
                    }
                    b'{' | b'[' => {
                        self.depth = 1;
                        start = i;
                        i += 1;
                        continue;
                    }
                    other => return Err(FrameError::Garbage(other)),
                }
            }
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                }
            } else {
                match b {
                    b'"' => self.in_str = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            self.cur.extend_from_slice(&data[start..=i]);
                            emit(std::mem::take(&mut self.cur));
                            start = i + 1;
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
            if self.cur.len() + (i - start) > self.max {
                return Err(FrameError::TooLarge(self.max));
            }
        }
        if self.depth > 0 && start < data.len() {
            self.cur.extend_from_slice(&data[start..]);
            if self.cur.len() > self.max {
                return Err(FrameError::TooLarge(self.max));
            }
        }
        Ok(())
    }
}

/// A reply carrying `result`.
pub fn reply(id: &Value, result: Value) -> Value {
    json!({"id": id, "result": result, "error": null})
}

/// A reply carrying an error object.
pub fn error_reply(id: &Value, error: Value) -> Value {
    json!({"id": id, "result": null, "error": error})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Result<Vec<String>, FrameError> {
        let mut s = Splitter::new(1000);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |m| out.push(String::from_utf8(m).unwrap()))?;
        }
        Ok(out)
    }

    #[test]
    fn splits_back_to_back_and_partial() {
        let out = split(&[b"{\"a\":\"}\\\"{\"}\n[1,[2]]{\"b", b"\":{}}"]).unwrap();
        assert_eq!(out, vec!["{\"a\":\"}\\\"{\"}", "[1,[2]]", "{\"b\":{}}"]);
    }

    #[test]
    fn rejects_garbage_and_huge() {
        assert_eq!(split(&[b"x"]), Err(FrameError::Garbage(b'x')));
        let big = vec![b'['; 10];
        let mut s = Splitter::new(5);
        assert_eq!(s.feed(&big, &mut |_| {}), Err(FrameError::TooLarge(5)));
        let mut s = Splitter::new(5);
        assert!(s.feed(b"[\"aa", &mut |_| {}).is_ok());
        assert!(s.feed(b"aaaa", &mut |_| {}).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut s = Splitter::new(64);
            let _ = s.feed(&data, &mut |_| {});
        }
    }
}
