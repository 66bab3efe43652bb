//! Where a command's bytes come from and where they go. A regular file is mapped; standard
//! input (`-`), a pipe (`<(...)`, a FIFO) or a device is read as a stream, or first copied to a
//! temporary file by the commands that need the whole file at hand; a directory is refused. An
//! output that is one of the inputs (the same device and inode, through any link) is refused
//! before it is opened, since opening it for writing would empty the input.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

use rdbtool::scan::mapped::MappedFile;

/// An input as it can be read.
pub enum Source {
    Mapped(MappedFile),
    /// Standard input, a pipe or a device: read once, front to back.
    Stream(Box<dyn Read>),
}

/// `-` is standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Opens `path` as it can be read: mapped if it is a regular file, else as a stream.
pub fn open(path: &Path) -> std::io::Result<Source> {
    if is_stdin(path) {
        return Ok(Source::Stream(Box::new(std::io::stdin().lock())));
    }
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir()
        && let Some(hint) = rdbtool::backlog::store::capture_hint(path)
    {
        return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, hint));
    }
    if meta.is_file() || meta.is_dir() {
        // A directory is refused by the map, with that reason.
        let label = path.display().to_string();
        return MappedFile::from_file(file, &label).map(Source::Mapped);
    }
    Ok(Source::Stream(Box::new(file)))
}

/// Opens `path` mapped; a stream is first copied to a temporary file (in `$TMPDIR`), once its
/// first bytes are an RDB signature (or look like an AOF, which replay reads): `/dev/zero`
/// fails at once instead of filling the disk.
pub fn open_mapped(path: &Path) -> Result<MappedFile> {
    let label = path.display().to_string();
    match open(path).with_context(|| label.clone())? {
        Source::Mapped(file) => Ok(file),
        Source::Stream(mut stream) => {
            let mut head = Vec::with_capacity(9);
            (&mut stream)
                .take(9)
                .read_to_end(&mut head)
                .with_context(|| label.clone())?;
            if let Ok(magic) = <&[u8; 9]>::try_from(head.as_slice())
                && let Err(e) = rdbtool::rdb::reader::parse_magic(magic)
                && !matches!(e, rdbtool::rdb::ErrorKind::Aof { .. })
            {
                bail!("{label}: at byte 0: {e}");
            }
            let tmp = std::env::temp_dir();
            MappedFile::spool(head.as_slice().chain(stream), &label).with_context(|| {
                format!("{label}: copying to a temporary file in {}", tmp.display())
            })
        }
    }
}

/// Refuses `output` if it is the same file as one of `inputs` (`-` being standard input).
/// An output that does not exist yet cannot be one.
pub fn refuse_input_as_output<'p>(
    output: &Path,
    inputs: impl IntoIterator<Item = &'p Path>,
) -> Result<()> {
    match std::fs::metadata(output) {
        Ok(out) => refuse_same(&out, &output.display().to_string(), inputs),
        Err(_) => Ok(()),
    }
}

/// Refuses to run if standard output is a file that is one of `inputs`
/// (`rdbtool export y.rdb >> y.rdb`), before anything is written. Every command calls it.
pub fn refuse_stdout_as_input<'p>(inputs: impl IntoIterator<Item = &'p Path>) -> Result<()> {
    use std::os::fd::AsFd;
    let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return Ok(());
    };
    match File::from(fd).metadata() {
        Ok(out) if out.is_file() => refuse_same(&out, "standard output", inputs),
        _ => Ok(()),
    }
}

fn refuse_same<'p>(
    out: &std::fs::Metadata,
    shown: &str,
    inputs: impl IntoIterator<Item = &'p Path>,
) -> Result<()> {
    for input in inputs {
        let stat = if is_stdin(input) {
            Path::new("/dev/stdin")
        } else {
            input
        };
        let Ok(meta) = std::fs::metadata(stat) else {
            continue;
        };
        if (meta.dev(), meta.ino()) == (out.dev(), out.ino()) {
            bail!(
                "{shown} is the same file as the input {}: refusing to write over it",
                input.display()
            );
        }
    }
    Ok(())
}

/// Creates (or empties) `output` for writing, unless it is one of `inputs`. Its write errors
/// name it (`-o PATH`).
pub fn create_output<'p>(
    output: &Path,
    inputs: impl IntoIterator<Item = &'p Path>,
) -> Result<std::io::BufWriter<Named<File>>> {
    refuse_input_as_output(output, inputs)?;
    let file = File::create(output).with_context(|| output.display().to_string())?;
    let name = format!("-o {}", output.display());
    Ok(std::io::BufWriter::new(Named { inner: file, name }))
}

/// A writer whose errors say where it writes ("writing standard output: No space left on
/// device"), keeping their kind (a closed pipe is still one).
pub struct Named<W> {
    pub inner: W,
    pub name: String,
}

impl<W: std::io::Write> Named<W> {
    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("writing {}: {e}", self.name))
    }
}

impl<W: std::io::Write> std::io::Write for Named<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.named(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().map_err(|e| self.named(e))
    }
}
