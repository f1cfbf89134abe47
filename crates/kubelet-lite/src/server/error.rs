//! Errors: [`ServerError`] for starting the server, [`ApiError`] for one request (a status
//! code and a message, written as the body of the answer).

use std::path::PathBuf;

use http::StatusCode;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A certificate, key or CA file could not be read or parsed.
    #[error("reading {path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// The self-signed serving certificate could not be made.
    #[error("generating the self-signed serving certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    /// rustls refused the certificates or the settings.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client CA file holds no usable certificate.
    #[error("client CA: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
    /// The configuration asks for a webhook (TokenReview or SubjectAccessReview) but no
    /// API client was given.
    #[error("{0} needs a Kubernetes API client")]
    NoApiClient(&'static str),
    /// A certificate the node presents is X.509 v1.
    #[error(transparent)]
    X509V1(#[from] X509V1Certificate),
    /// Binding or accepting on the listening socket failed.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// What a certificate is for: what its reissue needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateRole {
    /// The kubelet API's serving certificate (`--tls-cert-file`).
    Serving,
    /// A client certificate (the kubeconfig's `client-certificate`).
    Client,
}

impl CertificateRole {
    /// The `-extfile` lines a reissued certificate of this role wants.
    fn extensions(self) -> &'static str {
        match self {
            CertificateRole::Serving => "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:NODE,IP:NODE_IP",
            CertificateRole::Client => "extendedKeyUsage=clientAuth",
        }
    }
}

impl std::fmt::Display for CertificateRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertificateRole::Serving => "serving",
            CertificateRole::Client => "client",
        })
    }
}

/// A certificate kubelet-lite would present is X.509 v1, which rustls (like every
/// webpki-based TLS stack) refuses; the message says how to reissue it as v3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: the {role} certificate {subject:?} is X.509 v1, which the TLS library refuses \
     (UnsupportedCertVersion); reissue it as X.509 v3, e.g. `openssl x509 -req -in CSR -CA CA.crt \
     -CAkey CA.key -CAcreateserial -days 365 -extfile <(printf '{}') -out NEW.crt` \
     (openssl makes v3 whenever -extfile adds an extension)",
    role.extensions()
)]
pub struct X509V1Certificate {
    /// The file holding it (a PEM file or a kubeconfig).
    pub path: PathBuf,
    /// Its subject.
    pub subject: String,
    /// What it is for.
    pub role: CertificateRole,
}

/// The failure of one request: the HTTP status and the message sent as its body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The status of the answer.
    pub status: StatusCode,
    /// The body of the answer.
    pub message: String,
}

impl ApiError {
    /// An answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The answer for a failed CRI call: the runtime's "not found" is 404, a request it
    /// refuses is 400, anything else 500.
    pub fn from_cri(what: &str, error: &cri_client::Error) -> ApiError {
        let status = match error {
            cri_client::Error::NotFound(_) => StatusCode::NOT_FOUND,
            cri_client::Error::InvalidArgument(_) | cri_client::Error::FailedPrecondition(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("{what}: {error}"))
    }
}
