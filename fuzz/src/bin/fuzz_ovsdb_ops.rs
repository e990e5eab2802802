//! AFL entry point for the `ovsdb_ops` target; the logic lives in `rvswitch_fuzz::ovsdb_ops`.

fn main() {
    afl::fuzz!(|data: &[u8]| rvswitch_fuzz::ovsdb_ops::run(data));
}
