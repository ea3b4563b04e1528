//! PKCS#8 PEM signing keys in a directory: load, generate, publish as JWKS
//! (RFC 7517), `kid` = RFC 7638 thumbprint. The newest key signs; all are published.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::json;

/// A JWS signing algorithm keygate can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys generated).
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl Alg {
    /// The JWA name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
    /// Parses the JWA name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RS256" => Self::RS256,
            "ES256" => Self::ES256,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }
    /// The jsonwebtoken algorithm used to verify.
    pub fn jwt_alg(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why keys could not be loaded or made; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a usable PKCS#8 key.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory holds no key.
    #[error("{0}: no signing key (*.pem) in this directory; run `keygate keys generate`")]
    Empty(PathBuf),
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One parsed private key, ready to sign.
pub struct SigningKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Algorithm.
    pub alg: Alg,
    /// Creation time (from the file name `<unix>-…pem`, else the file's mtime).
    pub created: i64,
    /// The file it came from.
    pub path: PathBuf,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub jwk: serde_json::Value,
    /// Base64url of the JWS header `{"alg","typ":"at+jwt","kid"}`, encoded once.
    pub(crate) header_b64: String,
    pub(crate) decoding: DecodingKey,
    signer: Signer,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 DER private key (RSA ≥ 2048 bits, P-256, or Ed25519).
    pub fn from_pkcs8(der: &[u8], path: PathBuf, created: i64) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let (signer, alg, public) = if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            let c: ring::rsa::PublicKeyComponents<Vec<u8>> = k.public().into();
            let public = BTreeMap::from([
                ("e", B64.encode(&c.e)),
                ("kty", "RSA".to_string()),
                ("n", B64.encode(&c.n)),
            ]);
            (Signer::Rsa(k), Alg::RS256, public)
        } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
        {
            let point = k.public_key().as_ref();
            let public = BTreeMap::from([
                ("crv", "P-256".to_string()),
                ("kty", "EC".to_string()),
                ("x", B64.encode(&point[1..33])),
                ("y", B64.encode(&point[33..65])),
            ]);
            (Signer::Ec(k), Alg::ES256, public)
        } else if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let public = BTreeMap::from([
                ("crv", "Ed25519".to_string()),
                ("kty", "OKP".to_string()),
                ("x", B64.encode(k.public_key().as_ref())),
            ]);
            (Signer::Ed(k), Alg::EdDSA, public)
        } else {
            return Err(
                "not a supported PKCS#8 private key (RSA ≥ 2048 bits, EC P-256 or Ed25519)".into(),
            );
        };
        let kid = thumbprint(&public)?;
        let decoding = match &public["kty"][..] {
            "RSA" => DecodingKey::from_rsa_components(&public["n"], &public["e"]),
            "EC" => DecodingKey::from_ec_components(&public["x"], &public["y"]),
            _ => DecodingKey::from_ed_components(&public["x"]),
        }
        .map_err(|e| e.to_string())?;
        let mut jwk = serde_json::to_value(&public).map_err(|e| e.to_string())?;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg.as_str());
        jwk["use"] = json!("sig");
        let header = json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
        let header_b64 = B64.encode(serde_json::to_vec(&header).map_err(|e| e.to_string())?);
        Ok(Self {
            kid,
            alg,
            created,
            path,
            jwk,
            header_b64,
            decoding,
            signer,
            rng,
        })
    }

    /// Signs `message` (the JWS signing input) and returns the raw signature.
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        match &self.signer {
            Signer::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    message,
                    &mut sig,
                )?;
                Ok(sig)
            }
            Signer::Ec(k) => Ok(k.sign(&self.rng, message)?.as_ref().to_vec()),
            Signer::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required public members, sorted
/// by name (a `BTreeMap`), serialised without whitespace.
fn thumbprint<V: serde::Serialize>(public: &BTreeMap<&str, V>) -> Result<String, String> {
    let canonical = serde_json::to_vec(public).map_err(|e| e.to_string())?;
    Ok(B64.encode(ring::digest::digest(&ring::digest::SHA256, &canonical)))
}

/// All keys of the directory, newest first, and the JWKS document built once.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
    jwks: bytes::Bytes,
}

impl KeySet {
    /// Builds a set from parsed keys (any order); fails when empty.
    pub fn new(mut keys: Vec<SigningKey>, dir: &Path) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty(dir.to_path_buf()));
        }
        keys.sort_by(|a, b| (b.created, &b.path).cmp(&(a.created, &a.path)));
        keys.dedup_by(|a, b| a.kid == b.kid);
        let jwks = json!({"keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>()})
            .to_string()
            .into();
        Ok(Self {
            keys: keys.into_iter().map(Arc::new).collect(),
            jwks,
        })
    }

    /// Loads every `*.pem` file in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, KeyError> {
        let keys = read_dir_keys(dir)?;
        Self::new(keys, dir)
    }

    /// The key that signs new tokens (the newest).
    pub fn signer(&self) -> &Arc<SigningKey> {
        &self.keys[0]
    }

    /// Every published key, newest first.
    pub fn all(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The JWKS document (RFC 7517 §5).
    pub fn jwks_json(&self) -> &str {
        std::str::from_utf8(&self.jwks).unwrap_or_default()
    }

    /// The JWKS document as shareable bytes (no copy per request).
    pub fn jwks_bytes(&self) -> bytes::Bytes {
        self.jwks.clone()
    }
}

