//! The command-line flags of authentication ([`holdfast_server::auth`]).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use holdfast_server::auth::Verifier;

#[derive(Args, Debug)]
#[command(next_help_heading = "Access control (without one of these the server runs OPEN)")]
pub struct AuthArgs {
    /// Require a JWT signed with HS256 and the secret in this file (on the
    /// WebSocket URL as `?token=`, or as `peerMetadata.token` in `join`).
    /// Claims: sub, exp, read and write (document ids or "*"), create.
    #[arg(long, value_name = "FILE", conflicts_with = "auth_jwks")]
    auth_secret_file: Option<PathBuf>,
    /// Require a JWT signed with one of the public keys of this JWKS file
    /// (RS256/384/512, PS256/384/512, ES256/384, EdDSA; chosen by `kid`).
    #[arg(long, value_name = "FILE")]
    auth_jwks: Option<PathBuf>,
}

impl AuthArgs {
    pub fn verifier(&self) -> Result<Option<Arc<Verifier>>, String> {
        let v = match (&self.auth_secret_file, &self.auth_jwks) {
            (Some(f), _) => Verifier::from_secret_file(f),
            (None, Some(f)) => Verifier::from_jwks_file(f),
            (None, None) => return Ok(None),
        };
        v.map(|v| Some(Arc::new(v)))
            .map_err(|e| format!("cannot read the authentication keys: {e}"))
    }
}
