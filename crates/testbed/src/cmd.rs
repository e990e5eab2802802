//! Running setup commands (`ip`, `sysctl`, `ping`) with errors that say exactly what failed.

use std::process::{Command, Output};

use anyhow::{bail, Context};

/// Runs `cmd args…` and returns its stdout; the error names the command line, exit status and
/// stderr so a failing setup step is obvious in test output.
pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("cannot start `{}`", line(cmd, args)))?;
    check(cmd, args, out)
}

/// Runs `cmd args…` ignoring any failure: for cleanup, where there is nothing better to do.
/// Returns whether it succeeded.
pub fn run_quiet_ok(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub(crate) fn check(cmd: &str, args: &[&str], out: Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            line(cmd, args),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn line(cmd: &str, args: &[&str]) -> String {
    std::iter::once(cmd).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}

/// `promtool check metrics` (Debian's prometheus) on a metrics exposition: whether it passed,
/// and everything it printed (stdout, then stderr), for the assertion message.
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_stdout() {
        assert_eq!(run("echo", &["hi"]).unwrap(), "hi\n");
    }

    #[test]
    fn run_error_names_the_command() {
        let e = run("sh", &["-c", "echo oops >&2; exit 3"]).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("sh -c"), "{s}");
        assert!(s.contains("oops"), "{s}");
        assert!(s.contains('3'), "{s}");
        assert!(run("/nonexistent/cmd", &[]).is_err());
        assert!(!run_quiet_ok("false", &[]));
        assert!(run_quiet_ok("true", &[]));
    }
}
