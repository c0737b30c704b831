//! `kojibox-bundle`: builds signed, reproducible runtime bundles from a recipe.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use bundler::build::{Ui, human_bytes};
use bundler::fetch::FetchContext;
use bundler::plan::Plan;
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
    /// Create a signing key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files, e.g. `keys/release`.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Fetch, verify, pack and sign a recipe's payloads into one .kbx bundle.
    ///
    /// Artifacts are cached by content, so a second build needs no network. Set
    /// SOURCE_DATE_EPOCH for a byte-identical rebuild.
    Build {
        /// The recipe (TOML), e.g. manifests/recipes/default.toml.
        recipe: PathBuf,
        /// Secret key to sign with. Default: <out without .kbx>.key, generated (with its .pub)
        /// when it does not exist yet.
        #[arg(long, value_name = "PREFIX.key")]
        key: Option<PathBuf>,
        /// The bundle to write.
        #[arg(long, value_name = "FILE.kbx")]
        out: PathBuf,
        /// Only these targets (os-arch, e.g. linux-x64, or `host` for this machine's); repeat
        /// for more. Default: all.
        #[arg(long = "target", value_name = "OS-ARCH")]
        targets: Vec<String>,
        /// zstd compression level, 1 (fast) to 22 (small).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
        level: i32,
        /// Download cache. Default: $KOJIBOX_CACHE, else $XDG_CACHE_HOME/kojibox-bundle, else
        /// ~/.cache/kojibox-bundle.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Compression threads. Default: one per core.
        #[arg(long, value_name = "N")]
        threads: Option<u32>,
        /// Also print the sha256 of the bundle file (read back once more when written).
        #[arg(long)]
        sha256: bool,
        /// Print the plan of steps and do nothing else (a `deb` source's packages are worked out
        /// with apt, and listed).
        #[arg(long)]
        dry_run: bool,
    },
    /// Verify a bundle: its signature, then every file against the signed index.
    ///
    /// Exits 0 when the bundle is intact and signed by the key, 1 otherwise.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// The public key that must have signed it.
        #[arg(long, value_name = "PREFIX.pub")]
        pubkey: PathBuf,
    },
    /// Publish a bundle to an update repository (a folder; copy it to a USB stick or serve it
    /// over HTTP) and sign the channel's index.
    ///
    /// Copies the bundle to REPO/bundles/kojibox-VERSION.kbx and writes
    /// REPO/channels/CHANNEL.json naming its version, path, sha256, size, publish and expiry
    /// times. Launchers refuse an expired index: publish again before it expires.
    Publish {
        /// The bundle (.kbx), signed by --key.
        bundle: PathBuf,
        /// The repository folder.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The channel: stable or beta.
        #[arg(long, default_value = "stable")]
        channel: String,
        /// The secret key that signed the bundle; it signs the index too.
        #[arg(long, value_name = "PREFIX.key")]
        key: PathBuf,
        /// How long launchers trust the index: 30d, 12h, 90m, 45s.
        #[arg(long, default_value = "30d", value_name = "DURATION")]
        expires: String,
        /// Publish even when the channel names a newer version, or replace a version's bundle.
        #[arg(long)]
        force: bool,
    },
    /// Print a bundle's manifest, payloads and provenance (without verifying it).
    Inspect {
        /// The bundle.
        bundle: PathBuf,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Validate a recipe and print what it would bundle.
    ///
    /// Errors name the line and column of the offending key.
    Check {
        /// The recipe (TOML), e.g. manifests/recipes/default.toml.
        recipe: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen { out } => {
            let id = kojibox_signing::write_keypair(&out)?;
            println!("key id {id}");
            println!(
                "secret key {} (mode 0600: keep it safe)",
                with_suffix(&out, ".key").display()
            );
            println!(
                "public key {} (give this to installers)",
                with_suffix(&out, ".pub").display()
            );
        }
        Command::Check { recipe } => {
            let recipe = bundler::load_recipe(&recipe)?;
            print!("{}", bundler::describe(&recipe));
        }
        Command::Build {
            recipe: recipe_path,
            key,
            out,
            targets,
            level,
            cache,
            threads,
            sha256,
            dry_run,
        } => {
            let recipe = bundler::load_recipe(&recipe_path)?;
            let targets = targets
                .into_iter()
                .map(|t| match t.as_str() {
                    "host" => kojibox_kbx::paths::host_target()
                        .context("this machine is not a target bundles support"),
                    _ => Ok(t),
                })
                .collect::<Result<Vec<_>>>()?;
            let cache = cache.unwrap_or_else(FetchContext::default_cache_dir);
            let mut plan = Plan::new(&recipe, &targets, out.clone(), cache.clone(), level)
                .map_err(bundler::Error::Plan)?;
            plan.sha256 = sha256;
            let recipe_dir = recipe_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned();
            let ctx = FetchContext::new(cache, recipe_dir);
            if dry_run {
                print!("{plan}");
                // A `deb` payload's packages are worked out from its binaries: list them.
                for job in &plan.jobs {
                    let closure =
                        bundler::fetch::deb_closure(&job.target.source, &job.target.arch, &ctx)
                            .map_err(|source| bundler::Error::Fetch {
                                job: job.label(),
                                source,
                            })?;
                    if closure.is_empty() {
                        continue;
                    }
                    println!("\n{}: {} Debian packages", job.label(), closure.len());
                    for p in closure {
                        let why = p
                            .needed_for
                            .map(|n| format!("  ({n})"))
                            .unwrap_or_else(|| "  (named in the recipe)".to_owned());
                        println!(
                            "  {}={} {}  sha256:{}{why}",
                            p.name, p.version, p.arch, p.sha256
                        );
                    }
                }
                return Ok(());
            }
            let key = load_or_create_key(key, &out)?;
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
            });
            let ui = Ui::new(std::io::stderr().is_terminal());
            let report =
                bundler::build::build(&plan, &key, &ctx, threads, bundler::build_time()?, &ui)?;
            println!(
                "wrote {} ({}, {} of payload) in {:.1}s",
                out.display(),
                human_bytes(report.bytes),
                human_bytes(report.payload_bytes),
                report.elapsed.as_secs_f64()
            );
            if let Some(sha256) = &report.sha256 {
                println!("  {sha256}");
            }
            println!("  signed by key {}", report.key_id);
            println!(
                "  artifacts: {} downloaded, {} from cache",
                report.downloaded, report.cached
            );
            for (label, size, checksum) in &report.payloads {
                println!("  {label:<32} {:>11}  {checksum}", human_bytes(*size));
            }
        }
        Command::Verify { bundle, pubkey } => {
            let key = kojibox_signing::PublicKey::read(&pubkey)?;
            let signed = bundler::verify_bundle(&bundle, &key)
                .with_context(|| format!("{} does not verify", bundle.display()))?;
            let m = &signed.index.manifest;
            println!(
                "OK: {} is bundle {} signed by key {}; {} payload(s), {} entries verified",
                bundle.display(),
                m.version,
                key.key_id(),
                m.services.len(),
                signed.index.files.len()
            );
        }
        Command::Publish {
            bundle,
            repo,
            channel,
            key,
            expires,
            force,
        } => {
            let expires_in = kojibox_manifests::channel::parse_duration(&expires)
                .map_err(|e| anyhow::anyhow!("--expires {e}"))?;
            let key = kojibox_signing::SecretKey::read(&key)?;
            let published = bundler::publish::publish(
                &bundler::publish::Publish {
                    bundle: &bundle,
                    repo: &repo,
                    channel: &channel,
                    expires_in,
                    force,
                },
                &key,
            )?;
            let i = &published.index;
            println!(
                "published {} on channel {} ({}{}), signed by key {}",
                i.version,
                i.channel,
                published.channel_file.display(),
                published
                    .previous
                    .as_ref()
                    .map(|p| format!(", was {p}"))
                    .unwrap_or_default(),
                key.key_id()
            );
            println!("  bundle   {} ({} bytes)", i.bundle, i.size);
            println!("  sha256   {}", i.sha256);
            println!("  expires  {}", i.expires_at);
        }
        Command::Inspect { bundle, json } => {
            let inspected = bundler::inspect::inspect(&bundle)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inspected.to_json())?);
            } else {
                print!("{}", inspected.render());
            }
        }
    }
    Ok(())
}

/// The signing key: the one given, else `<out stem>.key`, created with its `.pub` if missing.
fn load_or_create_key(key: Option<PathBuf>, out: &Path) -> Result<kojibox_signing::SecretKey> {
    if let Some(path) = key {
        return Ok(kojibox_signing::SecretKey::read(&path)?);
    }
    let prefix = out.with_extension("");
    let path = with_suffix(&prefix, ".key");
    if path.exists() {
        eprintln!("signing with {} (no --key given)", path.display());
        return Ok(kojibox_signing::SecretKey::read(&path)?);
    }
    let id = kojibox_signing::write_keypair(&prefix)?;
    eprintln!(
        "no --key given: generated signing key {id}: {} (secret, keep it safe) and {} (public: install with --pubkey)",
        path.display(),
        with_suffix(&prefix, ".pub").display()
    );
    Ok(kojibox_signing::SecretKey::read(&path)?)
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The error and its causes, `: `-separated, each cause left out when the message before it
/// already says it (most errors quote their source).
fn chain(e: &anyhow::Error) -> String {
    e.chain().skip(1).fold(e.to_string(), |text, cause| {
        let cause = cause.to_string();
        if text.contains(&cause) {
            text
        } else {
            format!("{text}: {cause}")
        }
    })
}
