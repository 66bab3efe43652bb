//! LZF decompression throughput on blobs taken from real RDB files.
//!
//!     cargo bench --bench lzf                       # every testdata/*.rdb
//!     cargo bench --bench lzf -- /path/to/dump.rdb  # plus these files
//!
//! The corpus: every string value and collection element longer than 20 bytes (what Redis
//! compresses), plus listpack-encoded chunks (≤ 8 KiB, like quicklist nodes) built from each
//! collection key's elements, compressed with `lzf::compress` (a port of liblzf, the encoder Redis
//! uses) and kept only when that saves at least 4 bytes, as `rdbSaveLzfStringObject` does. The
//! output is capped at ~64 MiB; files larger than their share are sampled key by key across the
//! whole file. For timing, the compressed blobs are laid out back to back, as in a file.
//!
//! Candidates, all fed the same blobs and checked byte for byte against the originals first:
//! `lzf` 1.0, `lzf-rust` 0.1, rdbtool's own decoder (`rdbtool::rdb::lzf`) and a plainer safe
//! decoder defined here, which (with `lzf-rust`) are also checked to accept and reject exactly
//! what the decoder of rdb-format.md §4.3 does, on truncated, mutated and random input. The last
//! row, allocating and zeroing the output only, is the floor every candidate pays.
//!
//! Time is this thread's CPU time (Linux schedstat; wall time elsewhere), so that a busy machine
//! preempting the benchmark does not count. Each candidate runs for at least `LZF_BENCH_SECS`
//! seconds (default 1) per round; rounds interleave the candidates (default 3,
//! `LZF_BENCH_ROUNDS`), and the median MB/s (10^6 bytes of output per second) is reported.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdbtool::rdb::{Elem, Item, Reader, Record};
use rdbtool::scan::mapped::MappedFile;

/// Total decompressed bytes in the corpus.
const CAP: usize = 64 << 20;
/// Redis compresses strings longer than this.
const MIN_LEN: usize = 20;
/// Listpack chunks are closed once they reach this size (quicklist's default node limit).
const LISTPACK_CHUNK: usize = 8 << 10;

// ---------------------------------------------------------------------------------------------
// Candidate decoders.

/// The straightforward safe decoder: the algorithm of rdb-format.md §4.3, with slice copies.
///
/// Literal runs are one `copy_from_slice`; a back-reference is one `copy_within` when its source
/// ends before it starts (distance ≥ length), a `fill` for distance 1 (a run of one byte), and
/// otherwise copied in distance-sized pieces, each of which only reads bytes already written.
pub fn decompress_plain(compressed: &[u8], ulen: usize) -> Result<Vec<u8>, &'static str> {
    let mut out = vec![0u8; ulen];
    let mut ip = 0;
    let mut op = 0;
    while ip < compressed.len() {
        let ctrl = usize::from(compressed[ip]);
        ip += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let src = compressed
                .get(ip..ip + n)
                .ok_or("literal run past the end of input")?;
            let dst = out
                .get_mut(op..op + n)
                .ok_or("output longer than declared")?;
            dst.copy_from_slice(src);
            ip += n;
            op += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*compressed.get(ip).ok_or("truncated back-reference")?);
                ip += 1;
            }
            let low = usize::from(*compressed.get(ip).ok_or("truncated back-reference")?);
            ip += 1;
            let dist = ((ctrl & 0x1f) << 8) + low + 1;
            let len = n + 2;
            if dist > op {
                return Err("back-reference before the start of output");
            }
            if len > ulen - op {
                return Err("output longer than declared");
            }
            let from = op - dist;
            if dist >= len {
                out.copy_within(from..from + len, op);
            } else if dist == 1 {
                let b = out[from];
                out[op..op + len].fill(b);
            } else {
                // Overlapping: the output is periodic with period `dist` from `from` on, so copy
                // it in pieces of at most `dist` bytes, each reading only finished output.
                let mut done = 0;
                while done < len {
                    let k = dist.min(len - done);
                    out.copy_within(from + done..from + done + k, op + done);
                    done += k;
                }
            }
            op += len;
        }
    }
    if op != ulen {
        return Err("output shorter than declared");
    }
    Ok(out)
}

fn via_lzf(c: &[u8], ulen: usize) -> Option<Vec<u8>> {
    lzf::decompress(c, ulen).ok()
}

fn via_lzf_rust(c: &[u8], ulen: usize) -> Option<Vec<u8>> {
    lzf_rust::decompress_into_vec(c, ulen).ok()
}

