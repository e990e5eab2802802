//! Man pages made from the clap definitions themselves (clap_mangen), so `man rvswitchd` and
//! `man rvsctl` can never drift from `--help`. Both binaries have a hidden entry that calls this
//! at packaging time.

use std::io;
use std::path::{Path, PathBuf};

/// Section 8: both are system administration programs, like ovs-vswitchd(8) and ovs-vsctl(8).
pub const SECTION: &str = "8";

/// Renders `cmd`'s page into `dir/NAME.8`, and one page per visible subcommand
/// (`NAME-SUB.8`, which the main page's SUBCOMMANDS section refers to); `dir` is created if
/// missing. Returns the paths written.
pub fn write(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    // Built, subcommands know their display names (`rvsctl-show`); the help subcommand is
    // clap's, not ours.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_tree(cmd, dir, &mut written)?;
    Ok(written)
}

fn write_tree(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub.clone(), dir, written)?;
    }
    let man = clap_mangen::Man::new(cmd).section(SECTION);
    written.push(man.generate_to(dir)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_the_program_its_flags_and_subcommands() {
        let cmd = clap::Command::new("demo")
            .about("A demo")
            .arg(clap::Arg::new("flag").long("some-flag").help("Does a thing"))
            .arg(clap::Arg::new("secret").long("secret").hide(true))
            .subcommand(clap::Command::new("show").about("Shows it"))
            .subcommand(clap::Command::new("internal").hide(true));
        let dir = std::env::temp_dir().join(format!("rvs-man-{}", std::process::id()));
        let mut paths = write(cmd, &dir).unwrap();
        let main = std::fs::read_to_string(dir.join("demo.8")).unwrap();
        let sub = std::fs::read_to_string(dir.join("demo-show.8")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        paths.sort();
        assert_eq!(paths, vec![dir.join("demo-show.8"), dir.join("demo.8")], "hidden ones get no page");
        assert!(main.contains(".TH demo 8"), "{main}");
        assert!(main.contains("some\\-flag") && main.contains("Does a thing"), "{main}");
        assert!(main.contains("demo\\-show(8)"), "subcommand not referenced: {main}");
        assert!(!main.contains("secret") && !main.contains("internal"), "hidden items documented: {main}");
        assert!(sub.contains("Shows it"), "{sub}");
    }
}
