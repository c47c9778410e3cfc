//! `strata completions bash|zsh|fish|elvish|powershell`: the shell completion script, on stdout.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit::{CliError, Exit};
use crate::output::Out;

pub fn run(shell: clap_complete::Shell, out: &mut Out) -> Result<Exit, CliError> {
    // Into memory first: clap_complete panics on a failed write (`strata completions bash |
    // head`), Out reports it.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "strata", &mut script);
    out.text(&String::from_utf8_lossy(&script))?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_commands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "strata", &mut script);
            let script = String::from_utf8(script).unwrap();
            for command in ["start", "watch", "compare", "export", "completions"] {
                assert!(script.contains(command), "{shell}: no {command}");
            }
        }
    }
}
