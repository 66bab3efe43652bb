//! `rdbtool backlog …`: the replication stream, captured as a replica takes it and kept as a
//! checked, offset-indexed log, and the questions it answers; one file per subcommand.

pub mod capture;
pub mod inspect;
pub mod psync_check;
pub mod size;
pub mod slice;
pub mod verify;

use std::io::Write;

use anyhow::Result;

use super::Outcome;

/// `--help`'s and the man pages' exit status and examples (see `cli.rs`).
pub const MORE: &str = "\
Exit status:
  0  done, nothing wrong found; psync-check: CONTINUE, the replica gets a partial resync
  1  a problem was found (a damaged capture); psync-check: FULLRESYNC (or NOMASTERLINK)
  2  an input could not be read, a server could not be reached, a field is missing, or bad
     usage

Examples:
  Capture a master's stream for ten minutes, then go on later without a new snapshot:
    rdbtool backlog capture redis://master:6379 --out capture/ --duration 10m
    rdbtool backlog capture --continue capture/
  What a replica at offset 123456 is missing, applied to it:
    rdbtool backlog slice capture/ --from 123456 | redis-cli -p 6380 --pipe
  Check a capture:
    rdbtool backlog verify capture/
  Will a replica that reconnects now resync partially?
    rdbtool backlog psync-check --master-info master.txt --replica-info replica.txt
  What the stream holds, and its peak rates:
    rdbtool backlog inspect capture/
  The repl-backlog-size for a replica disconnected up to 5 minutes:
    rdbtool backlog size capture/ --disconnect 5m
";

/// Capture a master's replication stream and answer questions about it and its backlog.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Capture a master's replication stream into a directory: the snapshot, then every
    /// command, as a replica takes them; --continue goes on where a capture stopped.
    #[command(after_long_help = MORE)]
    Capture(capture::Args),
    /// Check a capture: record checksums, offsets without gaps, RESP framing, snapshots.
    #[command(after_long_help = MORE)]
    Verify(verify::Args),
    /// Whether a master answers a replica's PSYNC with a partial resync (CONTINUE, and how many
    /// bytes of backlog) or a full one (FULLRESYNC), and which rule decided, as the server
    /// decides it: from saved `INFO replication` outputs or values given as options.
    #[command(after_long_help = psync_check::MORE)]
    PsyncCheck(psync_check::Args),
    /// The commands a replica at an offset is missing, from a capture: RESP that applies on
    /// its own, or JSON Lines.
    #[command(after_long_help = MORE)]
    Slice(slice::Args),
    /// Report on the stream: per second, database, command and key prefix; peak rates.
    #[command(after_long_help = MORE)]
    Inspect(inspect::Args),
    /// The repl-backlog-size a replica disconnected for a given time needs, at the peak.
    #[command(after_long_help = MORE)]
    Size(size::Args),
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    match args.command {
        Command::Capture(args) => capture::run(args, out),
        Command::Verify(args) => verify::run(args, out),
        Command::Slice(args) => slice::run(args, out),
        Command::PsyncCheck(args) => psync_check::run(args, out),
        Command::Inspect(args) => inspect::run(args, out),
        Command::Size(args) => size::run(args, out),
    }
}
