//! Replays the committed seed corpus and every past crash through each target, so a plain
//! `cargo test` (no AFL) keeps them passing.

use std::path::Path;

fn replay(target: &str) -> usize {
    let run = rvswitch_fuzz::target(target).expect("known target");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        for file in rvswitch_fuzz::inputs(&root.join(dir).join(target)) {
            let data = std::fs::read(&file).expect("read input");
            println!("{}", file.display());
            run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn ovsdb_corpus() {
    assert!(replay("ovsdb") > 10, "the ovs-vsctl seeds are missing");
}

#[test]
fn config_corpus() {
    assert!(replay("config") >= 3, "the config seeds are missing");
}

#[test]
fn frames_corpus() {
    assert!(replay("frames") >= 4, "the frame seeds are missing");
}

/// The seeds reach the database: real ovs-vsctl traffic commits, and the hand-written stream
/// gets past parsing into monitors, failures and successes alike.
#[test]
fn ovsdb_seeds_do_real_work() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/ovsdb");
    let read = |name: &str| std::fs::read(root.join(name)).expect("seed");
    // ovs-vsctl add-br against the root row, as the sample recorded it.
    let add_br = rvswitch_fuzz::ovsdb_rpc::run_stats(&read("msg-004-transact.json"));
    assert_eq!((add_br.transactions, add_br.failed), (1, 0), "{add_br:?}");
    let s = rvswitch_fuzz::ovsdb_rpc::run_stats(&read("extra-lifecycle.json"));
    assert_eq!(s.messages, 11, "{s:?}");
    assert_eq!(s.monitors, 2, "{s:?}");
    assert!(s.failed >= 2 && s.transactions - s.failed >= 2, "{s:?}");
}

#[test]
fn zones_corpus() {
    assert!(replay("zones") >= 3, "the zones seeds are missing");
}

/// The zones target's end-to-end half (plan, apply, re-plan) only runs on accepted files.
#[test]
fn zones_seeds_include_accepted_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/zones");
    for name in ["zones.toml", "vm-and-uplink.toml"] {
        let text = std::fs::read_to_string(root.join(name)).expect("seed");
        assert!(zones::parse(&text, name).is_ok(), "{name} is refused");
    }
    let text = std::fs::read_to_string(root.join("errors.toml")).expect("seed");
    assert!(zones::parse(&text, "errors.toml").map_err(|d| d.len()).unwrap_err() >= 3);
}
