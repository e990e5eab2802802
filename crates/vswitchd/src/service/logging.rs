//! Log output: colour only for a human at a terminal. Under systemd stderr goes to the journal
//! and with `--log-file` to a file; ANSI escapes there are noise that grep and log shippers
//! choke on. The journal stamps every line itself, so there our own timestamp is left out.

use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use super::vlog::Vlog;

/// The live filter and the `vlog` model it was built from; set once by [`init`].
struct Live {
    handle: reload::Handle<EnvFilter, Registry>,
    vlog: Mutex<Vlog>,
}

static LIVE: OnceLock<Live> = OnceLock::new();

/// The filter's directives: `RUST_LOG` if set and valid, else `--log`, else `info`.
fn directives(spec: &str) -> String {
    let env = std::env::var("RUST_LOG").ok().filter(|d| EnvFilter::try_new(d).is_ok());
    env.unwrap_or_else(
        || if EnvFilter::try_new(spec).is_ok() { spec.to_string() } else { "info".to_string() },
    )
}

/// `ovs-appctl vlog/set`: applies `specs` (all or none) and swaps the live filter.
pub fn vlog_set(specs: &[String]) -> Result<(), String> {
    let live = LIVE.get().ok_or("logging is not initialised")?;
    let mut vlog = live.vlog.lock().unwrap_or_else(|e| e.into_inner());
    let mut next = vlog.clone();
    for spec in specs {
        next.set(spec)?;
    }
    let filter = EnvFilter::try_new(next.directives()).map_err(|e| e.to_string())?;
    live.handle.reload(filter).map_err(|e| e.to_string())?;
    *vlog = next;
    Ok(())
}

/// `ovs-appctl vlog/list`.
pub fn vlog_list() -> String {
    match LIVE.get() {
        Some(live) => live.vlog.lock().unwrap_or_else(|e| e.into_inner()).list(),
        None => "logging is not initialised\n".to_string(),
    }
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
/// The filter sits in a reload layer so `vlog/set` can change it while the daemon runs.
pub fn init(spec: &str, log_file: Option<&Path>) -> std::io::Result<()> {
    let base = directives(spec);
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&base));
    let registry = tracing_subscriber::registry().with(filter);
    match log_file {
        Some(path) => {
            let file = File::options().create(true).append(true).open(path)?;
            registry.with(fmt::layer().with_ansi(false).with_writer(Mutex::new(file))).init();
        }
        None if stderr_is_journal() => {
            registry.with(fmt::layer().with_ansi(false).without_time().with_writer(std::io::stderr)).init()
        }
        None => registry
            .with(fmt::layer().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr))
            .init(),
    }
    let _ = LIVE.set(Live { handle, vlog: Mutex::new(Vlog::new(&base)) });
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
