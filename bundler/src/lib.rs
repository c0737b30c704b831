//! `kojibox-bundle` as a library: recipe -> plan -> fetch -> stage -> pack -> sign, plus verify
//! and inspect.
//!
//! The binary (`src/main.rs`) only parses arguments and calls in here, so tests drive the same code.

pub mod build;
pub mod elf;
pub mod fetch;
pub mod inspect;
pub mod plan;
pub mod publish;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use kojibox_kbx::read::{Limits, Signed, Trust};
use kojibox_manifests::recipe::{Recipe, RecipeError};

/// The bundler's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A recipe file could not be read.
    #[error("could not read recipe {path}: {source}")]
    ReadRecipe {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A recipe is invalid.
    #[error("recipe {path} is invalid: {source}")]
    InvalidRecipe {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: RecipeError,
    },
    /// The build cannot be planned as asked.
    #[error("{0}")]
    Plan(String),
    /// Fetching a payload failed.
    #[error("{job}: {source}")]
    Fetch {
        /// The payload (`postgres 16.14 linux-x64`).
        job: String,
        /// Why.
        source: fetch::FetchError,
    },
    /// A fetched payload does not fit the recipe.
    #[error("{job}: {problem}")]
    Payload {
        /// The payload.
        job: String,
        /// What is wrong.
        problem: String,
    },
    /// Packing, writing or reading a bundle failed.
    #[error(transparent)]
    Format(#[from] kojibox_kbx::Error),
    /// A key could not be read or written.
    #[error(transparent)]
    Key(#[from] kojibox_signing::Error),
    /// A bundle file could not be opened.
    #[error("could not open bundle {path}: {source}")]
    OpenBundle {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Reads and validates a recipe file.
pub fn load_recipe(path: &Path) -> Result<Recipe, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadRecipe {
        path: path.to_owned(),
        source,
    })?;
    Recipe::parse(&text).map_err(|source| Error::InvalidRecipe {
        path: path.to_owned(),
        source,
    })
}

/// A human summary of a recipe: one line per service and target.
pub fn describe(recipe: &Recipe) -> String {
    let mut out = format!(
        "bundle {} (source: {}), {} service(s)\n",
        recipe.version,
        recipe.source,
        recipe.services.len()
    );
    for service in &recipe.services {
        out.push_str(&format!("  {} {}\n", service.name, service.version));
        for target in &service.targets {
            let source = &target.source;
            let from = source
                .npm
                .as_deref()
                .map(|s| format!("npm {s}"))
                .or_else(|| source.url.as_deref().map(|u| format!("url {u}")))
                .or_else(|| source.path.as_deref().map(|p| format!("path {p}")))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {:<14} {:<28} {}\n",
                target.triple(),
                target.bin_path,
                from
            ));
        }
    }
    out
}

/// Verifies a bundle completely against one public key: the signature, then every member.
pub fn verify_bundle(bundle: &Path, key: &kojibox_signing::PublicKey) -> Result<Signed, Error> {
    let file = open_bundle(bundle)?;
    Ok(kojibox_kbx::read::verify(
        BufReader::with_capacity(1 << 20, file),
        Trust::key(key),
        &Limits::default(),
    )?)
}

/// Opens a bundle file with an error naming it.
pub fn open_bundle(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|source| Error::OpenBundle {
        path: path.to_owned(),
        source,
    })
}

/// `SOURCE_DATE_EPOCH` when set (reproducible builds), else now; in seconds.
pub fn build_time() -> Result<i64, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value.trim().parse::<i64>().map_err(|_| {
            Error::Plan(format!(
                "SOURCE_DATE_EPOCH must be whole seconds since 1970, got `{value}`"
            ))
        }),
        Err(_) => Ok(jiff::Timestamp::now().as_second()),
    }
}
