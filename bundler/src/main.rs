//! `kojibox-bundle`: builds signed, reproducible runtime bundles from a recipe.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build signed, reproducible kojibox runtime bundles (.kbx) from a recipe.
#[derive(Parser)]
#[command(name = "kojibox-bundle", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a recipe and print what it would bundle.
    ///
    /// Errors name the line and column of the offending key.
    Check {
        /// The recipe (TOML), e.g. manifests/recipes/default.toml.
        recipe: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { recipe } => match bundler::load_recipe(&recipe) {
            Ok(recipe) => {
                print!("{}", bundler::describe(&recipe));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
