//! AFL entry point for the `zones` target; the logic lives in `rvswitch_fuzz::zones`.

fn main() {
    afl::fuzz!(|data: &[u8]| rvswitch_fuzz::zones::run(data));
}
