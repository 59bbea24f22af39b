//! Where the records of a client's input end, without buffering them: a client moves to
//! another app server only between two records of what it sends (a JSON record ends with
//! the record separator; a MessagePack record is a VarInt length and that many bytes).

use switchboard::protocol::Protocol;
use switchboard::protocol::framing::RECORD_SEPARATOR;

/// Follows the records of one direction of a connection, chunk by chunk.
#[derive(Debug, Clone)]
pub(crate) struct RecordBoundary {
    protocol: Protocol,
    /// JSON: whether bytes of an unfinished record were seen.
    open: bool,
    /// MessagePack: the bytes of the current record still to come.
    remaining: usize,
    /// MessagePack: the length prefix read so far (7 bits a byte), and how many bytes of it.
    prefix: usize,
    prefix_bytes: u32,
}

impl RecordBoundary {
    /// At a boundary, before the first record of `protocol`.
    pub(crate) fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            open: false,
            remaining: 0,
            prefix: 0,
            prefix_bytes: 0,
        }
    }

    /// Whether everything seen so far ends at the end of a record.
    pub(crate) fn at_boundary(&self) -> bool {
        match self.protocol {
            Protocol::Json => !self.open,
            Protocol::MessagePack => self.remaining == 0 && self.prefix_bytes == 0,
        }
    }

    /// Takes in `chunk`, the next bytes; returns the offset just past the first record end
    /// in it, if one is there (everything before that offset then ends at a boundary).
    pub(crate) fn first_end(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut first = None;
        let mut at = 0;
        while at < chunk.len() {
            let end = self.advance(&chunk[at..]);
            at += end.unwrap_or(chunk.len() - at);
            if end.is_some() && first.is_none() {
                first = Some(at);
            }
        }
        first
    }

    /// Takes in bytes up to and including the next record end, if `bytes` holds one: returns
    /// how many bytes that was; `None` (and all of `bytes` taken) when the record goes on.
    fn advance(&mut self, bytes: &[u8]) -> Option<usize> {
        match self.protocol {
            Protocol::Json => match bytes.iter().position(|b| *b == RECORD_SEPARATOR) {
                Some(end) => {
                    self.open = false;
                    Some(end + 1)
                }
                None => {
                    self.open |= !bytes.is_empty();
                    None
                }
            },
            Protocol::MessagePack => {
                let mut used = 0;
                while self.remaining == 0 {
                    let &byte = bytes.get(used)?;
                    used += 1;
                    if self.prefix_bytes < 5 {
                        self.prefix |= usize::from(byte & 0x7f) << (7 * self.prefix_bytes);
                    }
                    self.prefix_bytes += 1;
                    if byte & 0x80 == 0 {
                        self.remaining = std::mem::take(&mut self.prefix);
                        self.prefix_bytes = 0;
                        if self.remaining == 0 {
                            // An empty record ends at once.
                            return Some(used);
                        }
                    }
                }
                let left = bytes.len() - used;
                if left >= self.remaining {
                    used += self.remaining;
                    self.remaining = 0;
                    Some(used)
                } else {
                    self.remaining -= left;
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_end_at_the_separator() {
        let mut records = RecordBoundary::new(Protocol::Json);
        assert!(records.at_boundary());
        assert_eq!(records.first_end(b"{\"type\":6}\x1e{\"ty"), Some(11));
        assert!(!records.at_boundary());
        assert_eq!(records.first_end(b"pe\":6"), None);
        assert_eq!(records.first_end(b"}\x1e"), Some(2));
        assert!(records.at_boundary());
        assert_eq!(records.first_end(b""), None);
        assert!(records.at_boundary());
    }

    #[test]
    fn messagepack_records_are_counted_by_their_prefix_across_chunks() {
        let mut records = RecordBoundary::new(Protocol::MessagePack);
        // Two whole records, then the start of a third with a two-byte prefix (200 bytes).
        let mut chunk = vec![3, 0x93, 1, 2, 1, 0x90];
        chunk.extend([0xc8, 0x01, 9, 9]);
        assert_eq!(records.first_end(&chunk), Some(4));
        assert!(!records.at_boundary());
        assert_eq!(records.first_end(&[9; 197]), None);
        assert_eq!(records.first_end(&[9, 3]), Some(1), "the third ends, a fourth begins");
        assert!(!records.at_boundary());
        let mut records = RecordBoundary::new(Protocol::MessagePack);
        assert_eq!(records.first_end(&[0x80]), None, "a prefix split over chunks");
        assert_eq!(records.first_end(&[0x01]), None);
        assert_eq!(records.first_end(&[7; 128]), Some(128));
        assert!(records.at_boundary());
        assert_eq!(records.first_end(&[0]), Some(1), "an empty record");
        assert!(records.at_boundary());
    }

    #[test]
    fn an_oversized_prefix_does_not_overflow() {
        let mut records = RecordBoundary::new(Protocol::MessagePack);
        assert_eq!(records.first_end(&[0xff; 12]), None);
        assert!(!records.at_boundary());
    }
}
