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

/// Values by command name as written (names of up to 15 bytes, at most [`ByName::MAX`] of
/// them), looked up with no hashing: a linear search of the names packed into a u128 each.
/// A name it does not hold is looked up by the caller's slower way.
pub struct ByName<V> {
    names: Vec<u128>,
    values: Vec<V>,
}

impl<V> Default for ByName<V> {
    fn default() -> Self {
        ByName {
            names: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<V: Copy> ByName<V> {
    pub const MAX: usize = 64;

    fn pack(name: &[u8]) -> Option<u128> {
        if name.len() >= 16 {
            return None;
        }
        // Byte by byte: names are a few bytes, and a copy of a variable length is a call.
        let mut p = (name.len() as u128) << 120;
        for (i, &b) in name.iter().enumerate() {
            p |= u128::from(b) << (8 * i);
        }
        Some(p)
    }

    pub fn get(&self, name: &[u8]) -> Option<V> {
        let p = Self::pack(name)?;
        let i = self.names.iter().position(|&n| n == p)?;
        Some(self.values[i])
    }

    /// Remembers `value` for `name`, if it fits; whether it did.
    pub fn insert(&mut self, name: &[u8], value: V) -> bool {
        match Self::pack(name).filter(|_| self.names.len() < Self::MAX) {
            Some(p) => {
                self.names.push(p);
                self.values.push(value);
                true
            }
            None => false,
        }
    }
}
