//! AFL entry point for the `ovsdb` target; the logic lives in `rvswitch_fuzz::ovsdb_rpc`.

fn main() {
    afl::fuzz!(|data: &[u8]| rvswitch_fuzz::ovsdb_rpc::run(data));
}
