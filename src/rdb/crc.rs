//! CRC-64/REDIS (Jones polynomial, reflected, init 0): the RDB trailer and DUMP payload
//! checksum. Not CRC-64/XZ, which `crc64fast` computes.

use crc_fast::{CrcAlgorithm, Digest};

#[derive(Clone)]
pub struct Crc64(Digest);

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc64 {
    pub fn new() -> Self {
        Crc64(Digest::new(CrcAlgorithm::Crc64Redis))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn value(&self) -> u64 {
        self.0.finalize()
    }

    pub fn checksum(bytes: &[u8]) -> u64 {
        crc_fast::checksum(CrcAlgorithm::Crc64Redis, bytes)
    }

    /// The checksum of a DUMP payload's body: the type byte, the value, the RDB version (LE).
    /// The value goes through the vector path in one update; the three bytes around it are
    /// folded in a byte at a time (an update of their own would each set up the vector path,
    /// which cost more than checking a typical small value).
    pub fn payload(ty: u8, value: &[u8], version: u16) -> u64 {
        let table = byte_table();
        let state = byte_step(table, 0, ty);
        let mut d = Digest::new_with_init_state(CrcAlgorithm::Crc64Redis, state);
        d.update(value);
        version
            .to_le_bytes()
            .iter()
            .fold(d.finalize(), |crc, &b| byte_step(table, crc, b))
    }

    /// The checksum of `a ++ b` from the checksums of the parts, so halves can be summed on
    /// different cores.
    pub fn combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
        crc_fast::checksum_combine(CrcAlgorithm::Crc64Redis, crc_a, crc_b, len_b)
    }
}

/// A CRC-64 of a growing prefix of some data, shared (behind a lock) by the code that releases
/// a mapped file's pages, which sums them just before it lets them go, and the reader, which
/// finishes the sum when it reaches the trailer. So each page is read once more while it is
/// still mapped, rather than by a thread of its own running ahead, which would map and unmap
/// every page a second time.
#[derive(Default)]
pub struct PrefixCrc {
    crc: Crc64,
    upto: usize,
}

impl PrefixCrc {
    /// The checksum of `data[..end]` (`data` is always the same), summing what is not yet
    /// summed.
    pub fn upto(&mut self, data: &[u8], end: usize) -> u64 {
        let end = end.min(data.len());
        if end < self.upto {
            return Crc64::checksum(&data[..end]);
        }
        self.crc.update(&data[self.upto..end]);
        self.upto = end;
        self.crc.value()
    }
}

/// The register after one byte from a zero register, for every byte: what a reflected CRC
/// with no final XOR folds a byte in with. Made by the crate itself.
fn byte_table() -> &'static [u64; 256] {
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|i| Crc64::checksum(&[i as u8])))
}

fn byte_step(table: &[u64; 256], crc: u64, b: u8) -> u64 {
    table[usize::from(crc as u8 ^ b)] ^ (crc >> 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(Crc64::checksum(b"123456789"), 0xE9C6D914C4B8D9CA);
        let mut c = Crc64::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.value(), 0xE9C6D914C4B8D9CA);
        let a = Crc64::checksum(b"1234");
        let b = Crc64::checksum(b"56789");
        assert_eq!(Crc64::combine(a, b, 5), 0xE9C6D914C4B8D9CA);
    }

    #[test]
    fn payload_checksum_matches_one_pass() {
        for len in (0..300).chain([4096, 100_000]) {
            let value: Vec<u8> = (0..len).map(|i| (i * 131 + i / 7) as u8).collect();
            let (ty, version) = (len as u8, (len * 257) as u16);
            let mut whole = vec![ty];
            whole.extend_from_slice(&value);
            whole.extend_from_slice(&version.to_le_bytes());
            assert_eq!(Crc64::payload(ty, &value, version), Crc64::checksum(&whole));
        }
    }

    #[test]
    fn dump_payload_example() {
        // DUMP of "bar" from Redis 7.0: type, value, version 10 LE, then the CRC (LE).
        let body = [0x00, 0x03, b'b', b'a', b'r', 0x0a, 0x00];
        let crc = [0xe6, 0xbe, 0x49, 0x60, 0xee, 0x66, 0xfd, 0x17];
        assert_eq!(Crc64::checksum(&body), u64::from_le_bytes(crc));
    }
}
