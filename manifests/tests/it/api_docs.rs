//! `docs/api.md`, the API reference for client authors, is generated and current.
//!
//! The reference is rendered from the JSON Schemas of [`kojibox_manifests::schema::all`] (the
//! very values committed under `manifests/schema/`, which `schema.rs` keeps current), the method
//! table (`for_each_method!`, `METHODS`, `ADDITIONS`), `ErrorCode::default_retryable` and the
//! request/response examples of the contract fixture. The test renders it in memory and fails
//! when the committed file differs; `KOJIBOX_UPDATE_SCHEMA=1 cargo test -p kojibox-manifests`
//! rewrites it together with the schemas.
//!
//! The renderer knows the shapes schemars emits for these types (objects, arrays, maps, nullable
//! types, string enums, `$ref`s) and panics on any other, so a new shape is taught here rather
//! than rendered wrong. It also checks the page it built: every heading anchor is unique and
//! every `#anchor` link lands on one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use kojibox_manifests::api::{ADDITIONS, METHODS};
use kojibox_manifests::{ErrorCode, Event};
use serde_json::Value;

/// The one command that regenerates the schemas and this page.
const REGENERATE: &str = "KOJIBOX_UPDATE_SCHEMA=1 cargo test -p kojibox-manifests";

/// What no schema says: how to reach the API. Kept by hand, so kept short; it must agree with the
/// launcher (`launcher/src/api/`) and `kojibox_home::endpoint`.
const INTRO: &str = r#"The kojibox daemon serves a JSON API on loopback: method calls on `POST /rpc`, events on
`GET /events`. Every type below is also a JSON Schema in `manifests/schema/` (`methods/`,
`events/`, `models/`).

## Finding the daemon

A running daemon writes two files under the kojibox home, and removes them when it stops:

- `app/state/api.json`: `{"url": "http://127.0.0.1:PORT", "pid": 1234}`, the base URL and the
  daemon's process id (a file naming a pid that has stopped is stale);
- `app/state/api-token`: the API token (mode 0600, new at each start).

Send the token with every request as `Authorization: Bearer <token>`. A missing or wrong token
answers 401 `UNAUTHORIZED`; a `Host` other than `localhost`, `127.0.0.1` or `[::1]`, or an
`Origin` other than the daemon's own, answers 403 `FORBIDDEN`; a body over 1 MiB answers 413
`PAYLOAD_TOO_LARGE`.

## Calling a method

`POST /rpc` with the body `{"method": "<name>", "params": {...}}`, for example
`{"method": "services.start", "params": {"id": "postgres"}}`. Missing or `null` params mean `{}`.
The answer is one of

