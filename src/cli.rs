//! The command line: one enum of subcommands and one dispatch.

use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::cmd::{self, Exit};

/// Check, inspect and convert Redis and Valkey RDB snapshots, without a server.
#[derive(Parser)]
#[command(
    name = "rdbtool",
    version,
    about,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Verify(cmd::verify::Args),
    Inspect(cmd::inspect::Args),
    Export(cmd::export::Args),
    Replay(cmd::replay::Args),
    Diff(cmd::diff::Args),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write one man page per subcommand into DIR (how man/ is made).
    #[command(hide = true)]
    Man {
        dir: PathBuf,
    },
}

pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Verify(args) => cmd::verify::run(args, out),
        Command::Inspect(args) => cmd::inspect::run(args, out),
        Command::Export(args) => cmd::export::run(args, out),
        Command::Replay(args) => cmd::replay::run(args, out),
        Command::Diff(args) => cmd::diff::run(args, out),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "rdbtool", out);
            Ok(Exit::Ok)
        }
        Command::Man { dir } => write_man_pages(&dir).map(|()| Exit::Ok),
    }
}

fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let top = Cli::command();
    let mut pages = vec![("rdbtool".to_string(), top.clone())];
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("rdbtool-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, command) in pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
