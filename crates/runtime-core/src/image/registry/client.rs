//! HTTP clients, one per distinct TLS configuration (extra CAs, client certificate,
//! skip_verify), built on first use and shared by every endpoint with that configuration,
//! so connections are reused across pulls.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::{Certificate, Client, Identity};

use crate::image::hosts::{Endpoint, Scheme, TlsSettings};

/// How long connecting to a registry may take (containerd's dialer uses 30 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response may stay silent before the read fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed for one request (blob downloads redirect to storage).
pub const MAX_REDIRECTS: usize = 10;

/// A TLS configuration that cannot be turned into a client.
#[derive(Debug, thiserror::Error)]
#[error("tls configuration for {host}: {reason}")]
pub struct TlsError {
    /// The endpoint host.
    pub host: String,
    /// What went wrong (a file that cannot be read, a certificate that does not parse...).
    pub reason: String,
}

/// The cache of clients.
#[derive(Debug)]
pub struct HttpClients {
    user_agent: String,
    clients: Mutex<HashMap<TlsSettings, Client>>,
}

impl HttpClients {
    /// An empty cache whose clients send `user_agent`.
    pub fn new(user_agent: &str) -> Self {
        Self {
            user_agent: user_agent.to_string(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `endpoint`: plain http endpoints all share the default client.
    pub fn for_endpoint(&self, endpoint: &Endpoint) -> Result<Client, TlsError> {
        let key = match endpoint.scheme {
            Scheme::Http => TlsSettings::default(),
            Scheme::Https => endpoint.tls.clone(),
        };
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = build_client(&self.user_agent, &key).map_err(|reason| TlsError {
            host: endpoint.host.clone(),
            reason,
        })?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// How many distinct clients were built (for tests).
    pub fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no client was built yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn build_client(user_agent: &str, tls: &TlsSettings) -> Result<Client, String> {
    let mut builder = Client::builder()
        .user_agent(user_agent)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(Policy::limited(MAX_REDIRECTS));
    for path in &tls.ca {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let certs =
            Certificate::from_pem_bundle(&pem).map_err(|e| format!("invalid CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("no certificate in CA file {}", path.display()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    // A client presents one certificate; like Go's TLS client with a single configured pair,
    // the first pair is used.
    if let Some((cert, key)) = tls.client.first() {
        if tls.client.len() > 1 {
            tracing::warn!(
                count = tls.client.len(),
                "several client certificates configured; using the first"
            );
        }
        let mut pem =
            std::fs::read(cert).map_err(|e| format!("cannot read client certificate {}: {e}", cert.display()))?;
        if let Some(key) = key {
            pem.push(b'\n');
            pem.extend(std::fs::read(key).map_err(|e| format!("cannot read client key {}: {e}", key.display()))?);
        }
        let identity =
            Identity::from_pem(&pem).map_err(|e| format!("invalid client certificate {}: {e}", cert.display()))?;
        builder = builder.identity(identity);
    }
    if tls.skips_verify() {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| format!("cannot build http client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::hosts::Endpoint;

    #[test]
    fn clients_are_shared_per_tls_configuration() {
        let clients = HttpClients::new("test");
        let plain = Endpoint::default_for("registry.k8s.io");
        let local = Endpoint::default_for("127.0.0.1:5000"); // http, skip_verify set
        let mut insecure = Endpoint::default_for("registry.example");
        insecure.tls.skip_verify = Some(true);
        let mut insecure2 = Endpoint::default_for("other.example");
        insecure2.tls.skip_verify = Some(true);

        clients.for_endpoint(&plain).expect("plain");
        clients.for_endpoint(&local).expect("local");
        assert_eq!(clients.len(), 1, "http endpoints share the default client");
        clients.for_endpoint(&insecure).expect("insecure");
        clients.for_endpoint(&insecure2).expect("insecure2");
        assert_eq!(clients.len(), 2, "equal TLS settings share a client");
    }

    #[test]
    fn unreadable_or_invalid_tls_files_are_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let garbage = tmp.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("write");
        let cases = [
            (
                "missing CA file",
                TlsSettings {
                    ca: vec![tmp.path().join("missing.pem")],
                    ..Default::default()
                },
                "cannot read CA file",
            ),
            (
                "CA file without certificates",
                TlsSettings {
                    ca: vec![garbage.clone()],
                    ..Default::default()
                },
                "no certificate",
            ),
            (
                "missing client cert",
                TlsSettings {
                    client: vec![(tmp.path().join("c.pem"), None)],
                    ..Default::default()
                },
                "cannot read client certificate",
            ),
            (
                "invalid client cert",
                TlsSettings {
                    client: vec![(garbage.clone(), None)],
                    ..Default::default()
                },
                "invalid client certificate",
            ),
        ];
        for (desc, tls, want) in cases {
            let mut endpoint = Endpoint::default_for("registry.example");
            endpoint.tls = tls;
            let err = HttpClients::new("test").for_endpoint(&endpoint).expect_err(desc);
            let msg = err.to_string();
            assert!(msg.contains(want) && msg.contains("registry.example"), "{desc}: {msg}");
        }
    }
}
