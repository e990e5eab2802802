//! AFL entry point for the `frames` target; the logic lives in `rvswitch_fuzz::frames`.

fn main() {
    afl::fuzz!(|data: &[u8]| rvswitch_fuzz::frames::run(data));
}
