//! `kojibox verify`: every installed payload re-hashed against its signed index, every difference
//! listed (modes, setuid/setgid, added, missing and changed files, links leaving the payload); exit
//! 1 on drift.

use std::process::ExitCode;

use anyhow::Result;
use kojibox_home::Home;

/// `kojibox verify [--json]`.
pub(crate) fn run(home: &Home, json: bool) -> Result<ExitCode> {
    for line in kojibox_runtime::install::recover_if_idle(home)? {
        eprintln!("note: {line}");
    }
    kojibox_runtime::installed::get_manifest(home)?;
    let report = kojibox_runtime::verify::verify_installed(home)?;
    if json {
        let payloads: Vec<_> = report.payloads.iter().map(|p| serde_json::json!({"payload": p.label, "root": p.root, "intact": p.drift.is_empty(), "drift": p.drift})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"clean": report.is_clean(), "payloads": payloads, "problems": report.problems, "notes": report.notes})
            )?
        );
    } else {
        for problem in &report.problems {
            println!("PROBLEM  {problem}");
        }
        for note in &report.notes {
            println!("note     {note}");
        }
        for p in &report.payloads {
            if p.drift.is_empty() {
                println!("ok       {}", p.label);
            } else {
                println!("DRIFTED  {} ({} difference(s))", p.label, p.drift.len());
                for d in &p.drift {
                    println!("           {d}");
                }
            }
        }
    }
    if !report.is_clean() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
