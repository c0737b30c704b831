//! The signature string `ed25519:<key id>:<base64>`: its exact form and each way to break it.

use kojibox_signing::{Error, Signature, SignatureProblem};

use crate::support::{b64, key};

const ID: &str = "0123456789abcdef";

fn problem(input: &str) -> (SignatureProblem, String) {
    match input.parse::<Signature>() {
        Err(err @ Error::MalformedSignature { .. }) => {
            let msg = err.to_string();
            assert!(
                msg.contains(
                    "a signature looks like `ed25519:<16 hex key id>:<base64 of 64 bytes>`"
                ),
                "{msg}"
            );
            let Error::MalformedSignature { problem, .. } = err else {
                unreachable!()
            };
            (problem, msg)
        }
        other => panic!("{input:?} gave {other:?}"),
    }
}

#[test]
fn the_text_form_is_scheme_key_id_and_padded_base64() {
    let secret = key(1);
    let sig = secret.sign(b"m");
    let text = sig.to_string();
    let expected = format!("ed25519:{}:{}", secret.key_id(), b64(&sig.to_bytes()));
    assert_eq!(text, expected);
    assert_eq!(text.len(), "ed25519:".len() + 16 + 1 + 88);
    assert_eq!(text.parse::<Signature>().unwrap(), sig);
}

#[test]
fn a_wrong_scheme_is_named() {
    let sig64 = b64(&[0; 64]);
    for (input, found) in [
        (format!("rsa:{ID}:{sig64}"), "rsa"),
        (format!("ED25519:{ID}:{sig64}"), "ED25519"),
        (format!(" ed25519:{ID}:{sig64}"), " ed25519"),
        (String::new(), ""),
        ("AAAA==".to_owned(), "AAAA=="),
    ] {
        let (problem, msg) = problem(&input);
        assert_eq!(
            problem,
            SignatureProblem::WrongScheme {
                found: found.to_owned()
            },
            "{input:?}"
        );
        assert!(msg.contains("it must start with `ed25519:`"), "{msg}");
    }
}

#[test]
fn missing_or_extra_parts_are_counted() {
    let sig64 = b64(&[0; 64]);
    for (input, found) in [
        ("ed25519".to_owned(), 1),
        (format!("ed25519:{ID}"), 2),
        (format!("ed25519:{ID}:{sig64}:extra"), 4),
    ] {
        let (problem, msg) = problem(&input);
        assert_eq!(
            problem,
            SignatureProblem::WrongPartCount { found },
            "{input:?}"
        );
        assert!(msg.contains(&format!("expected 3 parts separated by `:`, found {found}")));
    }
}

#[test]
fn a_bad_key_id_is_named() {
    let sig64 = b64(&[0; 64]);
    for id in [
        "",
        "0123",
        "0123456789ABCDEF",
        "0123456789abcdefff",
        "zzzzzzzzzzzzzzzz",
    ] {
        let (problem, msg) = problem(&format!("ed25519:{id}:{sig64}"));
        assert_eq!(
            problem,
            SignatureProblem::BadKeyId {
                found: id.to_owned()
            }
        );
        assert!(msg.contains("is not 16 lowercase hex characters"), "{msg}");
    }
}

#[test]
fn bad_base64_is_named() {
    let sig64 = b64(&[0; 64]);
    for encoded in [
        "not base64!".to_owned(),
        sig64.trim_end_matches('=').to_owned(),
        sig64.replace('A', "-"),
        format!("{sig64}\n"),
    ] {
        let (problem, msg) = problem(&format!("ed25519:{ID}:{encoded}"));
        assert!(
            matches!(problem, SignatureProblem::BadBase64 { .. }),
            "{encoded:?}: {problem:?}"
        );
        assert!(msg.contains("not standard base64 with padding"), "{msg}");
    }
}

#[test]
fn a_wrong_length_is_named() {
    for len in [0, 32, 63, 65, 128] {
        let input = format!("ed25519:{ID}:{}", b64(&vec![7; len]));
        let (problem, msg) = problem(&input);
        assert_eq!(problem, SignatureProblem::WrongLength { actual: len });
        assert!(
            msg.contains(&format!("decodes to {len} bytes, expected 64")),
            "{msg}"
        );
    }
}
