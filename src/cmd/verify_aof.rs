//! `rdbtool verify` on an AOF: which inputs are AOFs, and the text report.

use std::io::Write;
use std::path::Path;

use rdbtool::aof::files::{Sniffed, sniff};
use rdbtool::scan::mapped::MappedFile;
use rdbtool::verify::Report;
use rdbtool::verify::aof::AofReport;

use super::{count, iec};

/// Whether `path` is an AOF told by its first bytes: a directory (an `appendonlydir/`), a
/// manifest, or a non-empty file of RESP commands. An RDB-preamble AOF is told later, by the
/// commands after its RDB data (see [`has_commands_after`]).
pub fn is_aof(path: &Path) -> bool {
    if super::files::is_stdin(path) {
        return false;
    }
    if path.is_dir() {
        return true;
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() == 0 {
        return false;
    }
    let mut start = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut start))
        .unwrap_or(0);
    matches!(sniff(&start[..n]), Sniffed::Manifest | Sniffed::Resp)
}

/// Whether an RDB file checked into `report` goes on, after its RDB data, with AOF commands.
pub fn has_commands_after(file: &MappedFile, report: &Report) -> bool {
    let data = file.data();
    match report.rdb_end {
        Some(end) if (end as usize) < data.len() => {
            let rest = &data[end as usize..];
            sniff(&rest[..rest.len().min(512)]) == Sniffed::Resp
        }
        _ => false,
    }
}

/// Problems one per line (`error FILE: offset N (0xN): message`), a line per file of the AOF
/// with `redis-check-aof`'s figures, then the verdict.
pub fn write_text(r: &AofReport, strict: bool, out: &mut dyn Write) -> std::io::Result<()> {
    for p in &r.problems {
        let level = super::verify::level(p.severity, strict);
        let file = match r.parts.len() {
            1 if p.file == r.parts[0].file => r.file.clone(),
            _ => format!("{}: {}", r.file, p.file),
        };
        writeln!(
            out,
            "{level} {file}: offset {} (0x{:x}): {}",
            p.offset, p.offset, p.message
        )?;
    }
    if let Some(e) = &r.io_error {
        return writeln!(out, "ERROR {}: {e}", r.file);
    }
    for p in &r.parts {
        let mut facts = vec![p.format.to_string(), count(p.commands, "command")];
        if let Some(rdb) = &p.rdb {
            facts.push(count(rdb.keys, "key"));
        }
        facts.push(format!(
            "ok_up_to={}, ok_up_to_line={}, size={}, diff={}",
            p.ok_up_to, p.ok_up_to_line, p.size, p.diff
        ));
        if p.truncated_tail {
            facts.push("truncated tail".into());
        } else if p.ending == rdbtool::aof::check::Ending::Damaged {
            facts.push("damaged".into());
        }
        writeln!(out, "  {} ({}): {}", p.file, p.role, facts.join(", "))?;
    }
    let verdict = match r.verdict(strict) {
        rdbtool::verify::Verdict::Good => "OK",
        _ => "FAIL",
    };
    let size: u64 = r.parts.iter().map(|p| p.size).sum();
    let errors = r
        .problems
        .iter()
        .filter(|p| super::verify::level(p.severity, strict) == "error")
        .count() as u64;
    let mut facts = vec![
        format!("AOF: {}", r.layout),
        count(r.commands, "command"),
        format!("commands of {}", r.commands_of),
        iec(size),
    ];
    if errors > 0 {
        facts.push(count(errors, "error"));
    }
    writeln!(out, "{verdict} {}: {}", r.file, facts.join(", "))
}
