//! A fast hasher for maps keyed by short byte strings (command names, key prefixes): the
//! one-shot xxh3 of each write, where the streaming `Xxh3Builder` sets up a large state for
//! every lookup.

use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::xxh3_64_with_seed;

#[derive(Default)]
pub struct Short(u64);

impl Hasher for Short {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Builds [`Short`] hashers.
pub type ShortBuild = BuildHasherDefault<Short>;
