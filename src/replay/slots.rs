//! Redis Cluster key slots: CRC16 (XMODEM) of the key's hash tag, modulo 16384.

use std::sync::OnceLock;

pub const SLOTS: usize = 16384;

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The slot of a key: the hash covers the part between the first `{` and the next `}` when that
/// part is not empty, the whole key otherwise.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = memchr::memchr(b'{', key).and_then(|open| {
        let rest = &key[open + 1..];
        memchr::memchr(b'}', rest)
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    CRC16.checksum(tagged.unwrap_or(key)) % SLOTS as u16
}

/// A short hash tag that lands in `slot`: `{tag}anything` is stored in that slot, which lets a
/// temporary key share its slot with the key it will be renamed to.
pub fn tag_for(slot: u16) -> &'static [u8] {
    static TAGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![Vec::new(); SLOTS];
        let mut missing = SLOTS;
        let mut n = 0u32;
        while missing > 0 {
            let s = n.to_string().into_bytes();
            let t = &mut tags[key_slot(&s) as usize];
            if t.is_empty() {
                *t = s;
                missing -= 1;
            }
            n += 1;
        }
        tags
    });
    &tags[slot as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_as_redis_computes_them() {
        // Values from CLUSTER KEYSLOT on a real server.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"123456789"), 0x31C3);
    }

    #[test]
    fn tags_cover_every_slot() {
        for slot in [0u16, 1, 5000, 16383] {
            let mut key = b"{".to_vec();
            key.extend_from_slice(tag_for(slot));
            key.extend_from_slice(b"}tmp");
            assert_eq!(key_slot(&key), slot);
        }
    }
}
