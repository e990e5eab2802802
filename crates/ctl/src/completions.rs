//! Shell completion scripts made from the clap definitions themselves (clap_complete), like the
//! man pages: they cannot drift from what rvsctl accepts.

/// The completion script for `shell`, completing `cmd`'s subcommands, flags and fixed values.
pub fn script(cmd: clap::Command, shell: clap_complete::Shell) -> String {
    let mut cmd = cmd;
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};
    use clap_complete::Shell;

    fn sample() -> Command {
        Command::new("rvsdemo").subcommand(Command::new("show")).subcommand(
            Command::new("topology").arg(Arg::new("format").long("format").value_parser(["svg", "dot"])),
        )
    }

    #[test]
    fn scripts_name_the_program_its_subcommands_and_values() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let s = script(sample(), shell);
            assert!(s.contains("rvsdemo"), "{shell}: no program name");
            assert!(s.contains("topology") && s.contains("show"), "{shell}: subcommands missing");
            assert!(s.contains("--format") || s.contains("-l format"), "{shell}: flag missing");
            assert!(s.contains("svg"), "{shell}: the flag's values are not completed");
        }
    }

    #[test]
    fn the_bash_script_registers_a_completion_function() {
        let s = script(sample(), Shell::Bash);
        assert!(s.contains("complete -F"), "{s}");
    }
}
