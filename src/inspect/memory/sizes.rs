//! Byte sizes the memory model is built from: what an allocator hands out for a request, and
//! what the server's own encodings take (sds strings, listpack and ziplist entries).

use crate::rdb::Elem;

/// The allocator the server was built with. `MEMORY USAGE` reports allocation sizes, so the
/// size classes matter as much as the structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocator {
    /// jemalloc as Redis and Valkey bundle it (`--with-lg-quantum=3`): classes 8 bytes apart up
    /// to 64, then four per doubling.
    #[default]
    Jemalloc,
    /// A system jemalloc with its default 16-byte quantum (Debian's and Ubuntu's packages link
    /// one): 8, then classes 16 bytes apart up to 128, then four per doubling.
    Jemalloc16,
    /// glibc malloc (`make MALLOC=libc`): the request plus an 8-byte header rounded up to 16.
    /// Only approximate: glibc may hand out a chunk 16 bytes larger than asked for when the
    /// remainder of a free chunk would be too small to keep.
    Libc,
}

impl Allocator {
    pub fn name(self) -> &'static str {
        match self {
            Allocator::Jemalloc => "jemalloc",
            Allocator::Jemalloc16 => "jemalloc-16",
            Allocator::Libc => "libc",
        }
    }

    /// Usable size of an allocation of `n` bytes (what `zmalloc_size` reports).
    pub fn size(self, n: u64) -> u64 {
        match self {
            Allocator::Jemalloc => jemalloc(n, 8),
            Allocator::Jemalloc16 => jemalloc(n, 16),
            Allocator::Libc => glibc(n),
        }
    }
}

/// jemalloc's size class for `n` bytes with the given quantum (8 or 16): quantum-spaced classes
/// up to four quanta past the smallest group, then four classes per doubling.
pub fn jemalloc(n: u64, quantum: u64) -> u64 {
    let spaced_up_to = if quantum == 8 { 64 } else { 128 };
    match n {
        0..=8 => 8,
        _ if n <= spaced_up_to => n.div_ceil(quantum) * quantum,
        _ => {
            let group = 1u64 << (63 - (n - 1).leading_zeros());
            let step = group / 4;
            n.div_ceil(step) * step
        }
    }
}

/// What `malloc_usable_size` reports for `n` bytes from glibc on 64-bit: chunks of at least 32
/// bytes, 16-aligned, with 8 bytes of header; requests from 128 KiB on get pages of their own.
pub fn glibc(n: u64) -> u64 {
    const MMAP_THRESHOLD: u64 = 128 * 1024;
    let chunk = ((n + 8 + 15) & !15).max(32);
    if chunk >= MMAP_THRESHOLD {
        (n + 8 + 15).next_multiple_of(4096) - 16
    } else {
        chunk - 8
    }
}

/// Header bytes of an sds string of `len` bytes: the type `sdsReqType` picks (type 5 below
/// 32 bytes, then 8, 16, 32 and 64-bit lengths).
pub fn sds_header(len: u64) -> u64 {
    match len {
        0..32 => 1,
        32..256 => 3,
        256..65536 => 5,
        65536..0x1_0000_0000 => 9,
        _ => 17,
    }
}

/// Bytes requested for a standalone sds string (`sdsnewlen`): header, content, terminator.
/// An empty one gets a type-8 header, as `sdsnewlen` never makes an empty type-5 string.
pub fn sds_request(len: u64) -> u64 {
    let header = if len == 0 { 3 } else { sds_header(len) };
    header + len + 1
}

