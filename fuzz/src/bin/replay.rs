//! Replays inputs through a target without AFL: `replay TARGET FILE_OR_DIR...`. A crash AFL found
//! (`fuzz/out/TARGET/default/crashes/id:...`) panics here with the same message and a backtrace.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, paths)) = args.split_first() else {
        eprintln!("usage: replay TARGET FILE_OR_DIR...  (targets: {})", names());
        return ExitCode::from(2);
    };
    let Some(run) = rvswitch_fuzz::target(name) else {
        eprintln!("unknown target {name:?}; targets: {}", names());
        return ExitCode::from(2);
    };
    let mut n = 0;
    for p in paths {
        for file in rvswitch_fuzz::inputs(Path::new(p)) {
            eprintln!("replaying {}", file.display());
            match std::fs::read(&file) {
                Ok(data) => run(&data),
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            }
            n += 1;
        }
    }
    eprintln!("{n} inputs replayed, no crash");
    ExitCode::SUCCESS
}

fn names() -> String {
    rvswitch_fuzz::TARGETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}
