//! The user's settings, validated: the app, each service, each project, the port registry, and
//! the service definitions the supervisor runs.
//!
//! - [`app`], [`service`], [`project`]: the contract's `config.*` (`app/config/app.json`,
//!   `services/<id>.json`, `projects/<id>.json`). Every write is atomic and durable and runs
//!   under its lock; a corrupt file is an error naming it (a copy is kept aside), never a silent
//!   reset; everything is validated before anything is written, and a refusal names the field
//!   (`VALIDATION_FAILED`) or the port's holder (`PORT_CONFLICT`).
//! - [`ports`]: the port registry (`app/config/ports.json`).
//! - [`definition`]: what a service runs with, placeholders expanded (pure);
//!   [`catalog`]: loading every installed service's definition.
//! - [`user`]: who runs the services; [`validate`]: ids, domains, stacks.
//!
//! `AppConfig.installPath` is where the home is. It is reported, never stored: `config.setApp`
//! refuses any other path (kojibox does not move a home; move the folder and start kojibox with
//! `--home NEW`), and accepts this home's path or an empty string.

pub mod app;
pub mod catalog;
pub mod definition;
pub mod error;
pub mod ports;
pub mod project;
pub mod service;
pub mod user;
pub mod validate;

pub use app::{get_app, set_app};
pub use error::{Error, Result};
pub use project::{get_project, list_projects, remove_project, set_project};
pub use service::{get_service, set_service, stored_service};
