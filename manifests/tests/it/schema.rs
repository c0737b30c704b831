//! The committed JSON Schemas under `manifests/schema/` match the types.
//!
//! `KOJIBOX_UPDATE_SCHEMA=1 cargo test -p kojibox-manifests schema` rewrites them.

use std::collections::BTreeSet;
use std::path::Path;

fn committed_files(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out
}

#[test]
fn committed_schemas_are_current() {
    let root = super::crate_dir().join("schema");
    let generated = kojibox_manifests::schema::all();
    let update = std::env::var_os("KOJIBOX_UPDATE_SCHEMA").is_some();
    if update {
        let _ = std::fs::remove_dir_all(&root);
    }
    let mut stale = Vec::new();
    for (path, schema) in &generated {
        let text = serde_json::to_string_pretty(schema).unwrap() + "\n";
        let file = root.join(path);
        if update {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &text).unwrap();
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.clone());
        }
    }
    let expected: BTreeSet<String> = generated.iter().map(|(p, _)| p.clone()).collect();
    let extra: Vec<_> = committed_files(&root)
        .difference(&expected)
        .cloned()
        .collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "manifests/schema is stale (changed or missing: {stale:?}; not generated any more: {extra:?}); \
         run `KOJIBOX_UPDATE_SCHEMA=1 cargo test -p kojibox-manifests schema` and commit the result"
    );
}

#[test]
fn there_is_a_schema_for_every_method_model_and_event() {
    let paths: BTreeSet<String> = kojibox_manifests::schema::all()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    for method in kojibox_manifests::api::METHODS {
        assert!(
            paths.contains(&format!("methods/{method}.params.json")),
            "{method}"
        );
        assert!(
            paths.contains(&format!("methods/{method}.response.json")),
            "{method}"
        );
    }
    for event in kojibox_manifests::Event::NAMES {
        assert!(
            paths.contains(&format!("events/{}.json", event.replace(':', "-"))),
            "{event}"
        );
    }
    assert_eq!(
        paths.iter().filter(|p| p.starts_with("models/")).count(),
        19
    );
}