- `{"result": <value>}`: the method's result, as described under each method, or
- `{"error": {"code", "message", "detail", "retryable", "source", "ts"}}`: an
  [`ApiError`](#apierror). `code` is an [`ErrorCode`](#errorcode); `retryable` says whether the
  same request may succeed later unchanged.

A request that parsed answers HTTP 200 whatever the outcome: read the envelope, not the status.
A body that is not a JSON object with a string `method` (or has other top-level keys), or params
that do not fit the method, answer 400 `VALIDATION_FAILED` (`detail` names the offending field
and says in words what was expected, e.g. `an object {"id": string}`);
an unknown method answers 404 `METHOD_NOT_FOUND`. Unknown keys in params are refused, except
where the params are a whole model (`config.setApp`, for one), whose unknown keys are ignored:
each method below says which. `config.setService` and `config.setProject` also take
`{"id": "<id>", "config": {...}}`; the two ids must agree.

## Event stream

`GET /events` (same token) is a stream of Server-Sent Events. Each event has an `event:` line
with its name (`service:stateChanged`), an `id:` line with an increasing integer and a `data:`
line with its payload as JSON (see [Events](#events)); the stream also carries keep-alive
comments. A client that reconnects with the last id it saw as `Last-Event-ID` is first sent the
events it missed, as far as a bounded buffer of recent events still holds them, then live ones.
A client that falls too far behind is disconnected and can reconnect so. `kojibox events` prints
the same events as JSON lines, `{"id": n, "event": "<name>", "data": {...}}`
(`events/EventEnvelope.json`).
"#;

macro_rules! method_docs {
    ($( ($variant:ident, $name:literal, $params:ty, $output:ty, $doc:literal) ),* $(,)?) => {
        /// Each method's doc string from the method table, by wire name.
        fn method_docs() -> BTreeMap<&'static str, &'static str> {
            BTreeMap::from([$(($name, $doc)),*])
        }
    };
}
kojibox_manifests::for_each_method!(method_docs);

/// Named types rendered in the Errors section rather than among the other types.
const ERROR_TYPES: [&str; 2] = ["ErrorCode", "ErrorSource"];

/// Everything the page is rendered from.
struct Sources {
    /// Every schema by its path under `manifests/schema/`.
    files: BTreeMap<String, Value>,
    /// Every named type that gets a section: the models and the `$defs` of method, event and
    /// model schemas, by name.
    types: BTreeMap<String, Value>,
    /// The names of the contract's models (`models/<Name>.json`).
    models: BTreeSet<String>,
    /// The contract's JSON examples by label (`services.list Request`).
    examples: BTreeMap<String, String>,
}

impl Sources {
    fn load() -> Sources {
        let files: BTreeMap<String, Value> = kojibox_manifests::schema::all().into_iter().collect();
        let mut types = BTreeMap::new();
        let mut models = BTreeSet::new();
        for (path, schema) in &files {
            if let Some(name) = path
                .strip_prefix("models/")
                .and_then(|p| p.strip_suffix(".json"))
            {
                models.insert(name.to_owned());
                add_type(&mut types, name, &strip_root(schema));
            }
            // The envelope's `$defs` are the event payloads, which the Events section renders
            // from their own files; recipe, bundle and api schemas are not part of the calls.
            let described = ["models/", "methods/", "events/"]
                .iter()
                .any(|dir| path.starts_with(dir))
                && path != "events/EventEnvelope.json";
            if described {
                for (name, def) in schema
                    .get("$defs")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    add_type(&mut types, name, def);
                }
            }
        }
        let fixture =
            std::fs::read_to_string(super::crate_dir().join("tests/fixtures/contract.md")).unwrap();
        Sources {
            files,
            types,
            models,
            examples: api_examples(&fixture),
        }
    }

    fn file(&self, path: &str) -> &Value {
        self.files
            .get(path)
            .unwrap_or_else(|| panic!("schema::all() has no {path}"))
    }
}

/// Records a named type; one name must mean one schema everywhere, or its section would lie.
fn add_type(types: &mut BTreeMap<String, Value>, name: &str, schema: &Value) {
    if let Some(known) = types.get(name) {
        assert_eq!(known, schema, "two different schemas are named `{name}`");
    }
    types.insert(name.to_owned(), schema.clone());
}

/// A root schema without what only a root has, so it compares equal to its `$defs` copies.
fn strip_root(schema: &Value) -> Value {
    let mut schema = schema.clone();
    let map = schema.as_object_mut().unwrap();
    for key in ["$schema", "$defs", "title"] {
        map.remove(key);
    }
    schema
}

/// The fenced `json` blocks of the contract's "API Request/Response Examples", by label
/// (`services.list Request`), the way `contract.rs` reads them: a `name:` line names the method,
/// then `Request:` and `Response:` label the blocks after them.
fn api_examples(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let (mut in_section, mut method, mut label) = (false, String::new(), String::new());
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(heading) = line.strip_prefix("## ") {
            in_section = heading.trim() == "API Request/Response Examples";
        } else if line.trim() == "```json" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            if in_section {
                let text: Vec<&str> = block.iter().map(|l| l.trim_end()).collect();
                out.insert(label.clone(), text.join("\n"));
            }
        } else if let Some(name) = line.strip_suffix(':') {
            if name == "Request" || name == "Response" {
                label = format!("{method} {name}");
            } else {
                method = name.to_owned();
            }
        }
    }
    out
}

