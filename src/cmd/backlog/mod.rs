//! `rdbtool backlog …`: commands about a master's replication stream and backlog, one file
//! each. `backlog psync-check` answers whether a reconnecting replica gets a partial resync.

use std::io::Write;

use anyhow::Result;

use super::Outcome;

pub mod psync_check;

/// `--help`'s and the man pages' exit status and examples (see `cli.rs`).
pub const MORE: &str = "\
Exit status:
  0  psync-check: CONTINUE, the replica gets a partial resync
  1  psync-check: FULLRESYNC (or NOMASTERLINK)
  2  an input could not be read, a field is missing, or bad usage

Examples:
  Will a replica that reconnects now resync partially?
    rdbtool backlog psync-check --master-info master.txt --replica-info replica.txt
";

/// Commands about a master's replication stream and backlog.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Whether a master answers a replica's PSYNC with a partial resync (CONTINUE, and how many
    /// bytes of backlog) or a full one (FULLRESYNC), and which rule decided, as the server
    /// decides it: from saved `INFO replication` outputs or values given as options.
    #[command(after_long_help = psync_check::MORE)]
    PsyncCheck(psync_check::Args),
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    match args.command {
        Command::PsyncCheck(args) => psync_check::run(args, out),
    }
}
