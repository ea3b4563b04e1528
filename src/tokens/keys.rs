//! PKCS#8 PEM signing keys in a directory: load, generate, publish as JWKS
//! (RFC 7517), `kid` = RFC 7638 thumbprint. Every key is published; which one
//! signs follows the rotation schedule below, evaluated at signing time.
//!
//! Rotation without downtime. Keys are ordered by creation time (the
//! `<unix>-…pem` file name, else the mtime). A key other than the oldest
//! *activates* `activation_delay` seconds after its creation, so verifiers that
//! cache the JWKS have fetched it before the first token it signs. The oldest
//! key is active from its creation, so a first key (or the only one) signs at
//! once. At time `now` the signer is the newest key that has activated (the
//! oldest when none has):
//!
//! - *pending*: newer than the signer; published, signs nothing yet;
//! - *active*: the signer;
//! - *retired*: older than the signer, since the activation of the next newer
//!   key (`retired_at`); still published, because tokens it signed are live;
//! - *prunable*: retired for `retention` seconds (access-token lifetime plus a
//!   margin), so every token it signed has expired: `keygate keys prune`
//!   deletes the file.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
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
    /// The file's mtime: orders keys created in the same second (the later
    /// write is the newer key).
    modified: Option<std::time::SystemTime>,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub jwk: serde_json::Value,
    /// Base64url of the JWS header `{"alg","typ":"at+jwt","kid"}`, encoded once.
    pub(crate) header_b64: String,
    /// Base64url of the ID token header `{"alg","typ":"JWT","kid"}`, encoded once.
    pub(crate) id_header_b64: String,
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
            let c: aws_lc_rs::signature::RsaPublicKeyComponents<Vec<u8>> = k.public_key().into();
            let public = BTreeMap::from([
                ("e", B64.encode(&c.e)),
                ("kty", "RSA".to_string()),
                ("n", B64.encode(&c.n)),
            ]);
            (Signer::Rsa(k), Alg::RS256, public)
        } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
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
        let id_header = json!({"alg": alg.as_str(), "typ": "JWT", "kid": kid});
        let id_header_b64 = B64.encode(serde_json::to_vec(&id_header).map_err(|e| e.to_string())?);
        Ok(Self {
            kid,
            alg,
            created,
            path,
            modified: None,
            jwk,
            header_b64,
            id_header_b64,
            decoding,
            signer,
            rng,
        })
    }

    /// Signs `message` (the JWS signing input) and returns the raw signature.
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        match &self.signer {
            Signer::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
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

/// The rotation schedule (see the module docs), from `keys.activation_delay_secs`,
/// `tokens.access_ttl` and `keys.jwks_max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Seconds between a key's creation and its first signature (the oldest
    /// key excepted: it signs from its creation).
    pub activation_delay: i64,
    /// Seconds a retired key stays published: the access-token lifetime plus
    /// a margin for clock skew and late reloads.
    pub retention: i64,
}

impl Rotation {
    /// A new key signs as soon as it is loaded and a retired key is prunable at
    /// once: the behaviour before rotation was scheduled (tests and tools).
    pub const IMMEDIATE: Rotation = Rotation {
        activation_delay: 0,
        retention: 0,
    };
}

/// Where a key is in its life (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    /// Signing new tokens.
    Active,
    /// Published for the tokens it signed, which may still be live.
    Retired,
    /// Every token it signed has expired: may be deleted.
    Prunable,
}

impl KeyState {
    /// Lower-case name, as printed by `keygate keys list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Prunable => "prunable",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key's state at a given time, with the times that drive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStatus {
    /// The state at the time asked about.
    pub state: KeyState,
    /// When the key starts (or started) signing: `created + activation_delay`,
    /// or `created` for the oldest key.
    pub activates_at: i64,
    /// When the next newer key activates and this one stops signing; `None`
    /// for the newest key.
    pub retired_at: Option<i64>,
    /// `retired_at + retention`: from then on no token it signed is live.
    pub prunable_at: Option<i64>,
}

/// All keys of the directory, newest first, and the JWKS document built once.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
    /// `activates[i]` is when `keys[i]` starts signing; non-increasing, because
    /// keys are sorted by creation time and the delay is the same for all.
    activates: Vec<i64>,
    rotation: Rotation,
    jwks: bytes::Bytes,
}

