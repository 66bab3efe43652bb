//! The `rdbtool` command: parse arguments, run one subcommand, print how it ended and turn that
//! into an exit status.

mod cli;
mod cmd;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    // A mapped input truncated by another process: a message and exit 2, not a signal death.
    rdbtool::scan::sigbus::install();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(cmd::files::Named {
        inner: stdout.lock(),
        name: "standard output".into(),
    });
    let result = cli::run(cli, &mut out).and_then(|outcome| {
        out.flush()?;
        Ok(outcome)
    });
    match result {
        Ok(outcome) => {
            for line in outcome.lines() {
                eprintln!("rdbtool: {line}");
            }
            outcome.exit().into()
        }
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            let message = format!("{e:#}").replace('\n', " ");
            eprintln!("rdbtool: {}", rdbtool::text::mask_credentials(&message));
            cmd::Exit::Error.into()
        }
    }
}

/// `rdbtool ... | head` closing the pipe early is not an error, however the write error came:
/// as is, inside serde_json's error (which does not give it as its source) or as diff's.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let kind = if let Some(io) = c.downcast_ref::<std::io::Error>() {
            Some(io.kind())
        } else if let Some(json) = c.downcast_ref::<serde_json::Error>() {
            json.io_error_kind()
        } else if let Some(rdbtool::diff::Error::Io(io)) = c.downcast_ref() {
            Some(io.kind())
        } else {
            None
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
