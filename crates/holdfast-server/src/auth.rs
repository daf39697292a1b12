//! Authentication: JSON Web Tokens (the `jsonwebtoken` crate) signed with
//! an HS256 secret (`--auth-secret-file`) or a public key of a JWKS file
//! (`--auth-jwks`: RS256/384/512, PS256/384/512, ES256/384, EdDSA), turned
//! into the core's per-connection [`Access`] (the core knows no tokens; it
//! enforces what it is given, see `holdfast_core::repo::Access`).
//!
//! Where the token comes from:
//! - `?token=` on the WebSocket URL (browsers cannot set headers on a
//!   WebSocket): verified before the upgrade; a bad one gets HTTP 401 with a
//!   short reason and no socket is held ([`at_upgrade`]).
//! - otherwise `peerMetadata.token` in the `join` message: verified when the
//!   `join` arrives, before the core sees it; a missing or bad one gets an
//!   `error` message and the connection is closed ([`AtJoin`]).
//!
//! Claims: `sub` (the subject; owns the documents it creates), `exp`
//! (required; the connection is told and closed when it passes), `read` and
//! `write` (arrays of document ids, bare or `automerge:` URLs, or `"*"`;
//! absent: none), `create` (boolean; absent: false). `nbf` is checked if
//! present; `aud` and `iss` are not. No leeway: the server's clock decides.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use holdfast_core::id::DocumentId;
use holdfast_core::repo::{Access, ConnId, Grant, Repo, Timestamp};
use holdfast_core::wire::{self, DecodeLimits, Message};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Checks tokens against the configured key(s).
pub struct Verifier {
    keys: Vec<Key>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<String> = self.keys.iter().map(|k| format!("{:?}", k.alg)).collect();
        write!(f, "Verifier({})", algs.join(", "))
    }
}

/// Why a token was refused (the text goes to the client).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: pass ?token=<JWT> on the URL or peerMetadata.token in join")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("invalid token signature")]
    BadSignature,
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl Verifier {
    /// HS256 with the secret in `path` (surrounding whitespace, such as a
    /// trailing newline, is not part of it).
    pub fn from_secret_file(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let secret = bytes.trim_ascii();
        if secret.is_empty() {
            return Err(format!("{}: the secret is empty", path.display()));
        }
        if secret.len() < 32 {
            tracing::warn!(
                len = secret.len(),
                "the HS256 secret is shorter than 32 bytes: easy to guess"
            );
        }
        Ok(Self::from_secret(secret))
    }

    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            keys: vec![Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret).expect("a non-empty secret"),
            }],
        }
    }

    /// The public keys of a JWKS file (`{"keys": [...]}`). A key without
    /// `alg` is used with its type's usual algorithm (RSA: RS256, EC P-256:
    /// ES256, P-384: ES384, Ed25519: EdDSA). Symmetric (`oct`) keys are
    /// refused: use `--auth-secret-file`.
    pub fn from_jwks_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_jwks(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_jwks(json: &str) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let kid = jwk.common.key_id.clone();
            let name = kid.clone().unwrap_or_else(|| format!("#{i}"));
            let usual = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => return Err(format!("key {name}: unsupported curve")),
                },
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                    Algorithm::EdDSA
                }
                AlgorithmParameters::OctetKey(_) => {
                    return Err(format!(
                        "key {name}: a symmetric key; pass the secret with --auth-secret-file"
                    ))
                }
                _ => return Err(format!("key {name}: unsupported key type")),
            };
            let alg = match jwk.common.key_algorithm {
                Some(a) => a
                    .to_string()
                    .parse::<Algorithm>()
                    .map_err(|e| format!("key {name}: {e}"))?,
                None => usual,
            };
            if alg.family() != usual.family() {
                return Err(format!("key {name}: alg {alg:?} does not fit its key type"));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {name}: {e}"))?;
            keys.push(Key { kid, alg, key });
        }
        if keys.is_empty() {
            return Err("no keys".into());
        }
        Ok(Self { keys })
    }

    /// Verify `token`: its signature, `exp` (required) and `nbf`.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::Invalid(format!(
                "no key for alg {:?}{}",
                header.alg,
                header
                    .kid
                    .as_deref()
                    .map(|k| format!(" and kid {k:?}"))
                    .unwrap_or_default()
            )));
        }
        let mut last = AuthError::BadSignature;
        for k in candidates {
            let mut v = Validation::new(k.alg);
            v.leeway = 0;
            v.validate_nbf = true;
            v.validate_aud = false;
            match jsonwebtoken::decode::<Raw>(token, &k.key, &v) {
                Ok(data) => return data.claims.into_claims(),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::InvalidSignature => AuthError::BadSignature,
                        K::ExpiredSignature => return Err(AuthError::Expired),
                        K::ImmatureSignature => return Err(AuthError::NotYetValid),
                        _ => return Err(AuthError::Invalid(e.to_string())),
                    };
                }
            }
        }
        Err(last)
    }
}

/// What a verified token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub subject: Option<String>,
    pub read: Grant,
    pub write: Grant,
    pub create: bool,
    /// `exp`, in seconds since the Unix epoch.
    pub exp: u64,
}

