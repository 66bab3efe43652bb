//! The `rdbtool` command: parse arguments, run one subcommand, turn its result into an exit
//! status.

mod cli;
mod cmd;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // A mapped input truncated by another process: a message and exit 2, not a signal death.
    rdbtool::rdb::sigbus::install();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = cli::run(cli, &mut out).and_then(|exit| {
        out.flush()?;
        Ok(exit)
    });
    match result {
        Ok(exit) => exit.into(),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("rdbtool: {}", format!("{e:#}").replace('\n', " "));
            cmd::Exit::Error.into()
        }
    }
}

/// `rdbtool ... | head` closing the pipe early is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