/// The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as dashes.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Where a link to a heading goes before [`resolve_links`] knows its anchor.
const MARK: (&str, &str) = ("](#{{", "}})");

/// A link to the heading `heading`. Two headings can share a slug (`metrics.snapshot` and
/// `MetricsSnapshot`), which GitHub then numbers in page order, so the anchor is only known once
/// the whole page is: a mark stands in for it until then.
fn link_to(text: &str, heading: &str) -> String {
    format!("[{text}{}{heading}{}", MARK.0, MARK.1)
}

/// A link to the section of a named type (its heading is `` `Name` ``).
fn link(name: &str) -> String {
    let code = format!("`{name}`");
    link_to(&code, &code)
}

/// The anchor of every heading outside code blocks, in page order, numbered like GitHub does
/// when several share a slug (`x`, `x-1`, `x-2`).
fn anchors(page: &str) -> Vec<(String, String)> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    let mut in_code = false;
    for line in page.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            let heading = line.trim_start_matches('#').trim().to_owned();
            let base = slug(&heading);
            let count = seen.entry(base.clone()).or_default();
            let anchor = match *count {
                0 => base,
                n => format!("{base}-{n}"),
            };
            *count += 1;
            out.push((heading, anchor));
        }
    }
    out
}

/// Replaces each link mark with the anchor of its heading.
fn resolve_links(page: &str) -> String {
    let mut by_heading = BTreeMap::new();
    for (heading, anchor) in anchors(page) {
        assert!(
            by_heading.insert(heading.clone(), anchor).is_none(),
            "two headings read {heading}"
        );
    }
    let mut out = String::new();
    let mut rest = page;
    while let Some(start) = rest.find(MARK.0) {
        let after = &rest[start + MARK.0.len()..];
        let end = after.find(MARK.1).unwrap();
        let heading = &after[..end];
        let anchor = by_heading
            .get(heading)
            .unwrap_or_else(|| panic!("a link goes to {heading}, which has no heading"));
        write!(out, "{}](#{anchor})", &rest[..start]).unwrap();
        rest = &after[end + MARK.1.len()..];
    }
    out + rest
}

/// The name a `$ref` points to (`#/$defs/ServiceState`).
fn ref_name(schema: &Value) -> Option<&str> {
    let target = schema.get("$ref")?.as_str()?;
    Some(
        target
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("unexpected $ref {target}")),
    )
}

/// The values of a string enum with their descriptions: schemars writes a documented unit enum
/// as a `oneOf` of `const`s.
fn enum_values(schema: &Value) -> Option<Vec<(String, String)>> {
    let variants = schema.get("oneOf")?.as_array()?;
    variants
        .iter()
        .map(|v| Some((v.get("const")?.as_str()?.to_owned(), description(v))))
        .collect()
}

