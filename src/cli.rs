//! The command line: one enum of subcommands and one dispatch.

use std::io::Write;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

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
const RESP_ONLY: [&str; 5] = [
    "restore",
    "target_version",
    "batch_elements",
    "batch_bytes",
    "restore_max",
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
