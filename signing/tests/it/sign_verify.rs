//! Signing and verifying: round trips, wrong keys, single-bit tampering, strict verification.

use curve25519_dalek::Scalar;
use ed25519_dalek::Verifier as _;
use kojibox_signing::{Error, Signature, generate};
use sha2::{Digest as _, Sha512};

use crate::support::key;

#[test]
fn a_signature_verifies_with_its_key_also_after_a_text_round_trip() {
    let secret = generate();
    let public = secret.public_key();
    for msg in [&b""[..], b"hello", &[0xab; 100_000]] {
        let sig = secret.sign(msg);
        assert_eq!(sig.key_id(), secret.key_id());
        public.verify(msg, &sig).unwrap();
        let parsed: Signature = sig.to_string().parse().unwrap();
        public.verify(msg, &parsed).unwrap();
    }
}

#[test]
fn another_key_is_told_apart_by_key_id() {
    let (a, b) = (key(1), key(2));
    let sig = a.sign(b"payload");
    let err = b.public_key().verify(b"payload", &sig).unwrap_err();
    assert!(
        matches!(err, Error::WrongKey { signed_by, key } if signed_by == a.key_id() && key == b.key_id()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "data was signed by key {}, not by this key {}",
            a.key_id(),
            b.key_id()
        )
    );
}

#[test]
fn a_signature_relabelled_with_another_key_id_does_not_verify() {
    let (a, b) = (key(1), key(2));
    let sig = a.sign(b"payload");
    let relabelled = Signature::from_parts(b.key_id(), sig.to_bytes());
    let err = b.public_key().verify(b"payload", &relabelled).unwrap_err();
    assert!(
        matches!(err, Error::BadSignature { key_id } if key_id == b.key_id()),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not match the data"), "{err}");
}

#[test]
fn flipping_any_bit_of_the_message_fails_verification() {
    let secret = key(3);
    let public = secret.public_key();
    let msg = b"kojibox bundle digest".to_vec();
    let sig = secret.sign(&msg);
    for bit in 0..msg.len() * 8 {
        let mut tampered = msg.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        let err = public.verify(&tampered, &sig).unwrap_err();
        assert!(
            matches!(err, Error::BadSignature { .. }),
            "bit {bit}: {err:?}"
        );
    }
    let mut longer = msg.clone();
    longer.push(0);
    assert!(public.verify(&longer, &sig).is_err());
    assert!(public.verify(&msg[..msg.len() - 1], &sig).is_err());
    public.verify(&msg, &sig).unwrap();
}

#[test]
fn flipping_any_bit_of_the_signature_fails_verification() {
    let secret = key(4);
    let public = secret.public_key();
    let sig = secret.sign(b"payload");
    for bit in 0..64 * 8 {
        let mut bytes = sig.to_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let tampered = Signature::from_parts(sig.key_id(), bytes);
        let err = public.verify(b"payload", &tampered).unwrap_err();
        assert!(
            matches!(err, Error::BadSignature { .. }),
            "bit {bit}: {err:?}"
        );
    }
}

/// A signature whose R is the identity point (small order) with `s = k·a`: cofactorless
/// `verify` accepts it (`[s]B - [k]A = 0 = R`), `verify_strict` must not.
#[test]
fn signatures_with_a_small_order_r_are_rejected_as_verify_strict_does() {
    let seed = [5u8; 32];
    let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
    let a_enc = dalek.verifying_key().to_bytes();
    let msg = b"payload";
    let mut r_enc = [0u8; 32];
    r_enc[0] = 1;
    let mut hash = [0u8; 64];
    hash.copy_from_slice(&Sha512::digest([&r_enc[..], &a_enc, msg].concat()));
    let k = Scalar::from_bytes_mod_order_wide(&hash);
    let s = k * dalek.to_scalar();
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&r_enc);
    bytes[32..].copy_from_slice(&s.to_bytes());

    // Control: the lenient check accepts this signature, so the test can tell the two apart.
    let lenient = dalek
        .verifying_key()
        .verify(msg, &ed25519_dalek::Signature::from_bytes(&bytes));
    assert!(
        lenient.is_ok(),
        "the crafted signature should pass plain verify"
    );

    let secret = kojibox_signing::SecretKey::from_seed(&seed);
    let sig = Signature::from_parts(secret.key_id(), bytes);
    let err = secret.public_key().verify(msg, &sig).unwrap_err();
    assert!(matches!(err, Error::BadSignature { .. }), "{err:?}");
}