fn via_plain(c: &[u8], ulen: usize) -> Option<Vec<u8>> {
    decompress_plain(c, ulen).ok()
}

/// rdbtool's decoder (fixed-size copies where there is room), which came out of this bench.
fn via_wild(c: &[u8], ulen: usize) -> Option<Vec<u8>> {
    rdbtool::rdb::lzf::decompress(c, ulen as u64).ok()
}

/// Not a decoder: the cost of allocating and zeroing the output, which every candidate pays.
fn via_alloc_only(c: &[u8], ulen: usize) -> Option<Vec<u8>> {
    let mut v = vec![0u8; ulen];
    v[0] = c[0];
    Some(v)
}

type Decoder = fn(&[u8], usize) -> Option<Vec<u8>>;

/// The first is the baseline of the ratios; the last is only a floor.
const CANDIDATES: [(&str, Decoder); 5] = [
    ("lzf 1.0 crate", via_lzf),
    ("lzf-rust 0.1", via_lzf_rust),
    ("safe, slice copies", via_plain),
    ("rdbtool (safe, fixed-size copies)", via_wild),
    ("(allocation only)", via_alloc_only),
];
const DECODERS: usize = 4;

// ---------------------------------------------------------------------------------------------
// Corpus.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A string value or a collection element stored as its own RDB string.
    Single,
    /// A listpack built from a collection's elements.
    Listpack,
}

struct Blob {
    orig: Vec<u8>,
    comp: Vec<u8>,
    source: Source,
}

#[derive(Default)]
struct Corpus {
    blobs: Vec<Blob>,
    out_bytes: usize,
    /// Candidates over 20 bytes that LZF could not shrink by 4 bytes (Redis stores them raw).
    incompressible: usize,
}

impl Corpus {
    fn full(&self) -> bool {
        self.out_bytes >= CAP
    }

    fn offer(&mut self, data: &[u8], source: Source) {
        if data.len() <= MIN_LEN || self.full() {
            return;
        }
        match lzf::compress(data) {
            Ok(comp) if comp.len() + 4 <= data.len() => {
                self.out_bytes += data.len();
                self.blobs.push(Blob {
                    orig: data.to_vec(),
                    comp,
                    source,
                });
            }
            _ => self.incompressible += 1,
        }
    }
}

/// A listpack as Redis ≥ 7 writes it: total bytes, count, entries with back-lengths, 0xFF.
struct Listpack {
    buf: Vec<u8>,
    count: usize,
}

impl Listpack {
    fn new() -> Self {
        Listpack {
            buf: vec![0; 6],
            count: 0,
        }
    }

    fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..4096).contains(&v) {
            let u = (v as u64) & 0x1fff;
            self.buf.extend([0xc0 | (u >> 8) as u8, u as u8]);
        } else if let Ok(x) = i16::try_from(v) {
            self.buf.push(0xf1);
            self.buf.extend(x.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            self.buf.push(0xf2);
            self.buf.extend(&v.to_le_bytes()[..3]);
        } else if let Ok(x) = i32::try_from(v) {
            self.buf.push(0xf3);
            self.buf.extend(x.to_le_bytes());
        } else {
            self.buf.push(0xf4);
            self.buf.extend(v.to_le_bytes());
        }
        self.finish_entry(start);
    }

    fn push_bytes(&mut self, b: &[u8]) {
        // Redis stores integer-looking strings as integers.
        if let Some(v) = std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            && v.to_string().as_bytes() == b
        {
            return self.push_int(v);
        }
        let start = self.buf.len();
        let n = b.len();
        if n < 64 {
            self.buf.push(0x80 | n as u8);
        } else if n < 4096 {
            self.buf.extend([0xe0 | (n >> 8) as u8, n as u8]);
        } else {
            self.buf.push(0xf0);
            self.buf.extend((n as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(b);
        self.finish_entry(start);
    }

    fn push_elem(&mut self, e: &Elem<'_>) {
        match *e {
            Elem::Int(i) => self.push_int(i),
            Elem::Bytes(b) => self.push_bytes(b),
        }
    }

    fn push_score(&mut self, s: f64) {
        if s.fract() == 0.0 && s.abs() < 1e15 {
            self.push_int(s as i64)
        } else {
            self.push_bytes(format!("{s}").as_bytes())
        }
    }

    /// Appends the entry's back-length: 7 bits per byte, the first written byte being the most
    /// significant, every byte but the last written having the high bit set.
    fn finish_entry(&mut self, start: usize) {
        let mut l = self.buf.len() - start;
        let mut bytes = Vec::with_capacity(5);
        bytes.push((l & 127) as u8);
        l >>= 7;
        while l > 0 {
            bytes.push((l & 127) as u8 | 128);
            l >>= 7;
        }
        if bytes.len() > 1 {
            bytes[0] |= 128;
            let last = bytes.len() - 1;
            bytes[last] &= 127;
        }
        self.buf.extend(bytes.iter().rev());
        self.count += 1;
    }

    fn take(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let mut buf = std::mem::replace(&mut self.buf, vec![0; 6]);
        buf.push(0xff);
        let total = buf.len() as u32;
        buf[..4].copy_from_slice(&total.to_le_bytes());
        buf[4..6].copy_from_slice(&(self.count.min(65535) as u16).to_le_bytes());
        self.count = 0;
        Some(buf)
    }
}

/// Adds the blobs of one file; keeps one key in `stride`.
fn add_file(corpus: &mut Corpus, data: &[u8], stride: usize) -> Result<usize, String> {
    let mut reader = Reader::from_slice(data).map_err(|e| e.to_string())?;
    let mut keys = 0usize;
    let mut n = 0usize;
    while let Some(rec) = reader.next_record() {
        let rec = rec.map_err(|e| e.to_string())?;
        let Record::Key { .. } = rec.record else {
            continue;
        };
        n += 1;
        if !(n - 1).is_multiple_of(stride) {
            continue;
        }
        if corpus.full() {
            break;
        }
        keys += 1;
        let mut lp = Listpack::new();
        let mut singles: Vec<Vec<u8>> = Vec::new();
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let single = |e: &Elem<'_>, singles: &mut Vec<Vec<u8>>| {
            if let Elem::Bytes(b) = *e
                && b.len() > MIN_LEN
            {
                singles.push(b.to_vec());
            }
        };
        reader
            .read_value(&mut |item: Item<'_>| {
                match item {
                    Item::Str(e) => single(&e, &mut singles),
                    Item::Elem(e) => {
                        single(&e, &mut singles);
                        lp.push_elem(&e);
                    }
                    Item::Scored { member, score } => {
                        single(&member, &mut singles);
                        lp.push_elem(&member);
                        lp.push_score(score);
                    }
                    Item::Field { field, value, .. } | Item::StreamField { field, value } => {
                        single(&field, &mut singles);
                        single(&value, &mut singles);
                        lp.push_elem(&field);
                        lp.push_elem(&value);
                    }
                    _ => {}
                }
                if lp.buf.len() >= LISTPACK_CHUNK {
                    chunks.extend(lp.take());
                }
            })
            .map_err(|e| e.to_string())?;
        chunks.extend(lp.take());
        for s in &singles {
            corpus.offer(s, Source::Single);
        }
        for c in &chunks {
            corpus.offer(c, Source::Listpack);
        }
    }
    Ok(keys)
}

