//! Root gating: integration tests need root for namespaces and raw sockets. Locally they skip with
//! a reason; under CI (`CI=true`, which runs as root) a skip would hide a broken setup, so it fails.

/// True if the process runs with effective UID 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Call first in every root test: `if !testbed::require_root("name") { return; }`.
///
/// # Panics
/// When not root and `CI` is `"true"`: CI must run these tests, not skip them.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs root but CI=true: the root tests must run under CI, not be skipped");
    }
    eprintln!("skipping {test}: needs root (run as root or with CI=true)");
    false
}
