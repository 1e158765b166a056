//! Ed25519 signatures on manifests, so a point nobody with the signing key
//! made is refused even by someone who can write to the bucket and recompute
//! every sha256.
//!
//! The signature covers what a point *is* (its target, payload, consistency,
//! sizes, hashes, encryption, counts, labels, when and where it was taken),
//! not where its copies are: copying a point to another region keeps its
//! signature. Keys are PEM files as OpenSSL writes them (`openssl genpkey
//! -algorithm ed25519`, `openssl pkey -pubout`).

use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Manifest;

/// What a signed manifest carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    pub algorithm: String,
    /// Fingerprint of the public key (first 16 hex digits of its sha256).
    pub key: String,
    /// The signature, base64.
    pub value: String,
}

/// A key that signs new manifests.
pub struct ManifestSigner {
    key: SigningKey,
}

/// A public key trusted to have signed points.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub fingerprint: String,
    key: VerifyingKey,
}

/// What checking a manifest's signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    Unsigned,
    /// Signed by this trusted key, and the signature matches.
    Valid(String),
    /// Signed by a key that is not trusted.
    UnknownKey(String),
    /// Signed, but the signature does not match the manifest: it was changed
    /// after it was signed.
    Mismatch(String),
}

pub fn fingerprint(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Why a signing or verify key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {what} {path}: {reason}")]
    Unreadable {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error(
        "{origin} is not an ed25519 private key in PEM (PKCS#8) form ({reason}); make one with `openssl genpkey -algorithm ed25519 -out sign.pem`"
    )]
    NotPrivateKey { origin: String, reason: String },
    #[error(
        "verify key {path} is not an ed25519 public key in PEM form ({reason}); make it with `openssl pkey -in sign.pem -pubout -out verify.pem`"
    )]
    NotPublicKey { path: String, reason: String },
    #[error(
        "signing.key_env names {var}, which is not set: export it with the PEM text of the signing key"
    )]
    EnvNotSet { var: String },
}

fn read_key(what: &'static str, path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::Unreadable {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl ManifestSigner {
    /// Reads a PKCS#8 PEM private key; `origin` names where it came from.
    pub fn from_pem(pem: &str, origin: &str) -> Result<ManifestSigner, KeyError> {
        SigningKey::from_pkcs8_pem(pem.trim())
            .map(|key| ManifestSigner { key })
            .map_err(|e| KeyError::NotPrivateKey {
                origin: origin.to_string(),
                reason: e.to_string(),
            })
    }

    pub fn from_file(path: &Path) -> Result<ManifestSigner, KeyError> {
        let text = read_key("signing key", path)?;
        Self::from_pem(&text, &format!("signing key {}", path.display()))
    }

    pub fn trusted(&self) -> TrustedKey {
        let key = self.key.verifying_key();
        TrustedKey {
            fingerprint: fingerprint(&key),
            key,
        }
    }

    /// Signs any message: the key's fingerprint and the signature (base64).
    pub fn sign_bytes(&self, message: &[u8]) -> (String, String) {
        let sig = self.key.sign(message);
        (
            self.trusted().fingerprint,
            base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        )
    }

    /// Signs the manifest (before it is sealed).
    pub fn sign(&self, m: &mut Manifest) {
        let sig = self.key.sign(&m.signed_bytes());
        m.signature = Some(ManifestSignature {
            algorithm: "ed25519".into(),
            key: self.trusted().fingerprint,
            value: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        });
    }
}

impl TrustedKey {
    /// Whether `value` (base64) is this key's ed25519 signature of `message`.
    pub fn verify_bytes(&self, message: &[u8], value: &str) -> bool {
        base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .is_some_and(|b| {
                self.key
                    .verify_strict(message, &Signature::from_bytes(&b))
                    .is_ok()
            })
    }

    pub fn from_file(path: &Path) -> Result<TrustedKey, KeyError> {
        let text = read_key("verify key", path)?;
        let key =
            VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| KeyError::NotPublicKey {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(TrustedKey {
            fingerprint: fingerprint(&key),
            key,
        })
    }
}

/// Checks a manifest's signature against the trusted keys.
pub fn check(m: &Manifest, trusted: &[TrustedKey]) -> SignatureCheck {
    let Some(sig) = &m.signature else {
        return SignatureCheck::Unsigned;
    };
    let Some(key) = trusted.iter().find(|k| k.fingerprint == sig.key) else {
        return SignatureCheck::UnknownKey(sig.key.clone());
    };
    let matches = sig.algorithm == "ed25519" && key.verify_bytes(&m.signed_bytes(), &sig.value);
    if matches {
        SignatureCheck::Valid(sig.key.clone())
    } else {
        SignatureCheck::Mismatch(sig.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::manifest::tests::sample;

    // Made with `openssl genpkey -algorithm ed25519`; test keys only.
    const KEY_A: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEILCDNAB4b6COdDGt5nD4knZ00ltXXl0vWoqPe05era06\n-----END PRIVATE KEY-----\n";
    const KEY_B: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEICThMuow8ZTt//CEP3hl8e2cwaNp8L5QifnSL2vQ5JVm\n-----END PRIVATE KEY-----\n";

    #[test]
    fn signatures_survive_copies_and_catch_forgeries() -> Result<(), String> {
        let a = ManifestSigner::from_pem(KEY_A, "key a").map_err(|e| e.to_string())?;
        let b = ManifestSigner::from_pem(KEY_B, "key b").map_err(|e| e.to_string())?;
        let trusted = [a.trusted()];
        let mut m = sample();
        assert_eq!(check(&m, &trusted), SignatureCheck::Unsigned);
        a.sign(&mut m);
        let fp = a.trusted().fingerprint;
        assert_eq!(check(&m, &trusted), SignatureCheck::Valid(fp.clone()));
        // A copy in another region keeps the signature.
        let mut copy = m.clone();
        copy.region = "us-west-2".into();
        copy.copied_from = Some("us-east-1".into());
        copy.copied_to = vec!["eu-west-1".into()];
        assert_eq!(check(&copy, &trusted), SignatureCheck::Valid(fp.clone()));
        // New hashes for replaced data: the signature no longer matches.
        let mut forged = m.clone();
        forged.stored_sha256 = "00".repeat(32);
        assert_eq!(check(&forged, &trusted), SignatureCheck::Mismatch(fp));
        // Signed by a key nobody trusts.
        let mut other = sample();
        b.sign(&mut other);
        assert_eq!(
            check(&other, &trusted),
            SignatureCheck::UnknownKey(b.trusted().fingerprint)
        );
        // Sealing after signing round-trips through the manifest parser.
        let bytes = m.seal();
        let parsed = Manifest::parse("k", &bytes).map_err(|e| e.to_string())?;
        assert!(matches!(check(&parsed, &trusted), SignatureCheck::Valid(_)));
        Ok(())
    }

    #[test]
    fn a_bad_key_file_is_named() {
        let err = ManifestSigner::from_pem("not a key", "signing key /k.pem").err();
        assert!(
            matches!(&err, Some(KeyError::NotPrivateKey { origin, .. }) if origin == "signing key /k.pem"),
            "{err:?}"
        );
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("openssl genpkey"), "{text}");
        let missing = TrustedKey::from_file(Path::new("/nonexistent/verify.pem")).err();
        assert!(
            matches!(
                &missing,
                Some(KeyError::Unreadable {
                    what: "verify key",
                    ..
                })
            ),
            "{missing:?}"
        );
    }
}
