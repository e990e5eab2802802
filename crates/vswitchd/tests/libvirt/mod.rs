//! Pieces of the libvirt end-to-end test (libvirt_zones.rs): guests booted through libvirt,
//! and raw captures that say which host heard whom.
#![allow(dead_code)] // shared by the scenario's stages; not every stage uses every piece

pub mod capture;
pub mod guest;

use std::path::Path;

/// `virt-xml-validate FILE KIND` must accept the file (libvirt's own RNG schemas).
pub fn validate(file: &Path, kind: &str) {
    if let Err(e) = testbed::run("virt-xml-validate", &[file.to_str().unwrap(), kind]) {
        panic!("{e}\n{}", std::fs::read_to_string(file).unwrap_or_default());
    }
}
