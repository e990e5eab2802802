//! Fuzz targets for rvswitch's untrusted inputs, as plain functions.
//!
//! Each module has a `run(data: &[u8])` that feeds the bytes through a parser (and whatever state
//! machine sits behind it) and panics only when an invariant is broken: a panic inside the code
//! under test, or an oracle check that fails. The AFL binaries in `src/bin/` are one-line wrappers
//! around these functions; `cargo test` here replays the committed corpus through the same
//! functions, and `cargo run --bin replay -- TARGET FILE...` replays a crash AFL found, so a
//! crash can be debugged with no AFL installed.

pub mod config;
mod csum_check;
pub mod frames;
mod frames_model;
pub mod l3;
mod l3_dhcp;
mod l3_gateway;
pub mod ovsdb_check;
pub mod ovsdb_ops;
pub mod ovsdb_rpc;
pub mod wgquick;
pub mod zones;

/// A fuzz target: panics if and only if the input broke something.
pub type Target = fn(&[u8]);

/// The targets by name, as `scripts/fuzz.sh`, the replay tool and the corpus test know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("ovsdb", ovsdb_rpc::run),
    ("ovsdb_ops", ovsdb_ops::run),
    ("config", config::run),
    ("frames", frames::run),
    ("zones", zones::run),
    ("wgquick", wgquick::run),
    ("l3", l3::run),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The files under `path` (itself if it is a file), sorted; AFL's `README.txt` files skipped.
pub fn inputs(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.txt"))
        .collect();
    files.sort();
    files
}
