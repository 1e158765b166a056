//! The plaintext digest, computed in one pass: the sha256 of the whole payload
//! and, for payloads that end with the sha256 of everything before it (etcd
//! snapshots), whether that trailer is right.
//!
//! The newest 32 bytes are held back from the hash until more data arrives, so
//! the state "everything but the last 32 bytes" is always at hand.

use sha2::{Digest, Sha256};

#[derive(Default, Clone)]
pub struct PlainDigest {
    head: Sha256,
    tail: Vec<u8>,
    size: u64,
}

/// The result of a [`PlainDigest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainSum {
    pub size: u64,
    /// sha256 of the whole payload.
    pub sha256: String,
    /// `Ok` if the last 32 bytes are the sha256 of the rest; else what was found.
    pub trailer: Result<(), TrailerMismatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailerMismatch {
    pub recorded: String,
    pub computed: String,
}

impl PlainDigest {
    pub fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        if chunk.len() >= 32 {
            self.head.update(&self.tail);
            let cut = chunk.len() - 32;
            self.head.update(&chunk[..cut]);
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[cut..]);
        } else {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > 32 {
                let cut = self.tail.len() - 32;
                self.head.update(&self.tail[..cut]);
                self.tail.drain(..cut);
            }
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn finish(self) -> PlainSum {
        let mut whole = self.head.clone();
        whole.update(&self.tail);
        let computed = self.head.finalize();
        let trailer = if self.tail.len() == 32 && computed.as_slice() == self.tail.as_slice() {
            Ok(())
        } else {
            Err(TrailerMismatch {
                recorded: hex::encode(&self.tail),
                computed: hex::encode(computed),
            })
        };
        PlainSum {
            size: self.size,
            sha256: hex::encode(whole.finalize()),
            trailer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_trailer(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(&Sha256::digest(body));
        v
    }

    fn digest(data: &[u8], split: usize) -> PlainSum {
        let mut d = PlainDigest::default();
        for chunk in data.chunks(split) {
            d.update(chunk);
        }
        d.finish()
    }

    #[test]
    fn whole_hash_and_trailer_across_chunk_boundaries() {
        let data = with_trailer(&[7u8; 1000]);
        for split in [1, 31, 32, 33, 500, 1031, 5000] {
            let sum = digest(&data, split);
            assert_eq!(sum.size, 1032, "split {split}");
            assert_eq!(
                sum.sha256,
                hex::encode(Sha256::digest(&data)),
                "split {split}"
            );
            assert_eq!(sum.trailer, Ok(()), "split {split}");
        }
    }

    #[test]
    fn flipped_byte_or_short_payload_fails_the_trailer() {
        let mut data = with_trailer(&[7u8; 1000]);
        data[10] ^= 1;
        assert!(digest(&data, 100).trailer.is_err());
        assert!(digest(b"tiny", 2).trailer.is_err());
        assert_eq!(digest(b"", 1).sha256, hex::encode(Sha256::digest(b"")));
    }
}
