//! Root gating and skips: integration tests need root for namespaces and raw sockets, and some
//! need a program installed. Locally they skip with a reason; under CI a skip would hide a broken
//! setup, so it fails. Every skip goes through [`skip`], so none is silent.

/// True if the process runs with effective UID 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when running under CI: `CI` set to anything but empty, `0` or `false` (CI systems set
/// `true` or `1`; an inherited `CI=1` must not turn the guards into skips).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| means_ci(&v))
}

fn means_ci(value: &str) -> bool {
    !matches!(value.trim().to_ascii_lowercase().as_str(), "" | "0" | "false" | "no")
}

/// Skips `test` for `reason`: prints the reason and returns false, so a test can
/// `return` on it. Also appends the skip to `$RVSWITCH_SKIP_LOG` when set, so a test run can
/// say in one line how many tests were skipped.
///
/// # Panics
/// Under CI ([`under_ci`]): CI must run every test, not skip it.
pub fn skip(test: &str, reason: &str) -> bool {
    if under_ci() {
        panic!("{test} cannot run ({reason}) but CI is set: under CI every test must run, not be skipped");
    }
    eprintln!("skipping {test}: {reason}");
    if let Ok(path) = std::env::var("RVSWITCH_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            // One write of the whole line (O_APPEND): lines from parallel tests never interleave.
            let _ = f.write_all(format!("{test}: {reason}\n").as_bytes());
        }
    }
    false
}

/// Call first in every root test: `if !testbed::require_root("name") { return; }`.
///
/// # Panics
/// When not root under CI (see [`skip`]).
pub fn require_root(test: &str) -> bool {
    is_root() || skip(test, "needs root (run as root, as CI does)")
}

/// True if `program` runs (`program ARG` exits 0); else a [`skip`] naming the package.
pub fn require_program(test: &str, program: &str, arg: &str, package: &str) -> bool {
    let ok = std::process::Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || skip(test, &format!("{program} is not installed (Debian package {package}; .ci/run installs it)"))
}

/// True if the file `path` exists (e.g. data a Debian package installs); else a [`skip`] naming
/// the package.
pub fn require_file(test: &str, path: &str, package: &str) -> bool {
    std::path::Path::new(path).is_file()
        || skip(test, &format!("{path} is missing (Debian package {package}; .ci/run installs it)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values_that_mean_ci() {
        for (v, ci) in
            [("true", true), ("1", true), ("TRUE", true), ("false", false), ("0", false), ("", false)]
        {
            assert_eq!(means_ci(v), ci, "{v:?}");
        }
    }
}