fn description(schema: &Value) -> String {
    schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A readable type: `string`, `array of X`, `X or null`, `` `a` | `b` ``, a link for a named type.
fn type_of(schema: &Value) -> String {
    if let Some(name) = ref_name(schema) {
        return link(name);
    }
    if let Some(values) = enum_values(schema) {
        let values: Vec<String> = values.iter().map(|(v, _)| format!("`{v}`")).collect();
        return values.join(" \\| ");
    }
    // schemars writes `Option<T>` as `anyOf [T, null]` when `T` is a `$ref`.
    if let Some(variants) = schema.get("anyOf").and_then(Value::as_array) {
        let variants: Vec<String> = variants.iter().map(type_of).collect();
        return variants.join(" or ");
    }
    match schema.get("type") {
        // ... and as `"type": [T, "null"]` otherwise: render each with the other keywords.
        Some(Value::Array(types)) => {
            let variants: Vec<String> = types
                .iter()
                .map(|t| {
                    let mut one = schema.clone();
                    one["type"] = t.clone();
                    type_of(&one)
                })
                .collect();
            variants.join(" or ")
        }
        Some(Value::String(t)) => match t.as_str() {
            "string" | "number" | "boolean" | "null" => t.clone(),
            "integer" => integer(schema),
            "array" => format!("array of {}", type_of(&schema["items"])),
            "object" => match schema.get("additionalProperties") {
                Some(values @ Value::Object(_)) => {
                    format!("map of string to {}", type_of(values))
                }
                _ => panic!("an inline object has no readable type; name it: {schema}"),
            },
            other => panic!("unknown JSON type `{other}` in {schema}"),
        },
        _ => panic!("cannot render this schema; teach api_docs.rs its shape: {schema}"),
    }
}

/// `integer`, with the range schemars gives it from the Rust type (`u16`: 0–65535).
fn integer(schema: &Value) -> String {
    let bound = |key: &str| schema.get(key).and_then(Value::as_i64);
    match (bound("minimum"), bound("maximum")) {
        (Some(min), Some(max)) => format!("integer ({min}–{max})"),
        (Some(min), None) => format!("integer (≥ {min})"),
        _ => "integer".to_owned(),
    }
}

/// Text for a table cell: one line, with `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The fields of an object schema as a table, in declaration order.
fn fields_table(out: &mut String, schema: &Value) {
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("not an object with fields: {schema}"));
    let required: BTreeSet<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str("| Field | Type | Required | Description |\n|---|---|---|---|\n");
    for (name, field) in properties {
        let required = if required.contains(name.as_str()) {
            "yes"
        } else {
            "no"
        };
        writeln!(
            out,
            "| `{name}` | {} | {required} | {} |",
            type_of(field),
            cell(&description(field))
        )
        .unwrap();
    }
    out.push('\n');
}

fn values_table(out: &mut String, values: &[(String, String)]) {
    out.push_str("| Value | Description |\n|---|---|\n");
    for (value, text) in values {
        writeln!(out, "| `{value}` | {} |", cell(text)).unwrap();
    }
    out.push('\n');
}

/// A paragraph followed by a blank line (nothing for an empty text).
fn paragraph(out: &mut String, text: &str) {
    if !text.is_empty() {
        out.push_str(text);
        out.push_str("\n\n");
    }
}

/// The module of a method: the part of its name before the dot.
fn module(method: &str) -> &str {
    method.split('.').next().unwrap()
}

fn addition_mark(method: &str) -> &'static str {
    if ADDITIONS.contains(&method) {
        " (addition)"
    } else {
        ""
    }
}

fn event_file(name: &str) -> String {
    format!("events/{}.json", name.replace(':', "-"))
}

fn event_heading(name: &str) -> String {
    // Not just the name: `config:changed` and the type `ConfigChanged` would share an anchor.
    format!("`{name}` event")
}

/// The named types of the "Other types" section: referenced by the calls, not a model, not an
/// error type.
fn other_types(src: &Sources) -> Vec<&str> {
    src.types
        .keys()
        .map(String::as_str)
        .filter(|name| !src.models.contains(*name) && !ERROR_TYPES.contains(name))
        .collect()
}

fn render_contents(out: &mut String, src: &Sources) {
    out.push_str("## Contents\n\n- [Methods](#methods)\n");
    // Modules in the order the method table first names them.
    let mut modules: Vec<&str> = Vec::new();
    for method in METHODS {
        if !modules.contains(&module(method)) {
            modules.push(module(method));
        }
    }
    for name in modules {
        let methods: Vec<String> = METHODS
            .iter()
            .filter(|m| module(m) == name)
            .map(|m| link(m) + addition_mark(m))
            .collect();
        writeln!(out, "  - {name}: {}", methods.join(", ")).unwrap();
    }
    let events: Vec<String> = Event::NAMES
        .iter()
        .map(|e| link_to(&format!("`{e}`"), &event_heading(e)))
        .collect();
    writeln!(out, "- [Events](#events): {}", events.join(", ")).unwrap();
    let models: Vec<String> = src.models.iter().map(|m| link(m)).collect();
    writeln!(out, "- [Models](#models): {}", models.join(", ")).unwrap();
    let others: Vec<String> = other_types(src).into_iter().map(link).collect();
    writeln!(out, "- [Other types](#other-types): {}", others.join(", ")).unwrap();
    let errors: Vec<String> = ERROR_TYPES.into_iter().map(link).collect();
    writeln!(out, "- [Errors](#errors): {}\n", errors.join(", ")).unwrap();
}