fn build_corpus(files: &[PathBuf]) -> Corpus {
    let mut corpus = Corpus::default();
    for (i, path) in files.iter().enumerate() {
        if corpus.full() {
            eprintln!("corpus full, skipping {}", path.display());
            continue;
        }
        let map = MappedFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let data = map.data();
        // Each remaining file gets an equal share of what is left; bigger files are sampled.
        let share = (CAP - corpus.out_bytes) / (files.len() - i);
        let stride = data.len().div_ceil(share.max(1)).max(1);
        let t = Instant::now();
        let before = (corpus.blobs.len(), corpus.out_bytes);
        match add_file(&mut corpus, data, stride) {
            Ok(keys) => eprintln!(
                "{}: {} bytes, {keys} keys read (1 in {stride}), +{} blobs, +{} bytes, {:.1}s",
                path.display(),
                data.len(),
                corpus.blobs.len() - before.0,
                corpus.out_bytes - before.1,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => eprintln!("{}: {e} (kept what was read before)", path.display()),
        }
    }
    corpus
}

// ---------------------------------------------------------------------------------------------
// Measurement.

const CLASSES: [(&str, usize, usize); 4] = [
    ("21-64 B", 21, 64),
    ("65-512 B", 65, 512),
    ("513 B-4 KiB", 513, 4096),
    ("> 4 KiB", 4097, usize::MAX),
];

/// A set of blobs laid out as a file would hold them: compressed bytes back to back.
struct Packed {
    data: Vec<u8>,
    /// (end of the compressed bytes in `data`, decompressed length), in order.
    index: Vec<(usize, usize)>,
    out_bytes: usize,
}

impl Packed {
    fn new(set: &[&Blob]) -> Self {
        let mut data = Vec::with_capacity(set.iter().map(|b| b.comp.len()).sum());
        let mut index = Vec::with_capacity(set.len());
        for b in set {
            data.extend_from_slice(&b.comp);
            index.push((data.len(), b.orig.len()));
        }
        let out_bytes = set.iter().map(|b| b.orig.len()).sum();
        Packed {
            data,
            index,
            out_bytes,
        }
    }
}

/// This thread's time on a CPU (Linux schedstat, nanoseconds), so that time spent preempted by
/// other jobs on a busy machine is not counted; wall time where that is unavailable.
fn clock() -> Duration {
    thread_cpu().unwrap_or_else(|| {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    })
}

fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Decodes every blob of `set` until `min` has passed; returns MB/s of output.
fn measure(decode: Decoder, set: &Packed, min: Duration) -> f64 {
    // Read the clock (a file read) only every few MB of output.
    let reps = ((4 << 20) / set.out_bytes.max(1)).max(1) as u64;
    let mut passes = 0u64;
    let t = clock();
    let elapsed = loop {
        for _ in 0..reps {
            let mut start = 0;
            for &(end, ulen) in &set.index {
                let out = decode(black_box(&set.data[start..end]), ulen);
                black_box(out);
                start = end;
            }
        }
        passes += reps;
        let e = clock() - t;
        if e >= min {
            break e;
        }
    };
    (set.out_bytes as f64 * passes as f64) / elapsed.as_secs_f64() / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The safe decoder of rdb-format.md §4.3, transcribed line by line (byte-by-byte copies).
fn reference(inp: &[u8], ulen: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(ulen);
    let mut i = 0;
    while i < inp.len() {
        let c = usize::from(inp[i]);
        i += 1;
        if c < 32 {
            let n = c + 1;
            if i + n > inp.len() || out.len() + n > ulen {
                return None;
            }
            out.extend_from_slice(&inp[i..i + n]);
            i += n;
        } else {
            let mut n = c >> 5;
            if i >= inp.len() {
                return None;
            }
            if n == 7 {
                n += usize::from(inp[i]);
                i += 1;
                if i >= inp.len() {
                    return None;
                }
            }
            let dist = ((c & 31) << 8) + usize::from(inp[i]) + 1;
            i += 1;
            if dist > out.len() || out.len() + n + 2 > ulen {
                return None;
            }
            for _ in 0..n + 2 {
                out.push(out[out.len() - dist]);
            }
        }
    }
    (out.len() == ulen).then_some(out)
}

/// The safe decoders must accept and reject exactly what the doc's decoder does, with the same
/// output: the doc's examples, wrong lengths and every truncation of some real blobs, random
/// byte changes to real blobs, and random input.
fn check_rejections(corpus: &Corpus) {
    let safe: [(&str, Decoder); 3] = [
        ("safe, slice copies", via_plain),
        ("rdbtool (safe, fixed-size copies)", via_wild),
        ("lzf-rust 0.1", via_lzf_rust),
    ];
    let check = |c: &[u8], n: usize, what: &str| {
        let want = reference(c, n);
        for (name, decode) in safe {
            assert!(
                decode(c, n) == want,
                "{name} differs from the reference: {what}"
            );
        }
        want.is_some()
    };
    let block = [0x02, b'a', b'b', b'c', 0x20, 0x02];
    assert_eq!(reference(&block, 6).as_deref(), Some(&b"abcabc"[..]));
    assert!(check(&block, 6, "doc example") && !check(&block, 5, "") && !check(&block, 7, ""));
    assert!(!check(&[0x20, 0x05], 3, "reference before start"));
    assert!(check(&[], 0, "empty") && !check(&[], 1, "empty"));

    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut cases, mut accepted) = (0u64, 0u64);
    for b in corpus.blobs.iter().step_by(corpus.blobs.len() / 500 + 1) {
        let n = b.orig.len();
        for ulen in [0, 1, n - 1, n + 1, n + 8, 2 * n] {
            assert!(!check(&b.comp, ulen, "wrong length"));
        }
        for cut in 0..b.comp.len() {
            cases += 1;
            accepted += check(&b.comp[..cut], n, "truncated") as u64;
        }
        let mut c = b.comp.clone();
        for _ in 0..100 {
            let at = next() as usize % c.len();
            let old = c[at];
            c[at] = next() as u8;
            let ulen = if next().is_multiple_of(4) {
                next() as usize % (2 * n)
            } else {
                n
            };
            cases += 1;
            accepted += check(&c, ulen, "mutated") as u64;
            c[at] = old;
        }
    }
    for _ in 0..200_000 {
        let len = next() as usize % 48;
        let c: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let ulen = next() as usize % 400;
        cases += 1;
        accepted += check(&c, ulen, "random") as u64;
    }
    eprintln!("rejections: {cases} damaged or random inputs, {accepted} valid, all decoders agree");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("testdata"))
        .expect("testdata")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rdb"))
        .collect();
    files.sort();
    // `cargo bench` passes `--bench`; anything not starting with '-' is a file.
    files.extend(
        std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .map(PathBuf::from),
    );
    let rounds: usize = env_or("LZF_BENCH_ROUNDS", 3);
    let min = Duration::from_secs_f64(env_or("LZF_BENCH_SECS", 1.0));

    let corpus = build_corpus(&files);
    assert!(!corpus.blobs.is_empty(), "no compressible values found");

    // Correctness first, on every blob, for every decoder.
    for (name, decode) in &CANDIDATES[..DECODERS] {
        for b in &corpus.blobs {
            let out = decode(&b.comp, b.orig.len());
            assert!(
                out.as_deref() == Some(&b.orig[..]),
                "{name} decoded a {}-byte blob wrongly",
                b.orig.len()
            );
        }
    }
    check_rejections(&corpus);

    // Distribution.
    let total_c: usize = corpus.blobs.iter().map(|b| b.comp.len()).sum();
    println!(
        "\ncorpus: {} blobs, {} bytes decompressed, {} compressed (ratio {:.2}); {} candidates over 20 B not compressible by 4 B",
        corpus.blobs.len(),
        corpus.out_bytes,
        total_c,
        corpus.out_bytes as f64 / total_c as f64,
        corpus.incompressible
    );
    println!("\n| size (decompressed) | blobs | single | listpack | output bytes | ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    let class_sets: Vec<(&str, Vec<&Blob>)> = CLASSES
        .iter()
        .map(|&(name, lo, hi)| {
            let set: Vec<&Blob> = corpus
                .blobs
                .iter()
                .filter(|b| (lo..=hi).contains(&b.orig.len()))
                .collect();
            (name, set)
        })
        .collect();
    for (name, set) in &class_sets {
        let out: usize = set.iter().map(|b| b.orig.len()).sum();
        let comp: usize = set.iter().map(|b| b.comp.len()).sum();
        let lp = set.iter().filter(|b| b.source == Source::Listpack).count();
        println!(
            "| {name} | {} | {} | {lp} | {out} | {:.2} |",
            set.len(),
            set.len() - lp,
            out as f64 / comp.max(1) as f64
        );
    }

    // Timing: all blobs, then each size class; rounds interleave the candidates.
    let all: Vec<&Blob> = corpus.blobs.iter().collect();
    let mut sets: Vec<(&str, Packed)> = vec![("all", Packed::new(&all))];
    sets.extend(
        class_sets
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(name, s)| (*name, Packed::new(s))),
    );
    let mut results = vec![vec![Vec::new(); sets.len()]; CANDIDATES.len()];
    for round in 0..rounds {
        for (si, (_, set)) in sets.iter().enumerate() {
            for (ci, (_, decode)) in CANDIDATES.iter().enumerate() {
                results[ci][si].push(measure(*decode, set, min));
            }
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }

    println!(
        "\nMB/s of decompressed output per second of {}, median of {rounds} rounds of >= {:.1}s \
         (all rounds in brackets):\n",
        if thread_cpu().is_some() {
            "this thread's CPU time"
        } else {
            "wall time"
        },
        min.as_secs_f64()
    );
    print!("| candidate |");
    for (name, _) in &sets {
        print!(" {name} |");
    }
    println!();
    print!("|---|");
    for _ in &sets {
        print!("---:|");
    }
    println!();
    let base: Vec<f64> = results[0].iter().map(|r| median(r.clone())).collect();
    for (ci, (name, _)) in CANDIDATES.iter().enumerate() {
        print!("| {name} |");
        for (si, runs) in results[ci].iter().enumerate() {
            let m = median(runs.clone());
            let all: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
            print!(" {m:.0} ({:.2}x) [{}] |", m / base[si], all.join(", "));
        }
        println!();
    }
}