/// The live key set, replaced atomically when the directory is re-read.
#[derive(Debug)]
pub struct Keys {
    dir: PathBuf,
    current: RwLock<Arc<KeySet>>,
}

impl Keys {
    /// Wraps a loaded set.
    pub fn new(dir: PathBuf, set: KeySet) -> Self {
        Self {
            dir,
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// The current set (cheap: one `Arc` clone).
    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the directory; on error the current set stays in force.
    /// Returns whether the set of kids changed.
    pub fn reload(&self) -> Result<bool, KeyError> {
        let fresh = KeySet::load_dir(&self.dir)?;
        let old = self.current();
        let changed =
            old.jwks_json() != fresh.jwks_json() || old.signer().kid != fresh.signer().kid;
        if changed {
            match self.current.write() {
                Ok(mut g) => *g = Arc::new(fresh),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(fresh),
            }
        }
        Ok(changed)
    }
}

fn read_dir_keys(dir: &Path) -> Result<Vec<SigningKey>, KeyError> {
    let io = |source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut keys = vec![];
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        keys.push(load_file(&path)?);
    }
    Ok(keys)
}

/// Loads one PEM file.
pub fn load_file(path: &Path) -> Result<SigningKey, KeyError> {
    let invalid = |reason: String| KeyError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let block = pem::parse(&text).map_err(|e| invalid(format!("not a PEM file: {e}")))?;
    if block.tag() != "PRIVATE KEY" {
        return Err(invalid(format!(
            "PEM block is `{}`; expected an unencrypted PKCS#8 `PRIVATE KEY` (convert with `openssl pkcs8 -topk8 -nocrypt`)",
            block.tag()
        )));
    }
    let created = created_time(path);
    SigningKey::from_pkcs8(block.contents(), path.to_path_buf(), created).map_err(invalid)
}

fn created_time(path: &Path) -> i64 {
    let from_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').next())
        .and_then(|p| p.parse::<i64>().ok());
    from_name.unwrap_or_else(|| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// Generates a new private key for `alg` as PKCS#8 DER.
pub fn generate_pkcs8(alg: Alg) -> Result<Vec<u8>, String> {
    let rng = SystemRandom::new();
    match alg {
        Alg::RS256 => {
            use rsa::pkcs8::EncodePrivateKey;
            let mut os = rsa::rand_core::OsRng;
            let key = rsa::RsaPrivateKey::new(&mut os, 2048).map_err(|e| e.to_string())?;
            Ok(key
                .to_pkcs8_der()
                .map_err(|e| e.to_string())?
                .as_bytes()
                .to_vec())
        }
        Alg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| "ECDSA key generation failed".into()),
        Alg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| "Ed25519 key generation failed".into()),
    }
}

/// Generates a key for `alg` and writes it to `dir` as `<now>-<alg>-<kid prefix>.pem`
/// with mode 0600. Returns the parsed key.
pub fn generate_into(dir: &Path, alg: Alg, now: i64) -> Result<SigningKey, KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let der = generate_pkcs8(alg).map_err(|reason| KeyError::Invalid {
        path: dir.to_path_buf(),
        reason,
    })?;
    let probe =
        SigningKey::from_pkcs8(&der, PathBuf::new(), now).map_err(|reason| KeyError::Invalid {
            path: dir.to_path_buf(),
            reason,
        })?;
    let name = format!(
        "{now}-{}-{}.pem",
        alg.as_str().to_lowercase(),
        &probe.kid[..8]
    );
    let path = dir.join(name);
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path).map_err(io(&path))?;
    f.write_all(pem.as_bytes()).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    load_file(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_and_publish_each_alg() {
        let dir = tempfile::tempdir().unwrap();
        for (i, alg) in [Alg::ES256, Alg::EdDSA, Alg::RS256].into_iter().enumerate() {
            let k = generate_into(dir.path(), alg, 1000 + i as i64).unwrap();
            assert_eq!(k.alg, alg);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&k.path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
        let set = KeySet::load_dir(dir.path()).unwrap();
        assert_eq!(set.all().len(), 3);
        assert_eq!(set.signer().alg, Alg::RS256, "the newest key signs");
        let jwks: serde_json::Value = serde_json::from_str(set.jwks_json()).unwrap();
        for k in jwks["keys"].as_array().unwrap() {
            assert_eq!(k["use"], "sig");
            assert!(k["kid"].is_string() && k["alg"].is_string() && k["kty"].is_string());
            assert!(k.get("d").is_none(), "no private material");
        }
    }

    #[test]
    fn rfc7638_thumbprint_vector() {
        // RFC 7638 §3.1 example key.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let public = BTreeMap::from([("e", "AQAB"), ("kty", "RSA"), ("n", n)]);
        assert_eq!(
            thumbprint(&public).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pem");
        std::fs::write(&p, "hello").unwrap();
        let e = KeySet::load_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("x.pem"), "{e}");
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(
            KeySet::load_dir(dir.path()),
            Err(KeyError::Empty(_))
        ));
    }
}
