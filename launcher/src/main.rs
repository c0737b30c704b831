//! `kojibox`: installs runtime bundles offline, supervises services and serves the API.
//!
//! Installing, serving and the API client are not built yet; until they are, this binary only
//! answers `--help` and `--version`, and lists no command it cannot run.

use clap::Parser;

/// Install kojibox runtime bundles offline and run your local development stack.
#[derive(Parser)]
#[command(name = "kojibox", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("kojibox: no commands are available in this build yet; see --help");
    std::process::exit(2);
}
