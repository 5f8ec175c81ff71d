//! [`FastHash`]: a cheap hash for keys that cannot be used to flood a table.
//!
//! Request ids are ours (a counter), never the peer's; handler names are looked up in a
//! table only the application fills, so a peer that sends colliding names only slows its own
//! lookups. Neither needs SipHash's resistance to chosen keys: a multiplicative hash for
//! integers and FNV-1a for bytes cost a fraction of it on the per-message path.

use std::hash::{BuildHasherDefault, Hasher};

/// Builds [`FastHasher`]s.
pub(crate) type FastHash = BuildHasherDefault<FastHasher>;

#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        // Mix the high bits down: hashbrown takes its control byte from the top 7 bits.
        self.0 ^ (self.0 >> 29)
    }
}
