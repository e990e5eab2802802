//! AFL entry point for the `l3` target; the logic lives in `rvswitch_fuzz::l3`.

fn main() {
    afl::fuzz!(|data: &[u8]| rvswitch_fuzz::l3::run(data));
}
