//! `kojibox dashboard`: opens the daemon's page in the browser with a one-time login.
//!
//! The URL carries a login code in its fragment (never sent to a server, never in a
//! `Referer`); the page trades it for a session that only this daemon's page holds, and cleans
//! the address bar. The code works once, for two minutes. The API token never leaves the CLI.

use std::process::ExitCode;

use anyhow::Result;
use kojibox_home::Home;

use launcher::client::Client;

pub(crate) fn dashboard(home: &Home, print_url: bool, json: bool) -> Result<ExitCode> {
    let client = Client::connect(home)?;
    let (url, expires) = client.login()?;
    if json {
        super::print_json(&serde_json::json!({ "url": url, "expiresAt": expires }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if print_url {
        println!("{url}");
        return Ok(ExitCode::SUCCESS);
    }
    match open(&url) {
        Ok(()) => {
            println!(
                "opened the dashboard in your browser (the login in it works once, until {expires})"
            );
        }
        Err(why) => {
            println!(
                "could not open a browser ({why}); open this address (it works once, until {expires}):"
            );
            println!("{url}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Hands `url` to the desktop's browser.
fn open(url: &str) -> Result<(), String> {
    let mut command = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        // Untested: `start` is a shell built-in; the empty title keeps the URL an argument.
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    let status = command
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the opener exited with {status}"))
    }
}
