//! AFL entry point for the `wgquick` target; the logic lives in `rvswitch_fuzz::wgquick`.

fn main() {
    afl::fuzz!(|data: &[u8]| rvswitch_fuzz::wgquick::run(data));
}
