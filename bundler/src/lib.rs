//! `kojibox-bundle` as a library: recipe loading today; fetch, pack and sign to follow.
//!
//! The binary (`src/main.rs`) only parses arguments and calls in here, so tests drive the same code.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

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
