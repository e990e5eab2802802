//! Log output: colour only for a human at a terminal. Under systemd stderr goes to the journal
//! and with `--log-file` to a file; ANSI escapes there are noise that grep and log shippers
//! choke on.

use std::fs::File;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// The filter: `RUST_LOG` if set and valid, else `--log`, else `info`.
fn filter(spec: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(spec))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber: to `log_file` (appended, plain text) if given, else to
/// stderr with colour only when stderr is a terminal.
pub fn init(spec: &str, log_file: Option<&Path>) -> std::io::Result<()> {
    let builder = tracing_subscriber::fmt().with_env_filter(filter(spec));
    match log_file {
        Some(path) => {
            let file = File::options().create(true).append(true).open(path)?;
            builder.with_ansi(false).with_writer(Mutex::new(file)).init();
        }
        None => builder.with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).init(),
    }
    Ok(())
}