impl Claims {
    /// The core's [`Access`], its expiry on the driver's clock (`now` is the
    /// driver's present time).
    pub fn access(&self, now: Timestamp) -> Access {
        let left = (self.exp.saturating_mul(1000)).saturating_sub(unix_ms());
        Access {
            subject: self.subject.clone(),
            read: self.read.clone(),
            write: self.write.clone(),
            create: self.create,
            expires: Some(now.plus_ms(left)),
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The claims as they come in the token.
#[derive(Deserialize)]
struct Raw {
    sub: Option<String>,
    exp: u64,
    #[serde(default)]
    read: Option<RawGrant>,
    #[serde(default)]
    write: Option<RawGrant>,
    #[serde(default)]
    create: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawGrant {
    All(String),
    Docs(Vec<String>),
}

impl Raw {
    fn into_claims(self) -> Result<Claims, AuthError> {
        Ok(Claims {
            subject: self.sub.filter(|s| !s.is_empty()),
            read: grant(self.read, "read")?,
            write: grant(self.write, "write")?,
            create: self.create.unwrap_or(false),
            exp: self.exp,
        })
    }
}

fn grant(g: Option<RawGrant>, claim: &str) -> Result<Grant, AuthError> {
    match g {
        None => Ok(Grant::none()),
        Some(RawGrant::All(s)) if s == "*" => Ok(Grant::All),
        Some(RawGrant::All(s)) => Err(AuthError::Invalid(format!(
            "claim {claim}: {s:?} is neither \"*\" nor a list of document ids"
        ))),
        Some(RawGrant::Docs(ids)) => {
            let mut set = BTreeSet::new();
            for id in ids {
                let bare = id.strip_prefix("automerge:").unwrap_or(&id);
                let doc = bare.parse::<DocumentId>().map_err(|e| {
                    AuthError::Invalid(format!("claim {claim}: bad document id {id:?}: {e}"))
                })?;
                set.insert(doc);
            }
            Ok(Grant::Docs(set))
        }
    }
}

/// How a connection is authenticated, decided at the upgrade.
#[derive(Clone, Debug)]
pub enum ConnAuth {
    /// The server runs open: the repo's default access (everything).
    Open,
    /// The URL's token, verified.
    Verified(Claims),
    /// No token on the URL: `join` must carry one.
    AtJoin(Arc<Verifier>),
}

impl ConnAuth {
    /// Start `conn` (just connected to `repo`) with what it may do.
    pub fn start(self, repo: &mut Repo, now: Timestamp, conn: ConnId, at_join: &mut AtJoin) {
        match self {
            ConnAuth::Open => {}
            ConnAuth::Verified(c) => repo.set_access(now, conn, c.access(now)),
            ConnAuth::AtJoin(v) => {
                at_join.waiting.insert(conn, v);
            }
        }
    }
}

/// The token in a request's query (`?token=`, percent-decoded).
pub fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(percent_decode)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decide at the upgrade: `Err` is the 401 reason (no socket is opened).
pub fn at_upgrade(
    verifier: Option<&Arc<Verifier>>,
    query: Option<&str>,
) -> Result<ConnAuth, AuthError> {
    let Some(v) = verifier else {
        return Ok(ConnAuth::Open);
    };
    match query_token(query) {
        Some(token) => v.verify(&token).map(ConnAuth::Verified),
        None => Ok(ConnAuth::AtJoin(v.clone())),
    }
}

/// Connections waiting for a `join` that carries their token.
#[derive(Default)]
pub struct AtJoin {
    waiting: HashMap<ConnId, Arc<Verifier>>,
}

impl AtJoin {
    /// A frame arrived on `conn`: if it waits for its token, the frame must
    /// be a `join` carrying a valid one (its access is set before the repo
    /// sees the frame). `Err`: the `error` frame to send before closing.
    pub fn check(
        &mut self,
        repo: &mut Repo,
        now: Timestamp,
        conn: ConnId,
        frame: &[u8],
    ) -> Result<(), Vec<u8>> {
        let Some(v) = self.waiting.remove(&conn) else {
            return Ok(());
        };
        let token = match wire::decode(frame, &DecodeLimits::default()) {
            Ok(Message::Join { peer_metadata, .. }) => peer_metadata.token,
            // Anything else is the core's to refuse (the connection has no
            // access yet, and a message before `join` closes it).
            _ => return Ok(()),
        };
        let claims = token
            .ok_or(AuthError::Missing)
            .and_then(|t| v.verify(&t))
            .map_err(|e| {
                tracing::info!(conn = conn.0, error = %e, "join refused");
                wire::encode(&Message::Error {
                    message: e.to_string(),
                })
            })?;
        repo.set_access(now, conn, claims.access(now));
        Ok(())
    }

    /// `conn` closed (perhaps before its `join`).
    pub fn forget(&mut self, conn: ConnId) {
        self.waiting.remove(&conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_found_and_decoded() {
        assert_eq!(
            query_token(Some("a=1&token=x.y%2Dz&b")),
            Some("x.y-z".into())
        );
        assert_eq!(query_token(Some("token=")), Some(String::new()));
        assert_eq!(query_token(Some("tokens=1")), None);
        assert_eq!(query_token(None), None);
    }

    #[test]
    fn grants_parse_ids_urls_and_star() {
        let id = DocumentId([7; 16]);
        let g = grant(
            Some(RawGrant::Docs(vec![
                id.to_string(),
                format!("automerge:{id}"),
            ])),
            "read",
        )
        .unwrap();
        assert_eq!(g, Grant::Docs([id].into_iter().collect()));
        assert_eq!(
            grant(Some(RawGrant::All("*".into())), "read").unwrap(),
            Grant::All
        );
        assert!(grant(Some(RawGrant::All("all".into())), "read").is_err());
        assert!(grant(Some(RawGrant::Docs(vec!["nope".into()])), "write").is_err());
        assert_eq!(grant(None, "write").unwrap(), Grant::none());
    }

    #[test]
    fn a_jwks_with_a_symmetric_key_is_refused() {
        let e = Verifier::from_jwks(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap_err();
        assert!(e.contains("symmetric"), "{e}");
        assert!(Verifier::from_jwks(r#"{"keys":[]}"#).is_err());
    }
}