impl KeySet {
    /// Builds a set from parsed keys (any order); fails when empty.
    pub fn new(
        mut keys: Vec<SigningKey>,
        dir: &Path,
        rotation: Rotation,
    ) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty(dir.to_path_buf()));
        }
        keys.sort_by(|a, b| {
            (b.created, b.modified, &b.path).cmp(&(a.created, a.modified, &a.path))
        });
        keys.dedup_by(|a, b| a.kid == b.kid);
        let jwks = json!({"keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>()})
            .to_string()
            .into();
        let oldest = keys.len() - 1;
        let activates = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if i == oldest {
                    k.created
                } else {
                    k.created.saturating_add(rotation.activation_delay)
                }
            })
            .collect();
        Ok(Self {
            keys: keys.into_iter().map(Arc::new).collect(),
            activates,
            rotation,
            jwks,
        })
    }

    /// Loads every `*.pem` file in `dir`.
    pub fn load_dir(dir: &Path, rotation: Rotation) -> Result<Self, KeyError> {
        let keys = read_dir_keys(dir)?;
        Self::new(keys, dir, rotation)
    }

    /// Index in `keys` of the signer at `now`: the newest key that has
    /// activated, else the oldest. No allocation: it runs for every token.
    fn signer_index(&self, now: i64) -> usize {
        self.activates
            .iter()
            .position(|&at| at <= now)
            .unwrap_or(self.keys.len() - 1)
    }

    /// The key that signs tokens issued at `now`.
    pub fn signer_at(&self, now: i64) -> &Arc<SigningKey> {
        &self.keys[self.signer_index(now)]
    }

    /// The key that signs an ID token of `alg` issued at `now` (a client's
    /// `id_token_signed_response_alg`): the newest active key of that alg,
    /// else the newest published one; `None` when no key has it.
    pub fn signer_for_alg(&self, alg: &str, now: i64) -> Option<&Arc<SigningKey>> {
        let of_alg = |&(i, k): &(usize, &Arc<SigningKey>)| {
            let _ = i;
            k.alg.as_str() == alg
        };
        self.keys
            .iter()
            .enumerate()
            .filter(of_alg)
            .find(|&(i, _)| self.activates[i] <= now)
            .or_else(|| self.keys.iter().enumerate().find(of_alg))
            .map(|(_, k)| k)
    }

    /// The state of every key at `now`, newest first (the order of [`KeySet::all`]).
    pub fn status_at(&self, now: i64) -> Vec<(&Arc<SigningKey>, KeyStatus)> {
        let signer = self.signer_index(now);
        self.keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let retired_at = i.checked_sub(1).map(|newer| self.activates[newer]);
                let prunable_at = retired_at.map(|t| t.saturating_add(self.rotation.retention));
                let state = match i.cmp(&signer) {
                    std::cmp::Ordering::Less => KeyState::Pending,
                    std::cmp::Ordering::Equal => KeyState::Active,
                    std::cmp::Ordering::Greater if prunable_at.is_some_and(|t| t <= now) => {
                        KeyState::Prunable
                    }
                    std::cmp::Ordering::Greater => KeyState::Retired,
                };
                let status = KeyStatus {
                    state,
                    activates_at: self.activates[i],
                    retired_at,
                    prunable_at,
                };
                (key, status)
            })
            .collect()
    }

    /// The keys that may be deleted at `now`: retired for longer than the
    /// retention. Never the signer, a pending key or the only key.
    pub fn prunable(&self, now: i64) -> Vec<&Arc<SigningKey>> {
        self.status_at(now)
            .into_iter()
            .filter(|(_, s)| s.state == KeyState::Prunable)
            .map(|(k, _)| k)
            .collect()
    }

    /// The schedule this set follows.
    pub fn rotation(&self) -> Rotation {
        self.rotation
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
    /// Wraps a loaded set; reloads keep its [`Rotation`].
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
    /// Returns whether the keys or their schedule changed.
    pub fn reload(&self) -> Result<bool, KeyError> {
        let old = self.current();
        let fresh = KeySet::load_dir(&self.dir, old.rotation)?;
        let changed = old.jwks_json() != fresh.jwks_json() || old.activates != fresh.activates;
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
    let mut key =
        SigningKey::from_pkcs8(block.contents(), path.to_path_buf(), created).map_err(invalid)?;
    key.modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok(key)
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

/// Deletes the key files of `dir` that are prunable at `now` (all of them stay
/// when `dry_run`) and returns those keys, oldest first. The signer, pending
/// keys and the only key are never prunable. A file that vanished meanwhile
/// (another prune) counts as removed.
pub fn prune_dir(
    dir: &Path,
    rotation: Rotation,
    now: i64,
    dry_run: bool,
) -> Result<Vec<Arc<SigningKey>>, KeyError> {
    let set = KeySet::load_dir(dir, rotation)?;
    let mut doomed: Vec<Arc<SigningKey>> = set.prunable(now).into_iter().cloned().collect();
    doomed.reverse();
    if !dry_run {
        for key in &doomed {
            match std::fs::remove_file(&key.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(KeyError::Io {
                        path: key.path.clone(),
                        source,
                    })
                }
            }
        }
    }
    Ok(doomed)
}

/// Generates a new private key for `alg` as PKCS#8 DER.
pub fn generate_pkcs8(alg: Alg) -> Result<Vec<u8>, String> {
    let rng = SystemRandom::new();
    match alg {
        Alg::RS256 => {
            use aws_lc_rs::encoding::AsDer;
            let key = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| "RSA key generation failed".to_string())?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = key
                .as_der()
                .map_err(|_| "RSA key encoding failed".to_string())?;
            Ok(der.as_ref().to_vec())
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
        let set = KeySet::load_dir(dir.path(), Rotation::IMMEDIATE).unwrap();
        assert_eq!(set.all().len(), 3);
        assert_eq!(
            set.signer_at(1002).alg,
            Alg::RS256,
            "without a delay the newest key signs"
        );
        let jwks: serde_json::Value = serde_json::from_str(set.jwks_json()).unwrap();
        for k in jwks["keys"].as_array().unwrap() {
            assert_eq!(k["use"], "sig");
            assert!(k["kid"].is_string() && k["alg"].is_string() && k["kty"].is_string());
            assert!(k.get("d").is_none(), "no private material");
        }
    }

    const ROTATION: Rotation = Rotation {
        activation_delay: 600,
        retention: 900 + 300,
    };

    fn states(set: &KeySet, now: i64) -> Vec<KeyState> {
        set.status_at(now).iter().map(|(_, s)| s.state).collect()
    }

    #[test]
    fn the_first_key_signs_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate_into(dir.path(), Alg::ES256, 10_000).unwrap();
        let set = KeySet::load_dir(dir.path(), ROTATION).unwrap();
        // At its creation, and even when the clock reads earlier (skew).
        for now in [10_000, 9_000, 10_599, 99_999] {
            assert_eq!(set.signer_at(now).kid, first.kid, "now = {now}");
            assert_eq!(states(&set, now), [KeyState::Active]);
        }
        let (_, s) = set.status_at(10_000)[0];
        assert_eq!(s.activates_at, 10_000);
        assert_eq!(s.retired_at, None);
        assert_eq!(s.prunable_at, None);
        assert!(set.prunable(i64::MAX).is_empty(), "the only key stays");
    }

    #[test]
    fn a_second_key_is_published_first_and_signs_after_the_delay() {
        let dir = tempfile::tempdir().unwrap();
        let old = generate_into(dir.path(), Alg::ES256, 1_000).unwrap();
        let new = generate_into(dir.path(), Alg::EdDSA, 5_000).unwrap();
        let set = KeySet::load_dir(dir.path(), ROTATION).unwrap();
        assert!(set.jwks_json().contains(&new.kid) && set.jwks_json().contains(&old.kid));

        // Published, not signing: the old key keeps signing for 600 s.
        for now in [5_000, 5_599] {
            assert_eq!(set.signer_at(now).kid, old.kid, "now = {now}");
            assert_eq!(states(&set, now), [KeyState::Pending, KeyState::Active]);
        }
        let status = set.status_at(5_000);
        assert_eq!(status[0].1.activates_at, 5_600);
        assert_eq!(status[1].1.activates_at, 1_000);
        assert_eq!(status[1].1.retired_at, Some(5_600), "old key's last second");
        assert_eq!(status[1].1.prunable_at, Some(5_600 + 1_200));
        assert!(set.prunable(5_000).is_empty());

        // Activation: the new key signs; the old one is retired, still published.
        for now in [5_600, 6_799] {
            assert_eq!(set.signer_at(now).kid, new.kid, "now = {now}");
            assert_eq!(states(&set, now), [KeyState::Active, KeyState::Retired]);
            assert!(set.prunable(now).is_empty());
        }
        // Every token the old key signed (by 5 600, 900 s lifetime) has expired.
        assert_eq!(states(&set, 6_800), [KeyState::Active, KeyState::Prunable]);
        let prunable = set.prunable(6_800);
        assert_eq!(prunable.len(), 1);
        assert_eq!(prunable[0].kid, old.kid);
    }

    #[test]
    fn while_every_newer_key_is_pending_the_oldest_signs() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate_into(dir.path(), Alg::ES256, 1_000).unwrap();
        let b = generate_into(dir.path(), Alg::ES256, 1_100).unwrap();
        let c = generate_into(dir.path(), Alg::ES256, 1_200).unwrap();
        let set = KeySet::load_dir(dir.path(), ROTATION).unwrap();
        use KeyState::*;
        assert_eq!(set.signer_at(1_250).kid, a.kid);
        assert_eq!(states(&set, 1_250), [Pending, Pending, Active]);
        assert_eq!(set.signer_at(1_700).kid, b.kid);
        assert_eq!(states(&set, 1_700), [Pending, Active, Retired]);
        assert_eq!(set.signer_at(1_800).kid, c.kid);
        assert_eq!(states(&set, 1_800), [Active, Retired, Retired]);
        let status = set.status_at(1_800);
        assert_eq!(status[1].1.retired_at, Some(1_800), "b stops when c starts");
        assert_eq!(status[2].1.retired_at, Some(1_700), "a stops when b starts");
        assert_eq!(states(&set, 2_900), [Active, Retired, Prunable]);
        assert_eq!(states(&set, 3_000), [Active, Prunable, Prunable]);
        // A clock that is behind never makes a pending key sign.
        assert_eq!(set.signer_at(0).kid, a.kid);
    }

    #[test]
    fn of_two_keys_created_in_the_same_second_the_later_written_is_newer() {
        let dir = tempfile::tempdir().unwrap();
        // `rs256-…` sorts after `es256-…` by name; the write order must win.
        let first = generate_into(dir.path(), Alg::RS256, 7_000).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = generate_into(dir.path(), Alg::ES256, 7_000).unwrap();
        let set = KeySet::load_dir(dir.path(), ROTATION).unwrap();
        assert_eq!(set.signer_at(7_000).kid, first.kid);
        assert_eq!(set.signer_at(7_600).kid, second.kid);
    }

    #[test]
    fn the_signer_follows_the_clock_without_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let old = generate_into(dir.path(), Alg::ES256, 1_000).unwrap();
        let keys = Keys::new(
            dir.path().to_path_buf(),
            KeySet::load_dir(dir.path(), ROTATION).unwrap(),
        );
        let new = generate_into(dir.path(), Alg::ES256, 2_000).unwrap();
        assert!(keys.reload().unwrap(), "a new file changes the set");
        assert!(!keys.reload().unwrap(), "nothing changed");
        let set = keys.current();
        assert_eq!(set.rotation(), ROTATION, "reloads keep the schedule");
        assert_eq!(set.signer_at(2_599).kid, old.kid);
        assert_eq!(set.signer_at(2_600).kid, new.kid);
    }

    #[test]
    fn prune_deletes_only_prunable_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate_into(dir.path(), Alg::ES256, 1_000).unwrap();
        let b = generate_into(dir.path(), Alg::ES256, 2_000).unwrap();
        let c = generate_into(dir.path(), Alg::ES256, 3_500).unwrap();
        // At 3 900: b signs since 2 600, c is pending (until 4 100), and a,
        // retired at 2 600, is prunable since 3 800.
        let gone = prune_dir(dir.path(), ROTATION, 3_900, true).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].kid, a.kid);
        assert!(a.path.exists(), "--dry-run deletes nothing");
        assert!(prune_dir(dir.path(), ROTATION, 3_799, false)
            .unwrap()
            .is_empty());
        let gone = prune_dir(dir.path(), ROTATION, 3_900, false).unwrap();
        assert_eq!(gone.len(), 1);
        assert!(!a.path.exists());
        assert!(b.path.exists() && c.path.exists());
        // Even with no retention at all, the signer and a pending key stay.
        let d = generate_into(dir.path(), Alg::ES256, 9_000).unwrap();
        let gone = prune_dir(dir.path(), Rotation::IMMEDIATE, 8_000, false).unwrap();
        assert_eq!(gone.len(), 1, "only b, retired when c activated");
        assert_eq!(gone[0].kid, b.kid);
        assert!(c.path.exists(), "the signer stays");
        assert!(d.path.exists(), "the pending key stays");
        let gone = prune_dir(dir.path(), Rotation::IMMEDIATE, i64::MAX, false).unwrap();
        assert_eq!(gone.len(), 1, "c, once d signs");
        assert!(d.path.exists(), "the only key stays");
        assert!(prune_dir(dir.path(), Rotation::IMMEDIATE, i64::MAX, false)
            .unwrap()
            .is_empty());
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
        let e = KeySet::load_dir(dir.path(), ROTATION).unwrap_err();
        assert!(e.to_string().contains("x.pem"), "{e}");
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(
            KeySet::load_dir(dir.path(), ROTATION),
            Err(KeyError::Empty(_))
        ));
    }
}
