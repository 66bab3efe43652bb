//! `rdbtool backlog …`: the replication stream, captured as a replica takes it and kept as a
//! checked, offset-indexed log, and the questions it answers.

pub mod verify;

use std::io::Write;

use anyhow::Result;

use super::Outcome;

/// `--help`'s and the man pages' exit status and examples (see `cli.rs`).
pub const MORE: &str = "\
Exit status:
  0  done, nothing wrong found
  1  a problem was found (a damaged capture)
  2  the input could not be read, the server could not be reached, or bad usage

Examples:
  Check a capture:
    rdbtool backlog verify capture/
";

/// Capture a master's replication stream and answer questions about it.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check a capture: record checksums, offsets without gaps, RESP framing, snapshots.
    #[command(after_long_help = MORE)]
    Verify(verify::Args),
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    match args.command {
        Command::Verify(args) => verify::run(args, out),
    }
}