fn render_methods(out: &mut String, src: &Sources) {
    let docs = method_docs();
    out.push_str("## Methods\n\nIn the contract's order, the additions with their module.\n\n");
    for method in METHODS {
        writeln!(out, "### `{method}`\n").unwrap();
        paragraph(out, docs[method]);
        if ADDITIONS.contains(method) {
            paragraph(out, "*An addition to the contract.*");
        }
        render_params(out, src, method);
        render_result(out, src, method);
        for (kind, label) in [
            ("Request", "Example request"),
            ("Response", "Example response"),
        ] {
            if let Some(json) = src.examples.get(&format!("{method} {kind}")) {
                writeln!(out, "{label}:\n\n```json\n{json}\n```\n").unwrap();
            }
        }
    }
}

fn render_params(out: &mut String, src: &Sources, method: &str) {
    let schema = src.file(&format!("methods/{method}.params.json"));
    let has_fields = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    if !has_fields {
        paragraph(out, "**Params:** none: send `{}` or leave `params` out.");
        return;
    }
    let title = schema.get("title").and_then(Value::as_str).unwrap_or("");
    if src.models.contains(title) {
        paragraph(out, &format!("**Params:** the fields of {}:", link(title)));
    } else {
        paragraph(out, "**Params:**");
    }
    fields_table(out, schema);
    // `deny_unknown_fields` shows as `additionalProperties: false`; models do without it.
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        paragraph(out, "Unknown keys are refused.");
    } else {
        paragraph(out, "Unknown keys are ignored.");
    }
}

fn render_result(out: &mut String, src: &Sources, method: &str) {
    let schema = src.file(&format!("methods/{method}.response.json"));
    let variants = schema["oneOf"].as_array().unwrap();
    let field = |key: &str| {
        variants
            .iter()
            .find_map(|v| v["properties"].get(key))
            .unwrap_or_else(|| panic!("{method}: the response has no `{key}` variant"))
    };
    // The intro promises every method fails with an ApiError; hold it to that.
    assert_eq!(ref_name(field("error")), Some("ApiError"), "{method}");
    let result = field("result");
    let mut text = format!("**Result:** {}", type_of(result));
    // A named result's own description says what it is (`Ack`: the string "ok").
    if let Some(about) = ref_name(result).map(|name| description(&src.types[name])) {
        write!(text, " — {about}").unwrap();
    }
    paragraph(out, &text);
}

fn render_events(out: &mut String, src: &Sources) {
    out.push_str("## Events\n\nThe payload is the `data:` of the event on `GET /events`.\n\n");
    let envelope = src.file("events/EventEnvelope.json");
    let variants = envelope["oneOf"].as_array().unwrap();
    assert_eq!(
        variants.len(),
        Event::NAMES.len(),
        "EventEnvelope and Event::NAMES differ"
    );
    for name in Event::NAMES {
        let variant = variants
            .iter()
            .find(|v| v["properties"]["event"]["const"] == name)
            .unwrap_or_else(|| panic!("EventEnvelope has no `{name}`"));
        writeln!(out, "### {}\n", event_heading(name)).unwrap();
        paragraph(out, &description(variant));
        let payload = src.file(&event_file(name));
        let title = payload["title"].as_str().unwrap();
        // A payload with a section of its own is linked; one used only here is shown in place.
        if src.types.contains_key(title) {
            paragraph(out, &format!("**Payload:** {}", link(title)));
        } else {
            paragraph(out, "**Payload:**");
            fields_table(out, payload);
        }
    }
}

