//! The command line: one enum of subcommands and one dispatch.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::cmd::{self, Outcome};

/// Check, inspect and convert Redis and Valkey RDB snapshots, without a server.
#[derive(Parser)]
#[command(
    name = "rdbtool",
    version,
    about,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = RDBTOOL_MORE
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(
        override_usage = "rdbtool verify [OPTIONS] FILE...",
        after_long_help = VERIFY_MORE
    )]
    Verify(cmd::verify::Args),
    #[command(after_long_help = INSPECT_MORE)]
    Inspect(cmd::inspect::Args),
    #[command(after_long_help = EXPORT_MORE)]
    Export(cmd::export::Args),
    #[command(after_long_help = REPLAY_MORE)]
    Replay(cmd::replay::Args),
    #[command(after_long_help = DIFF_MORE)]
    Diff(cmd::diff::Args),
    #[command(after_long_help = cmd::aof::MORE)]
    Aof(cmd::aof::Args),
    #[command(after_long_help = cmd::backlog::MORE)]
    Backlog(cmd::backlog::Args),
    #[command(after_long_help = cmd::sync::MORE)]
    Sync(cmd::sync::Args),
    /// Print shell completions.
    #[command(after_long_help = COMPLETIONS_MORE)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write one man page per subcommand into DIR (how man/ is made).
    #[command(hide = true)]
    Man { dir: PathBuf },
}

/// The command line, or exit 2 with clap's usage message (credentials of URLs in it masked)
/// when it is wrong or holds options that make no sense together.
pub fn parse() -> Cli {
    let parsed = Cli::command().try_get_matches().and_then(|m| {
        check_formats(&m)?;
        Cli::from_arg_matches(&m)
    });
    parsed.unwrap_or_else(|e| exit_with(e))
}

/// Options that only mean something with one `--format`: (subcommand, the format, options).
const FORMAT_ONLY: &[(&str, &str, &[&str])] = &[
    ("export", "resp", &RESP_ONLY),
    ("diff", "resp", &RESP_ONLY),
    ("diff", "jsonl", &["detail"]),
];

/// The options of [`cmd::args::RespArgs`], which shape a RESP command stream only.
const RESP_ONLY: [&str; 6] = [
    "restore",
    "target_version",
    "batch_elements",
    "batch_bytes",
    "restore_max",
    "lossy",
];

fn check_formats(m: &ArgMatches) -> Result<(), clap::Error> {
    let Some((name, sub)) = m.subcommand() else {
        return Ok(());
    };
    for (_, format, options) in FORMAT_ONLY.iter().filter(|(n, ..)| *n == name) {
        let chosen = sub.get_raw("format").and_then(|mut v| v.next());
        if chosen.is_some_and(|f| f == *format) {
            continue;
        }
        let given = options
            .iter()
            .find(|o| sub.value_source(o) == Some(ValueSource::CommandLine));
        if let Some(option) = given {
            let mut top = Cli::command();
            top.build();
            let Some(cmd) = top.find_subcommand_mut(name) else {
                break;
            };
            let flag = cmd
                .get_arguments()
                .find(|a| a.get_id() == option)
                .and_then(|a| a.get_long())
                .unwrap_or(option)
                .to_string();
            let shown = chosen.map_or("?".into(), |f| f.to_string_lossy().into_owned());
            return Err(cmd.error(
                ErrorKind::ArgumentConflict,
                format!("--{flag} is for --format {format} only, not --format {shown}"),
            ));
        }
    }
    Ok(())
}

/// Prints a clap error as clap would, with the credentials of any URL in it masked.
fn exit_with(e: clap::Error) -> ! {
    use std::io::IsTerminal;
    if !e.use_stderr() {
        e.exit();
    }
    let styled = e.render();
    let mut text = match std::io::stderr().is_terminal() {
        true => styled.ansi().to_string(),
        false => styled.to_string(),
    };
    // A URL argument with a space in it, which a word-by-word search would cut short.
    for arg in std::env::args().filter(|a| a.contains("://")) {
        text = text.replace(&arg, &rdbtool::text::mask_url(&arg));
    }
    eprint!("{}", rdbtool::text::mask_credentials(&text));
    std::process::exit(e.exit_code());
}

// What `--help` shows after the options, and the man pages' EXIT STATUS and EXAMPLES sections
// (see `man_sections`): a heading ends with a colon; under it, "  N  text" is an exit status,
// "  text:" introduces an example and "    command" is one.

