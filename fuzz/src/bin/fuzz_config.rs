//! AFL entry point for the `config` target; the logic lives in `rvswitch_fuzz::config`.

fn main() {
    afl::fuzz!(|data: &[u8]| rvswitch_fuzz::config::run(data));
}