/// One named type: its description, then its fields or its values.
fn render_type(out: &mut String, name: &str, schema: &Value) {
    writeln!(out, "### `{name}`\n").unwrap();
    paragraph(out, &description(schema));
    match enum_values(schema) {
        Some(values) => values_table(out, &values),
        // An untagged union (`OneOrMany`): its forms.
        None if schema.get("anyOf").is_some() => {
            writeln!(out, "Either: {}.\n", type_of(schema)).unwrap();
        }
        None => fields_table(out, schema),
    }
}

fn render_types(out: &mut String, src: &Sources) {
    out.push_str(
        "## Models\n\nThe contract's shared data models (`manifests/schema/models/`).\n\n",
    );
    for name in &src.models {
        render_type(out, name, &src.types[name]);
    }
    out.push_str(
        "## Other types\n\nThe other named types of method params, results and event payloads.\n\n",
    );
    for name in other_types(src) {
        render_type(out, name, &src.types[name]);
    }
}

fn render_errors(out: &mut String, src: &Sources) {
    out.push_str("## Errors\n\nA failed call answers `{\"error\": ...}`, an ");
    out.push_str(&link("ApiError"));
    out.push_str(".\n\n");
    let defs = &src.file("api/ErrorResponse.json")["$defs"];
    let codes: BTreeMap<String, String> = enum_values(&defs["ErrorCode"])
        .unwrap()
        .into_iter()
        .collect();
    let wire: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        codes.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        wire,
        "ErrorCode::ALL and the ErrorCode schema differ"
    );
    out.push_str("### `ErrorCode`\n\n");
    paragraph(out, &description(&defs["ErrorCode"]));
    out.push_str(
        "`retryable` is set per error; the column gives the default for the code. A stored file\n\
         that is corrupt is never retryable, whatever its code: asking again gives the same answer\n\
         until someone fixes the file.\n\n\
         | Code | Retryable by default | Description |\n|---|---|---|\n",
    );
    for code in ErrorCode::ALL {
        let retryable = if code.default_retryable() {
            "yes"
        } else {
            "no"
        };
        writeln!(
            out,
            "| `{}` | {retryable} | {} |",
            code.as_str(),
            cell(&codes[code.as_str()])
        )
        .unwrap();
    }
    out.push('\n');
    out.push_str("### `ErrorSource`\n\n");
    paragraph(out, &description(&defs["ErrorSource"]));
    values_table(out, &enum_values(&defs["ErrorSource"]).unwrap());
}

/// The whole page.
fn render() -> String {
    let src = Sources::load();
    let mut out = format!(
        "# kojibox API reference\n\n\
         > Generated by `manifests/tests/it/api_docs.rs` from the JSON Schemas in \
         `manifests/schema/` and the method table of `kojibox-manifests`; do not edit by hand. \
         Regenerate with `{REGENERATE}`.\n\n{INTRO}\n"
    );
    render_contents(&mut out, &src);
    render_methods(&mut out, &src);
    render_events(&mut out, &src);
    render_types(&mut out, &src);
    render_errors(&mut out, &src);
    let out = resolve_links(&out);
    // One newline at the end, none at line ends.
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_owned() + "\n"
}

/// Every heading's anchor is unique and every `](#anchor)` link, the intro's too, has a heading.
fn check_anchors(page: &str) {
    let mut unique = BTreeSet::new();
    for (_, anchor) in anchors(page) {
        assert!(
            unique.insert(anchor.clone()),
            "two headings have the anchor #{anchor}"
        );
    }
    for link in page.split("](#").skip(1) {
        let anchor = &link[..link.find(')').unwrap()];
        assert!(unique.contains(anchor), "the link #{anchor} has no heading");
    }
}

#[test]
fn docs_api_md_is_current() {
    let page = render();
    check_anchors(&page);
    let path = super::crate_dir().parent().unwrap().join("docs/api.md");
    if std::env::var_os("KOJIBOX_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &page).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    // Name the first differing line: the whole page is too long for an assertion message.
    let first_difference = committed
        .lines()
        .zip(page.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(page.lines().count()));
    assert!(
        committed == page,
        "docs/api.md is stale (first difference at line {}); run `{REGENERATE}` and commit the \
         result",
        first_difference + 1
    );
}
