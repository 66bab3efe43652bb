//! One record of a capture's stream segment: a run of whole commands as they arrived, framed
//! with the stream offset of its first byte, its arrival time, the database selected where it
//! starts, and a CRC-32C over the header and the payload.
//!
//! ```text
//! 0   4  magic "RBR1"
//! 4   4  payload length (u32, little-endian, like every field)
//! 8   8  stream offset of the payload's first byte (byte k of the stream has offset k)
//! 16  8  arrival time, Unix microseconds
//! 24  4  where the payload starts ([`At`]): the database selected (low 31 bits; all ones:
//!        not known), and the top bit set inside a MULTI … EXEC
//! 28  4  CRC-32C of bytes 0..28 and the payload
//! ```

use crc_fast::{CrcAlgorithm, Digest};

pub const MAGIC: &[u8; 4] = b"RBR1";
pub const HEADER: usize = 32;
const NO_DB: u32 = 0x7fff_ffff;
const IN_MULTI: u32 = 0x8000_0000;

/// The stream's state between two commands: the database selected, when known, and whether a
/// MULTI is open (its commands wait for EXEC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct At {
    pub db: Option<u32>,
    pub multi: bool,
}

impl At {
    fn encode(self) -> u32 {
        self.db.filter(|&d| d < NO_DB).unwrap_or(NO_DB) | if self.multi { IN_MULTI } else { 0 }
    }

    fn decode(v: u32) -> At {
        let db = v & NO_DB;
        At {
            db: (db != NO_DB).then_some(db),
            multi: v & IN_MULTI != 0,
        }
    }

    /// The state after the whole commands of `payload`, which start in this one.
    pub fn after(self, payload: &[u8]) -> At {
        let db = self.db.map_or(0, u64::from);
        let mut log = crate::aof::log::Log::piece(payload, 0, db, self.multi.then_some(0));
        let mut at = self;
        while let Some(Ok(c)) = log.next() {
            if c.kind == crate::aof::log::Kind::Select {
                at.db = u32::try_from(c.db).ok();
            }
        }
        at.multi = log.open_multi().is_some();
        at
    }
}

/// A record read back from a segment.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Where its header starts in the segment file.
    pub at: usize,
    pub offset: u64,
    pub time_us: u64,
    /// The stream's state where the payload starts.
    pub at_start: At,
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// The stream offset of the payload's last byte.
    pub fn last(&self) -> u64 {
        self.offset + self.payload.len() as u64 - 1
    }

    /// The offset the next record starts at.
    pub fn next(&self) -> u64 {
        self.offset + self.payload.len() as u64
    }
}

/// The header and checksum of a record holding `payload`, to be written just before it.
pub fn header(offset: u64, time_us: u64, at: At, payload: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[8..16].copy_from_slice(&offset.to_le_bytes());
    h[16..24].copy_from_slice(&time_us.to_le_bytes());
    h[24..28].copy_from_slice(&at.encode().to_le_bytes());
    let crc = checksum(&h[..28], payload);
    h[28..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn checksum(head: &[u8], payload: &[u8]) -> u32 {
    let mut d = Digest::new(CrcAlgorithm::Crc32Iscsi);
    d.update(head);
    d.update(payload);
    d.finalize() as u32
}

/// Why the bytes at a segment position are not the record expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flaw {
    /// The segment ends inside the header or the payload (a write cut short).
    Short {
        have: usize,
        need: usize,
    },
    BadMagic,
    BadChecksum,
    /// The record does not continue the stream where the previous one ended.
    Gap {
        expected: u64,
        found: u64,
    },
    /// An empty record (the writer never makes one).
    Empty,
}

impl std::fmt::Display for Flaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flaw::Short { have, need } => {
                write!(f, "a record cut short ({have} of {need} bytes)")
            }
            Flaw::BadMagic => write!(f, "no record header (bad magic)"),
            Flaw::BadChecksum => write!(f, "a record whose checksum does not match"),
            Flaw::Gap { expected, found } => write!(
                f,
                "a record at stream offset {found} where {expected} was expected"
            ),
            Flaw::Empty => write!(f, "an empty record"),
        }
    }
}

/// A flaw and where in the segment file it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub at: usize,
    pub flaw: Flaw,
}

impl Bad {
    /// A flaw that reaches the end of the segment `data`: what a write interrupted by a kill
    /// leaves (a record cut short), or a crash of the machine (a last record whose bytes did
    /// not all reach the disk, or zeros where the file grew).
    pub fn is_torn(&self, data: &[u8]) -> bool {
        let rest = &data[self.at.min(data.len())..];
        let stated = rest
            .get(4..8)
            .map(|l| HEADER + u32::from_le_bytes(l.try_into().unwrap()) as usize);
        match self.flaw {
            Flaw::Short { .. } => true,
            Flaw::BadChecksum => stated == Some(rest.len()),
            Flaw::BadMagic => rest.iter().all(|&b| b == 0),
            Flaw::Gap { .. } | Flaw::Empty => false,
        }
    }
}

/// The records of one segment, checked one by one; the first flaw ends the walk.
pub struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    next: Option<u64>,
    done: bool,
}

impl<'a> Records<'a> {
    /// The records of `data`; `first`, when known, is the offset the first must start at.
    pub fn new(data: &'a [u8], first: Option<u64>) -> Self {
        Records {
            data,
            pos: 0,
            next: first,
            done: false,
        }
    }

    /// Where the next record starts in the file.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn read(&self) -> Result<Record<'a>, Flaw> {
        let rest = &self.data[self.pos..];
        let short = |need| Flaw::Short {
            have: rest.len(),
            need,
        };
        let h = rest.get(..HEADER).ok_or_else(|| short(HEADER))?;
        if &h[..4] != MAGIC {
            return Err(Flaw::BadMagic);
        }
        let len = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
        let payload = rest
            .get(HEADER..HEADER + len)
            .ok_or_else(|| short(HEADER + len))?;
        let crc = u32::from_le_bytes(h[28..].try_into().unwrap());
        if checksum(&h[..28], payload) != crc {
            return Err(Flaw::BadChecksum);
        }
        if len == 0 {
            return Err(Flaw::Empty);
        }
        let offset = u64::from_le_bytes(h[8..16].try_into().unwrap());
        if let Some(expected) = self.next
            && expected != offset
        {
            return Err(Flaw::Gap {
                expected,
                found: offset,
            });
        }
        Ok(Record {
            at: self.pos,
            offset,
            time_us: u64::from_le_bytes(h[16..24].try_into().unwrap()),
            at_start: At::decode(u32::from_le_bytes(h[24..28].try_into().unwrap())),
            payload,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Bad>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.data.len() {
            return None;
        }
        match self.read() {
            Ok(r) => {
                self.pos += HEADER + r.payload.len();
                self.next = Some(r.next());
                Some(Ok(r))
            }
            Err(flaw) => {
                self.done = true;
                Some(Err(Bad { at: self.pos, flaw }))
            }
        }
    }
}
