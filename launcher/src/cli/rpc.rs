//! `kojibox rpc METHOD [PARAMS_JSON]`: any API method, its envelope printed as it came.

use std::process::ExitCode;

use anyhow::{Context, Result};
use kojibox_home::Home;
use launcher::client::Client;

/// `kojibox rpc METHOD [PARAMS_JSON]`: prints the envelope; exit 1 on an error envelope.
pub(crate) fn rpc(home: &Home, method: &str, params: Option<&str>) -> Result<ExitCode> {
    let params: serde_json::Value = match params {
        Some(text) => serde_json::from_str(text)
            .with_context(|| format!("PARAMS_JSON is not JSON: {text}"))?,
        None => serde_json::json!({}),
    };
    let envelope = Client::connect(home)?.call_raw(method, params)?;
    println!("{}", serde_json::to_string_pretty(&envelope)?);
    Ok(if envelope.get("error").is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
