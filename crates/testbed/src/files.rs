//! Key files for the VPN tests and the demo: WireGuard keys from Debian's `wg`, files written
//! with the mode a test needs (wg-quick files must be 0600, scripts executable).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

/// A WireGuard key pair (private, public) from `wg genkey` / `wg pubkey`.
pub fn wg_keypair() -> anyhow::Result<(String, String)> {
    let private = Command::new("wg").arg("genkey").output().context("wg genkey")?;
    let private = String::from_utf8(private.stdout)?.trim().to_string();
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("wg pubkey")?;
    child.stdin.take().context("wg pubkey: no stdin")?.write_all(private.as_bytes())?;
    let public = child.wait_with_output().context("wg pubkey output")?;
    Ok((private, String::from_utf8(public.stdout)?.trim().to_string()))
}

/// Writes `text` to `dir/name` with `mode`.
pub fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(path)
}
