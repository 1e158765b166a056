//! `drtool completions SHELL` and `drtool man`: generated from the clap
//! definitions, so they cannot drift from the commands.

use std::path::PathBuf;

use clap::CommandFactory;

use super::Cli;
use crate::exit;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write one page per command (drtool.1, drtool-backup.1, ...) into DIR
    /// instead of printing drtool.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(a: &CompletionsArgs) -> u8 {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "drtool", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    exit::OK
}

pub fn man(a: &ManArgs) -> u8 {
    let cmd = Cli::command();
    match &a.dir {
        Some(dir) => {
            let written =
                std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir));
            match written {
                Ok(()) => {
                    outln!("man pages written to {}", dir.display());
                    exit::OK
                }
                Err(e) => {
                    errln!(
                        "error: cannot write the man pages into {}: {}",
                        dir.display(),
                        crate::error::os_words(&e).unwrap_or_else(|| e.to_string())
                    );
                    exit::FAILED
                }
            }
        }
        None => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(cmd).render(&mut page) {
                Ok(()) => {
                    out!("{}", String::from_utf8_lossy(&page));
                    exit::OK
                }
                Err(e) => {
                    errln!("error: cannot render the man page: {e}");
                    exit::FAILED
                }
            }
        }
    }
}