/// The integer a string stands for, when it is written the one way Redis would write it
/// (`string2ll`: an optional minus, no leading zeros, no "-0", within 64 bits).
pub fn canonical_int(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    match digits {
        [] | [b'0', _, ..] => return None,
        [b'0'] if negative => return None,
        _ if digits.len() > 19 => return None,
        _ => {}
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    if negative {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// The integer a packed encoding would store `e` as, if any.
fn packed_int(e: Elem<'_>) -> Option<i64> {
    match e {
        Elem::Int(i) => Some(i),
        Elem::Bytes(b) => canonical_int(b),
    }
}

/// Bytes of one listpack entry holding `e` (encoding, data and back-length).
pub fn listpack_entry(e: Elem<'_>) -> u64 {
    let size = match packed_int(e) {
        Some(i) => match i {
            0..=127 => 1,
            -4096..=4095 => 2,
            -32768..=32767 => 3,
            -8388608..=8388607 => 4,
            -2147483648..=2147483647 => 5,
            _ => 9,
        },
        None => {
            let n = e.len() as u64;
            n + match n {
                0..64 => 1,
                64..4096 => 2,
                _ => 5,
            }
        }
    };
    size + match size {
        0..=127 => 1,
        128..16383 => 2,
        16383..2097151 => 3,
        _ => 4,
    }
}

/// A listpack's header (total bytes and count) and end marker.
pub const LISTPACK_OVERHEAD: u64 = 6 + 1;
/// A ziplist's header (total bytes, tail offset, count) and end marker.
pub const ZIPLIST_OVERHEAD: u64 = 10 + 1;

/// Bytes of one ziplist entry holding `e` after an entry of `prev` bytes: the previous
/// entry's length (1 or 5 bytes), the encoding, and the data.
pub fn ziplist_entry(prev: u64, e: Elem<'_>) -> u64 {
    let prevlen = if prev < 254 { 1 } else { 5 };
    let body = match packed_int(e) {
        Some(i) => match i {
            0..=12 => 1,
            -128..=127 => 2,
            -32768..=32767 => 3,
            -8388608..=8388607 => 4,
            -2147483648..=2147483647 => 5,
            _ => 9,
        },
        None => {
            let n = e.len() as u64;
            n + match n {
                0..64 => 1,
                64..16384 => 2,
                _ => 5,
            }
        }
    };
    prevlen + body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        let sizes = [
            1, 8, 9, 17, 24, 33, 60, 100, 129, 161, 200, 257, 520, 1025, 8193,
        ];
        let q16 = sizes.map(|n| jemalloc(n, 16));
        assert_eq!(
            q16,
            [
                8, 8, 16, 32, 32, 48, 64, 112, 160, 192, 224, 320, 640, 1280, 10240
            ]
        );
        let q8 = sizes.map(|n| jemalloc(n, 8));
        assert_eq!(
            q8,
            [
                8, 8, 16, 24, 24, 40, 64, 112, 160, 192, 224, 320, 640, 1280, 10240
            ]
        );
        assert_eq!(
            [1, 24, 25, 40, 41, 100].map(glibc),
            [24, 24, 40, 40, 56, 104]
        );
        assert_eq!(glibc(200_000), 200_704 - 16);
    }

    #[test]
    fn sds_sizes() {
        assert_eq!(sds_request(5), 7);
        assert_eq!(sds_request(0), 4);
        assert_eq!(sds_request(40), 44);
        assert_eq!(sds_request(300), 306);
    }

    #[test]
    fn canonical_ints() {
        for (s, v) in [
            (&b"0"[..], Some(0)),
            (b"-7", Some(-7)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"-9223372036854775808", Some(i64::MIN)),
            (b"9223372036854775808", None),
            (b"007", None),
            (b"-0", None),
            (b"+1", None),
            (b"", None),
            (b"-", None),
            (b"1.5", None),
        ] {
            assert_eq!(canonical_int(s), v, "{}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn listpack_entries() {
        assert_eq!(listpack_entry(Elem::Int(5)), 2);
        assert_eq!(listpack_entry(Elem::Bytes(b"f1")), 4);
        assert_eq!(listpack_entry(Elem::Bytes(b"300")), 3);
        assert_eq!(listpack_entry(Elem::Bytes(b"007")), 5);
    }

    #[test]
    fn ziplist_entries() {
        assert_eq!(ziplist_entry(0, Elem::Int(5)), 2);
        assert_eq!(ziplist_entry(0, Elem::Int(100)), 3);
        assert_eq!(ziplist_entry(300, Elem::Bytes(b"abc")), 9);
        assert_eq!(ziplist_entry(10, Elem::Bytes(&[b'x'; 100])), 103);
    }
}
