//! Man pages made from the clap definitions themselves (clap_mangen), so `man rvswitchd` and
//! `man rvsctl` can never drift from `--help`. Both binaries have a hidden entry that calls this
//! at packaging time.

use std::io;
use std::path::{Path, PathBuf};

/// Section 8: both are system administration programs, like ovs-vswitchd(8) and ovs-vsctl(8).
pub const SECTION: &str = "8";

/// Renders `cmd`'s page into `dir/NAME.8` (dir created if missing) and returns its path.
pub fn write(cmd: clap::Command, dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.{SECTION}", cmd.get_name()));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).section(SECTION).render(&mut page)?;
    std::fs::write(&path, page)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_the_program_and_its_flags() {
        let cmd = clap::Command::new("demo")
            .about("A demo")
            .arg(clap::Arg::new("flag").long("some-flag").help("Does a thing"))
            .arg(clap::Arg::new("secret").long("secret").hide(true));
        let dir = std::env::temp_dir().join(format!("rvs-man-{}", std::process::id()));
        let path = write(cmd, &dir).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(path.file_name().unwrap(), "demo.8");
        assert!(text.starts_with(".ie") || text.contains(".TH demo 8"), "{text}");
        assert!(text.contains("some\\-flag") && text.contains("Does a thing"), "{text}");
        assert!(!text.contains("secret"), "hidden flags are not documented: {text}");
    }
}
