//! Log output: colour only for a human at a terminal. Under systemd stderr goes to the journal
//! and with `--log-file` to a file; ANSI escapes there are noise that grep and log shippers
//! choke on. The journal stamps every line itself, so there our own timestamp is left out.

use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// The filter: `RUST_LOG` if set and valid, else `--log`, else `info`.
fn filter(spec: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(spec))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Whether `$JOURNAL_STREAM` ("DEVICE:INODE", set by systemd) names the file `dev`/`ino`: then
/// stderr is still the journal stream systemd connected, not something it was redirected to.
pub fn is_journal_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream.split_once(':').is_some_and(|(d, i)| d.parse() == Ok(dev) && i.parse() == Ok(ino))
}

fn stderr_is_journal() -> bool {
    let Ok(var) = std::env::var("JOURNAL_STREAM") else { return false };
    // SAFETY: all-zero is a valid stat; fstat fills it for the fd we pass.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on stderr's fd (always open in a process) into a struct we own.
    if unsafe { libc::fstat(std::io::stderr().as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    is_journal_stream(&var, st.st_dev, st.st_ino)
}

/// Installs the global subscriber: to `log_file` (appended, plain text) if given, else to
/// stderr with colour only when stderr is a terminal and without timestamps into the journal.
pub fn init(spec: &str, log_file: Option<&Path>) -> std::io::Result<()> {
    let builder = tracing_subscriber::fmt().with_env_filter(filter(spec));
    match log_file {
        Some(path) => {
            let file = File::options().create(true).append(true).open(path)?;
            builder.with_ansi(false).with_writer(Mutex::new(file)).init();
        }
        None if stderr_is_journal() => {
            builder.with_ansi(false).without_time().with_writer(std::io::stderr).init()
        }
        None => builder.with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_our_stderr() {
        assert!(is_journal_stream("8:12345", 8, 12345));
        assert!(!is_journal_stream("8:12345", 8, 12346), "stderr redirected elsewhere");
        assert!(!is_journal_stream("8:12345", 9, 12345));
        for bad in ["", "8", "8:", ":1", "x:y", "8:12345:1"] {
            assert!(!is_journal_stream(bad, 8, 12345), "{bad:?}");
        }
    }
}