const RDBTOOL_MORE: &str = "\
Exit status:
  0  done, and nothing wrong found
  1  a problem was found: a damaged file, differences, keys the target refused
  2  could not finish: unreadable input, unreachable server, interrupted, or bad usage

Examples:
  Check a backup, then see what it holds:
    rdbtool verify dump.rdb && rdbtool inspect dump.rdb
  Copy one server's snapshot into another:
    redis-cli -h old --rdb dump.rdb && rdbtool replay dump.rdb --to redis://new:6379
";

const VERIFY_MORE: &str = "\
Exit status:
  0  every file is good (warnings allowed, unless --strict)
  1  a problem was found in some file
  2  a file could not be read, or bad usage

Examples:
  Gate last night's backups in CI:
    rdbtool verify --quiet /backups/*.rdb
  Check a snapshot as it is taken from a server:
    redis-cli --rdb - | rdbtool verify -
  A machine-readable report, with warnings counted as errors:
    rdbtool verify --strict --format json dump.rdb
  Check a DUMP payload (the bytes a DUMP command returned):
    rdbtool verify --dump-payload payload.bin
  Check an AOF (a file, an appendonlydir or its manifest) as the server would load it:
    rdbtool verify /var/lib/redis/appendonlydir
";

const INSPECT_MORE: &str = "\
Exit status:
  0  the report was written
  1  the file is damaged (the report covers what came before the damage)
  2  the file could not be read, or bad usage

Examples:
  What a dump holds and where the memory goes:
    rdbtool inspect dump.rdb
  The 20 biggest keys under user: in db 0, as JSON:
    rdbtool inspect dump.rdb --db 0 --key 'user:*' --top 20 --format json
  One CSV row per key, memory costed as in Valkey 9.1:
    rdbtool inspect dump.rdb --keys csv --memory-model valkey-9.1 > keys.csv
  The write load an AOF holds (a file, an appendonlydir or its manifest):
    rdbtool inspect /var/lib/redis/appendonlydir --top 20
";

const EXPORT_MORE: &str = "\
Exit status:
  0  every selected key was written
  1  the file is damaged (the output ends with the last whole key before the damage)
  2  the file could not be read, the output could not be written, or bad usage

Examples:
  Every key as one JSON document per line:
    rdbtool export dump.rdb > keys.jsonl
  Rebuild the sessions of db 2 on another server:
    rdbtool export dump.rdb --db 2 --key 'session:*' --format resp | redis-cli --pipe
  Commands a Redis 6.2 accepts, into a file:
    rdbtool export dump.rdb --format resp --target-version 6.2 -o dump.resp
  One hour of an AOF's writes, replayed elsewhere (SELECTs re-established):
    rdbtool export appendonlydir --since 2026-12-07T14:00:00Z --until 1796655599 --format resp | redis-cli --pipe
  The DEL and UNLINK commands of db 0 as JSON Lines, from offset 1000 of an incr file:
    rdbtool export appendonlydir --db 0 --command del,unlink --from-offset appendonly.aof.2.incr.aof:1000
";

const REPLAY_MORE: &str = "\
Exit status:
  0  every key arrived
  1  the target refused some key (see --errors-to)
  2  could not finish: target unreachable, interrupted, or bad usage

Examples:
  Load a dump into a server, overwriting nothing:
    rdbtool replay dump.rdb --to redis://127.0.0.1:6379
  Into a cluster over TLS, replacing existing keys, resumable after a crash:
    rdbtool replay dump.rdb --to rediss://node1:6380 --on-exists replace --checkpoint cp.json
    rdbtool replay dump.rdb --to rediss://node1:6380 --on-exists replace --checkpoint cp.json --resume
  Source database 0 into database 3, gently:
    rdbtool replay dump.rdb --to redis://host:6379 --db-map 0=3 --max-ops-per-sec 5000
  A Redis 7 appendonlydir, each command applied exactly once even across a cut and --resume:
    rdbtool replay /var/lib/redis/appendonlydir --to redis://new:6379 --checkpoint cp.json
  A backlog capture: its snapshot, then its stream up to replication offset 1048576:
    rdbtool replay capture/ --to redis://new:6379 --to-offset 1048576
  One hour of an AOF's writes to user:* keys, replayed elsewhere:
    rdbtool replay appendonlydir --to redis://other:6379 --key 'user:*' --since 2026-12-07T14:00:00Z --until 2026-12-07T14:59:59Z
";

const DIFF_MORE: &str = "\
Exit status:
  0  identical
  1  differences found
  2  could not compare

Examples:
  What changed between two snapshots:
    rdbtool diff monday.rdb tuesday.rdb
  The differing keys of a snapshot and a live server, with their elements:
    rdbtool diff dump.rdb redis://127.0.0.1:6379 --format jsonl --detail
  Patch a server holding A until it holds B:
    rdbtool diff a.rdb b.rdb --format resp | redis-cli --pipe
";

const COMPLETIONS_MORE: &str = "\
Exit status:
  0  the completions were written
  2  bad usage

Examples:
  Completions for bash, for the current user:
    rdbtool completions bash > ~/.local/share/bash-completion/completions/rdbtool
  For zsh:
    rdbtool completions zsh > \"${fpath[1]}/_rdbtool\"
";

pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Verify(args) => cmd::verify::run(args, out),
        Command::Inspect(args) => cmd::inspect::run(args, out),
        Command::Export(args) => cmd::export::run(args, out),
        Command::Replay(args) => cmd::replay::run(args, out),
        Command::Diff(args) => cmd::diff::run(args, out),
        Command::Aof(args) => cmd::aof::run(args, out),
        Command::Backlog(args) => cmd::backlog::run(args, out),
        Command::Sync(args) => cmd::sync::run(args, out),
        Command::Completions { shell } => {
            // generate() panics on a write error: made in memory, then written here, so that a
            // closed pipe is quiet and a full disk is an error like any other.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "rdbtool", &mut script);
            out.write_all(&script)
                .context("could not write the completions")?;
            Ok(Outcome::Clean)
        }
        Command::Man { dir } => write_man_pages(&dir).map(|()| Outcome::Clean),
    }
}

fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let top = Cli::command();
    let mut pages = vec![("rdbtool".to_string(), top.clone())];
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("rdbtool-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name.clone())));
        // A group's commands (`aof repair`) get pages of their own.
        for nested in sub.get_subcommands().filter(|s| s.get_name() != "help") {
            let nested_name = format!("{name}-{}", nested.get_name());
            pages.push((nested_name.clone(), nested.clone().name(nested_name)));
        }
    }
    for (name, mut command) in pages {
        command.build();
        // The sections `Man::render` writes, with ours in place of its "EXTRA" section.
        let extra = command
            .get_after_long_help()
            .map(|help| man_sections(&help.to_string()))
            .unwrap_or_default();
        let options = command.get_arguments().any(|a| !a.is_hide_set());
        let (subcommands, version) = (command.has_subcommands(), command.get_version().is_some());
        let man = clap_mangen::Man::new(command);
        let mut page = Vec::new();
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        if options {
            man.render_options_section(&mut page)?;
        }
        if subcommands {
            man.render_subcommands_section(&mut page)?;
        }
        page.extend_from_slice(extra.as_bytes());
        if version {
            man.render_version_section(&mut page)?;
        }
        // Each part starts with the same two-line preamble: keep the first.
        let page = String::from_utf8_lossy(&page);
        let mut lines: Vec<&str> = page.lines().collect();
        let preamble = [lines[0], lines[1]];
        let mut at = 2;
        while at + 1 < lines.len() {
            match [lines[at], lines[at + 1]] == preamble {
                true => drop(lines.drain(at..at + 2)),
                false => at += 1,
            }
        }
        std::fs::write(dir.join(format!("{name}.1")), lines.join("\n") + "\n")?;
    }
    Ok(())
}

/// A subcommand's after-help text as man sections (roff): headings, exit statuses, examples.
fn man_sections(help: &str) -> String {
    let escape = |text: &str| {
        let text = text.replace('\\', "\\e").replace('-', "\\-");
        match text.starts_with(['.', '\'']) {
            true => format!("\\&{text}"),
            false => text,
        }
    };
    let mut roff = String::new();
    for line in help.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(command) = line.strip_prefix("    ") {
            roff += &format!(".RS 4\n.nf\n\\fB{}\\fR\n.fi\n.RE\n", escape(command));
        } else if let Some(item) = line.strip_prefix("  ") {
            match item.split_once("  ") {
                Some((status, text)) if status.bytes().all(|b| b.is_ascii_digit()) => {
                    roff += &format!(".TP\n\\fB{status}\\fR\n{}\n", escape(text));
                }
                _ => roff += &format!(".PP\n{}\n", escape(item)),
            }
        } else {
            let heading = line.trim_end_matches(':').to_uppercase();
            roff += &format!(".SH \"{heading}\"\n");
        }
    }
    roff
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
