//! Packed encodings rebuilt from their elements: the listpack a 7.0+ server makes of an old
//! ziplist, the ziplist an older server keeps, and the small encodings (intset, listpack or
//! ziplist) a server picks when it loads a set, hash or sorted set that the file stores as a
//! table but that is small enough for them.

use crate::rdb::Elem;

use super::sizes::{
    LISTPACK_OVERHEAD, ZIPLIST_OVERHEAD, canonical_int, listpack_entry, ziplist_entry,
};

/// Default thresholds of the small encodings (the same in every release): `set-max-intset-
/// entries`, `set-max-listpack-entries` (7.2+), `hash-max-listpack-entries`,
/// `zset-max-listpack-entries`, and the longest element any of them takes.
pub const SET_MAX_INTSET: u64 = 512;
pub const SET_MAX_LISTPACK: u64 = 128;
pub const HASH_MAX_PACKED: u64 = 512;
pub const ZSET_MAX_PACKED: u64 = 128;
pub const MAX_PACKED_VALUE: u64 = 64;

/// The size of a listpack or ziplist built element by element.
#[derive(Debug, Clone, Copy)]
pub struct Packer {
    listpack: bool,
    bytes: u64,
    /// Size of the last ziplist entry, which the next one records.
    prev: u64,
}

impl Packer {
    pub fn new(listpack: bool) -> Self {
        Packer {
            listpack,
            bytes: if listpack {
                LISTPACK_OVERHEAD
            } else {
                ZIPLIST_OVERHEAD
            },
            prev: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes `e` would add.
    pub fn entry(&self, e: Elem<'_>) -> u64 {
        if self.listpack {
            listpack_entry(e)
        } else {
            ziplist_entry(self.prev, e)
        }
    }

    pub fn push(&mut self, e: Elem<'_>) {
        let size = self.entry(e);
        self.bytes += size;
        self.prev = size;
    }

    /// Pushes a score as the server writes it in a packed sorted set: an integer when it is
    /// one below 2^52, else its text, `%.17g` (`long_text`, up to 7.0) or the shortest that
    /// reads back (7.2+).
    pub fn push_score(&mut self, score: f64, long_text: bool) {
        const EXACT: f64 = 4503599627370496.0; // 2^52
        if score.fract() == 0.0 && score.abs() < EXACT {
            self.push(Elem::Int(score as i64));
        } else if long_text {
            self.push(Elem::Bytes(g17(score).as_bytes()));
        } else {
            crate::resp::with_score(score, |s| self.push(Elem::Bytes(s)));
        }
    }
}

/// C's `%.17g`: 17 significant digits, trailing zeros dropped, exponent form below 1e-4 and
/// from 1e17.
fn g17(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if v.is_nan() {
        return "nan".to_string();
    }
    let sci = format!("{v:.16e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        trim(&format!("{v:.*}", (16 - exp) as usize))
    }
}

/// What a set, hash or sorted set stored as a table would take in a small encoding, tracked
/// only while it could still qualify.
#[derive(Debug, Clone, Copy)]
pub struct Small {
    packer: Packer,
    elements: u64,
    longest: u64,
    /// All members are integers (for an intset), and the widest one's width.
    ints: bool,
    width: u64,
    /// Elements beyond which no small encoding takes the value.
    limit: u64,
    /// Only an intset could take it (sets before 7.2, which have no listpack sets).
    ints_only: bool,
}

impl Small {
    pub fn new(listpack: bool, limit: u64) -> Self {
        Small {
            packer: Packer::new(listpack),
            elements: 0,
            longest: 0,
            ints: true,
            width: 2,
            limit,
            ints_only: false,
        }
    }

    /// For a set that can only become an intset.
    pub fn ints_only(mut self) -> Self {
        self.ints_only = true;
        self
    }

    pub fn possible(&self) -> bool {
        self.elements <= self.limit
            && (self.ints || (!self.ints_only && self.longest <= MAX_PACKED_VALUE))
    }

    /// A set member: tracks the intset and the listpack it could be.
    pub fn member(&mut self, e: Elem<'_>) {
        self.elements += 1;
        if !self.possible() {
            return;
        }
        let int = match e {
            Elem::Int(i) => Some(i),
            Elem::Bytes(b) => canonical_int(b),
        };
        match int {
            Some(i) if i16::try_from(i).is_ok() => {}
            Some(i) if i32::try_from(i).is_ok() => self.width = self.width.max(4),
            Some(_) => self.width = 8,
            None => self.ints = false,
        }
        if !self.ints_only {
            self.longest = self.longest.max(e.len() as u64);
            // An integer is stored as one, so the packer need not parse it again.
            self.packer.push(int.map_or(e, Elem::Int));
        }
    }

    /// A hash field and value, or a sorted-set member and score.
    pub fn pair(&mut self, a: Elem<'_>, b: Elem<'_>) {
        self.elements += 1;
        self.ints = false;
        if self.possible() {
            self.longest = self.longest.max(a.len() as u64).max(b.len() as u64);
            self.packer.push(a);
            self.packer.push(b);
        }
    }

    pub fn scored(&mut self, member: Elem<'_>, score: f64, long_text: bool) {
        self.elements += 1;
        self.ints = false;
        if self.possible() {
            self.longest = self.longest.max(member.len() as u64);
            self.packer.push(member);
            self.packer.push_score(score, long_text);
        }
    }

    /// Bytes of the intset, if the members make one.
    pub fn intset(&self) -> Option<u64> {
        (self.ints && self.elements <= SET_MAX_INTSET).then(|| 8 + self.width * self.elements)
    }

    /// Bytes of the listpack or ziplist, if the elements fit one.
    pub fn packed(&self, max_elements: u64) -> Option<u64> {
        (!self.ints_only && self.elements <= max_elements && self.longest <= MAX_PACKED_VALUE)
            .then(|| self.packer.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_g17() {
        assert_eq!(g17(0.1), "0.10000000000000001");
        assert_eq!(g17(2.5), "2.5");
        assert_eq!(g17(-3.25), "-3.25");
        assert_eq!(g17(1e-300), "1e-300");
        assert_eq!(g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(g17(0.0001), "0.0001");
        assert_eq!(g17(123456789.123), "123456789.123");
        assert_eq!(g17(-1e300), "-1.0000000000000001e+300");
        assert_eq!(g17(1e16), "10000000000000000");
        assert_eq!(g17(f64::INFINITY), "inf");
    }

    #[test]
    fn small_sets() {
        let mut s = Small::new(true, SET_MAX_INTSET);
        for m in [&b"1"[..], b"-70000", b"5"] {
            s.member(Elem::Bytes(m));
        }
        assert_eq!(s.intset(), Some(8 + 4 * 3));
        s.member(Elem::Bytes(b"apple"));
        assert_eq!(s.intset(), None);
        assert!(s.packed(SET_MAX_LISTPACK).is_some());
        s.member(Elem::Bytes(&[b'x'; 65]));
        assert_eq!(s.packed(SET_MAX_LISTPACK), None);
    }
}
