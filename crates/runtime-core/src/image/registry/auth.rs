//! Registry authentication: credentials from the CRI, `WWW-Authenticate` challenges, and the
//! bearer tokens obtained for them (Docker's token authentication specification,
//! `distribution/docs/spec/auth/token.md`, and its OAuth2 variant `oauth.md`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Deserialize;

use crate::image::digest::Digest;

/// The `client_id` sent with OAuth2 token requests.
pub const OAUTH_CLIENT_ID: &str = "runtime-core";
/// Tokens live at least this long when the server says less (or nothing), as in the
/// token specification.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A token is refreshed this long before it expires, so a request does not race its expiry.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);
/// The longest a token is cached, whatever lifetime the registry gave it.
const MAX_CACHED_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Credentials for a registry, as the kubelet passes them in a CRI `AuthConfig`.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// No credentials: only public content, with anonymous tokens where the registry wants
    /// them.
    #[default]
    Anonymous,
    /// User name and password, for Basic auth and for fetching bearer tokens.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (CRI `identity_token`), exchanged at the token endpoint
    /// for access tokens.
    IdentityToken(String),
    /// A bearer token (CRI `registry_token`) sent to the registry as is.
    RegistryToken(String),
}

impl fmt::Debug for Credentials {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::IdentityToken(_) => f.write_str("IdentityToken(..)"),
            Self::RegistryToken(_) => f.write_str("RegistryToken(..)"),
        }
    }
}

/// A CRI `AuthConfig` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// `auth` is not base64.
    #[error("auth is not valid base64")]
    AuthNotBase64,
    /// `auth` does not decode to `user:password`.
    #[error("auth does not decode to user:password")]
    AuthNoColon,
}

impl Credentials {
    /// Credentials from a CRI `AuthConfig`, taking the first set field in this order:
    /// `registry_token` (a bearer sent as is, as Docker does), `username`/`password`,
    /// `identity_token`, `auth` (base64 of `user:password`, as containerd's `ParseAuth`
    /// reads it). An empty config is anonymous. `server_address` is not checked here: the
    /// kubelet already chose the credentials for the image.
    pub fn from_cri(auth: &cri_api::v1::AuthConfig) -> Result<Self, CredentialsError> {
        if !auth.registry_token.is_empty() {
            return Ok(Self::RegistryToken(auth.registry_token.clone()));
        }
        if !auth.username.is_empty() {
            return Ok(Self::Basic {
                username: auth.username.clone(),
                password: auth.password.clone(),
            });
        }
        if !auth.identity_token.is_empty() {
            return Ok(Self::IdentityToken(auth.identity_token.clone()));
        }
        if !auth.auth.is_empty() {
            let encoded = auth.auth.trim();
            let decoded = STANDARD
                .decode(encoded)
                .or_else(|_| STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')))
                .map_err(|_| CredentialsError::AuthNotBase64)?;
            let decoded = String::from_utf8(decoded).map_err(|_| CredentialsError::AuthNotBase64)?;
            let (username, password) = decoded.split_once(':').ok_or(CredentialsError::AuthNoColon)?;
            return Ok(Self::Basic {
                username: username.to_string(),
                password: password.trim_matches('\0').to_string(),
            });
        }
        Ok(Self::Anonymous)
    }

    /// The `Authorization` value for Basic auth, if these are user/password credentials.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Self::Basic { username, password } => {
                Some(format!("Basic {}", STANDARD.encode(format!("{username}:{password}"))))
            }
            _ => None,
        }
    }

    /// A digest of the credentials, so caches can tell credentials apart without keeping
    /// them: a token fetched with one user's password is never handed to another pull.
    pub(crate) fn fingerprint(&self) -> Digest {
        let text = match self {
            Self::Anonymous => "anonymous".to_string(),
            Self::Basic { username, password } => format!("basic\0{username}\0{password}"),
            Self::IdentityToken(token) => format!("identity\0{token}"),
            Self::RegistryToken(token) => format!("registry\0{token}"),
        };
        Digest::of(text.as_bytes())
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth scheme, lower-cased: `basic`, `bearer`...
    pub scheme: String,
    /// The parameters, names lower-cased, values unquoted, in header order.
    pub params: Vec<(String, String)>,
    /// A token68 credential instead of parameters (`Negotiate abc==`), rare.
    pub token68: Option<String>,
}

impl Challenge {
    /// The first value of parameter `name` (lower-case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// All values of parameter `name` (lower-case); `scope` may repeat.
    pub fn params_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `WWW-Authenticate` header values (RFC 9110 section 11.6.1): one or more
/// challenges separated by commas, each a scheme followed by `name=value` parameters
/// (values quoted or not; quoted values may hold commas and `\"` escapes) or by a token68.
/// Unparseable trailing input is ignored: what was understood is returned.
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let mut parser = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut challenges = Vec::new();
    loop {
        parser.skip_ws_and_commas();
        let Some(scheme) = parser.token() else { break };
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
            token68: None,
        };
        parser.skip_ws();
        // Parameters until the next challenge begins or the input ends.
        loop {
            let start = parser.i;
            parser.skip_ws_and_commas();
            let Some(name) = parser.token() else {
                parser.i = start;
                break;
            };
            parser.skip_ws();
            if parser.peek() == Some(b'=') && parser.peek_at(1) != Some(b'=') {
                parser.i += 1;
                parser.skip_ws();
                let value = parser.value();
                challenge.params.push((name.to_ascii_lowercase(), value));
                continue;
            }
            // Not `name=value`: a token68 right after the scheme, or the next scheme.
            if challenge.params.is_empty() && challenge.token68.is_none() && !parser.at_comma_before(start) {
                let mut token68 = name.to_string();
                while parser.peek() == Some(b'=') {
                    token68.push('=');
                    parser.i += 1;
                }
                challenge.token68 = Some(token68);
                continue;
            }
            parser.i = start;
            break;
        }
        challenges.push(challenge);
    }
    challenges
}

/// A cursor over header bytes.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.s.get(self.i + offset).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// Whether a comma lies between `start` and the current token (so a bare token there
    /// starts a new challenge rather than being a token68).
    fn at_comma_before(&self, start: usize) -> bool {
        self.s[start..self.i].contains(&b',')
    }

    /// An RFC 9110 token (tchar+), also taking the token68 characters `/`, `+`... .
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while let Some(b) = self.peek() {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b);
            if !tchar {
                break;
            }
            self.i += 1;
        }
        let s: &'a [u8] = self.s;
        (self.i > start).then(|| std::str::from_utf8(&s[start..self.i]).unwrap_or_default())
    }

    /// A quoted string (unescaped) or a bare value up to the next comma or space.
    fn value(&mut self) -> String {
        if self.peek() == Some(b'"') {
            self.i += 1;
            let mut out = Vec::new();
            while let Some(b) = self.peek() {
                self.i += 1;
                match b {
                    b'"' => break,
                    b'\\' => {
                        if let Some(escaped) = self.peek() {
                            out.push(escaped);
                            self.i += 1;
                        }
                    }
                    _ => out.push(b),
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        } else {
            let start = self.i;
            while let Some(b) = self.peek() {
                if matches!(b, b',' | b' ' | b'\t') {
                    break;
                }
                self.i += 1;
            }
            String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
        }
    }
}

/// How a registry host asked to be authenticated to, remembered so later requests carry
/// credentials from the start instead of collecting a 401 each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// Basic auth with the user's credentials.
    Basic,
    /// Bearer tokens from `realm` for `service`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to send to it.
        service: Option<String>,
    },
}

impl AuthMethod {
    /// The method a set of challenges asks for, preferring Bearer (what registries use)
    /// over Basic; `None` if neither is offered.
    pub fn from_challenges(challenges: &[Challenge]) -> Option<(Self, Vec<String>)> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer")
            && let Some(realm) = bearer.param("realm").filter(|r| !r.is_empty())
        {
            let scopes = bearer.params_named("scope").map(str::to_string).collect();
            let service = bearer.param("service").map(str::to_string);
            return Some((
                Self::Bearer {
                    realm: realm.to_string(),
                    service,
                },
                scopes,
            ));
        }
        challenges
            .iter()
            .any(|c| c.scheme == "basic")
            .then_some((Self::Basic, Vec::new()))
    }
}

/// The body of a token endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// The token (Docker's field).
    #[serde(default)]
    pub token: Option<String>,
    /// The token (OAuth2's field; used when `token` is absent).
    #[serde(default)]
    pub access_token: Option<String>,
    /// Lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long it may be used, or `None` if the answer holds no token.
    pub fn token_and_lifetime(&self) -> Option<(String, Duration)> {
        let token = self
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .or(self.access_token.as_deref().filter(|t| !t.is_empty()))?;
        let lifetime = self
            .expires_in
            .map_or(MIN_TOKEN_LIFETIME, Duration::from_secs)
            .max(MIN_TOKEN_LIFETIME);
        Some((token.to_string(), lifetime))
    }
}

/// The scope a pull needs on repository `path`.
pub fn pull_scope(path: &str) -> String {
    format!("repository:{path}:pull")
}

/// What a token is cached under: the registry host, the scope and the credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    host: String,
    scope: String,
    credentials: Digest,
}

#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    expires: Instant,
}

/// Remembered auth methods per host and bearer tokens per (host, scope, credentials),
/// shared by all pulls of one client.
#[derive(Debug, Default)]
pub struct AuthCache {
    methods: Mutex<HashMap<String, AuthMethod>>,
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
}

impl AuthCache {
    /// The auth method `host` asked for last, if any.
    pub fn method(&self, host: &str) -> Option<AuthMethod> {
        lock(&self.methods).get(host).cloned()
    }

    /// Remembers the auth method of `host`.
    pub fn set_method(&self, host: &str, method: AuthMethod) {
        lock(&self.methods).insert(host.to_string(), method);
    }

    /// A token for `host`, `scope` and `credentials` still valid at `now`.
    pub fn token(&self, host: &str, scope: &str, credentials: &Credentials, now: Instant) -> Option<String> {
        let key = TokenKey {
            host: host.to_string(),
            scope: scope.to_string(),
            credentials: credentials.fingerprint(),
        };
        let mut tokens = lock(&self.tokens);
        match tokens.get(&key) {
            Some(cached) if cached.expires > now => Some(cached.token.clone()),
            Some(_) => {
                tokens.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Caches `token`, obtained at `now`, for `lifetime` (less a safety margin).
    pub fn store_token(
        &self,
        host: &str,
        scope: &str,
        credentials: &Credentials,
        token: String,
        lifetime: Duration,
        now: Instant,
    ) {
        let key = TokenKey {
            host: host.to_string(),
            scope: scope.to_string(),
            credentials: credentials.fingerprint(),
        };
        // `expires_in` is the registry's to say, up to u64::MAX seconds: past what an
        // Instant holds, adding it would panic. A day is plenty; the token is then fetched
        // again.
        let expires = now + lifetime.min(MAX_CACHED_LIFETIME).saturating_sub(EXPIRY_MARGIN);
        let mut tokens = lock(&self.tokens);
        tokens.retain(|_, cached| cached.expires > now);
        tokens.insert(key, CachedToken { token, expires });
    }

    /// Forgets the token for `host`, `scope` and `credentials` (the registry refused it).
    pub fn forget_token(&self, host: &str, scope: &str, credentials: &Credentials) {
        let key = TokenKey {
            host: host.to_string(),
            scope: scope.to_string(),
            credentials: credentials.fingerprint(),
        };
        lock(&self.tokens).remove(&key);
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the maps stay
/// consistent: every update is a single insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::AuthConfig;

    fn challenge(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.to_string(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            token68: None,
        }
    }

    #[test]
    fn www_authenticate_parsing() {
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, Vec<Challenge>)> = vec![
            ("docker hub bearer",
             r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
             vec![challenge("bearer", &[("realm", "https://auth.docker.io/token"), ("service", "registry.docker.io"), ("scope", "repository:library/busybox:pull")])]),
            ("basic",
             r#"Basic realm="Registry Realm""#,
             vec![challenge("basic", &[("realm", "Registry Realm")])]),
            ("scheme is case-insensitive, spaces around separators",
             r#"BEARER  Realm = "https://a/token" ,  Service="svc""#,
             vec![challenge("bearer", &[("realm", "https://a/token"), ("service", "svc")])]),
            ("comma inside quotes (push,pull scope)",
             r#"Bearer realm="https://a/token",scope="repository:a/b:pull,push""#,
             vec![challenge("bearer", &[("realm", "https://a/token"), ("scope", "repository:a/b:pull,push")])]),
            ("escaped quote and backslash",
             r#"Basic realm="say \"hi\" \\ there""#,
             vec![challenge("basic", &[("realm", r#"say "hi" \ there"#)])]),
            ("unquoted values",
             "Bearer realm=https://a/token,service=registry.example.com",
             vec![challenge("bearer", &[("realm", "https://a/token"), ("service", "registry.example.com")])]),
            ("two challenges in one header",
             r#"Basic realm="basic realm", Bearer realm="https://a/token",service="svc""#,
             vec![challenge("basic", &[("realm", "basic realm")]), challenge("bearer", &[("realm", "https://a/token"), ("service", "svc")])]),
            ("scheme without parameters followed by another",
             r#"Negotiate, Basic realm="x""#,
             vec![challenge("negotiate", &[]), challenge("basic", &[("realm", "x")])]),
            ("repeated scope",
             r#"Bearer realm="r",scope="repository:a:pull",scope="repository:b:pull""#,
             vec![challenge("bearer", &[("realm", "r"), ("scope", "repository:a:pull"), ("scope", "repository:b:pull")])]),
            ("error parameter", r#"Bearer realm="r",error="insufficient_scope""#,
             vec![challenge("bearer", &[("realm", "r"), ("error", "insufficient_scope")])]),
            ("empty header", "", vec![]),
            ("unterminated quote keeps what was read",
             r#"Bearer realm="https://a/tok"#,
             vec![challenge("bearer", &[("realm", "https://a/tok")])]),
            ("empty quoted value", r#"Basic realm="""#, vec![challenge("basic", &[("realm", "")])]),
        ];
        for (desc, header, want) in cases {
            assert_eq!(parse_www_authenticate(header), want, "{desc}: {header}");
        }
    }

    #[test]
    fn token68_challenges() {
        let got = parse_www_authenticate("Negotiate abc+/def==, Basic realm=\"x\"");
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].scheme, "negotiate");
        assert_eq!(got[0].token68.as_deref(), Some("abc+/def=="));
        assert_eq!(got[1].param("realm"), Some("x"));
    }

    #[test]
    fn auth_method_prefers_bearer() {
        type Want = Option<(AuthMethod, Vec<String>)>;
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, Want)> = vec![
            ("bearer", r#"Bearer realm="https://a/token",service="svc",scope="repository:x:pull""#,
             Some((AuthMethod::Bearer { realm: "https://a/token".into(), service: Some("svc".into()) }, vec!["repository:x:pull".into()]))),
            ("bearer without service", r#"Bearer realm="https://a/token""#,
             Some((AuthMethod::Bearer { realm: "https://a/token".into(), service: None }, vec![]))),
            ("basic and bearer: bearer wins", r#"Basic realm="b", Bearer realm="https://a/token""#,
             Some((AuthMethod::Bearer { realm: "https://a/token".into(), service: None }, vec![]))),
            ("basic", r#"Basic realm="b""#, Some((AuthMethod::Basic, vec![]))),
            ("bearer without realm is unusable, basic remains", r#"Bearer service="x", Basic realm="b""#, Some((AuthMethod::Basic, vec![]))),
            ("unknown scheme", "Negotiate", None),
        ];
        for (desc, header, want) in cases {
            assert_eq!(
                AuthMethod::from_challenges(&parse_www_authenticate(header)),
                want,
                "{desc}"
            );
        }
    }

    #[test]
    fn credentials_from_cri_auth_config() {
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: p.into(),
        };
        let b64 = |s: &str| STANDARD.encode(s);
        #[rustfmt::skip]
        let cases: Vec<(&str, AuthConfig, Result<Credentials, CredentialsError>)> = vec![
            ("empty is anonymous", AuthConfig::default(), Ok(Credentials::Anonymous)),
            ("username and password",
             AuthConfig { username: "u".into(), password: "p".into(), ..Default::default() }, Ok(basic("u", "p"))),
            ("auth field",
             AuthConfig { auth: b64("user:pa:ss"), ..Default::default() }, Ok(basic("user", "pa:ss"))),
            ("auth field without padding",
             AuthConfig { auth: b64("ab:c").trim_end_matches('=').to_string(), ..Default::default() }, Ok(basic("ab", "c"))),
            ("auth with trailing NULs in the password",
             AuthConfig { auth: b64("u:p\0\0"), ..Default::default() }, Ok(basic("u", "p"))),
            ("username wins over auth",
             AuthConfig { username: "a".into(), password: "b".into(), auth: b64("c:d"), ..Default::default() }, Ok(basic("a", "b"))),
            ("identity token",
             AuthConfig { identity_token: "refresh".into(), ..Default::default() }, Ok(Credentials::IdentityToken("refresh".into()))),
            ("registry token wins",
             AuthConfig { registry_token: "bearer".into(), username: "u".into(), ..Default::default() }, Ok(Credentials::RegistryToken("bearer".into()))),
            ("auth not base64", AuthConfig { auth: "%%%".into(), ..Default::default() }, Err(CredentialsError::AuthNotBase64)),
            ("auth without colon", AuthConfig { auth: b64("nocolon"), ..Default::default() }, Err(CredentialsError::AuthNoColon)),
        ];
        for (desc, config, want) in cases {
            assert_eq!(Credentials::from_cri(&config), want, "{desc}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let creds = [
            Credentials::Basic {
                username: "me".into(),
                password: "hunter2".into(),
            },
            Credentials::IdentityToken("hunter2".into()),
            Credentials::RegistryToken("hunter2".into()),
        ];
        for c in creds {
            assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
        }
        let basic = Credentials::Basic {
            username: "user".into(),
            password: "pass".into(),
        };
        assert_eq!(basic.basic_header().as_deref(), Some("Basic dXNlcjpwYXNz"));
    }

    #[test]
    fn token_responses() {
        #[rustfmt::skip]
        let cases = [
            ("docker token with lifetime", r#"{"token":"t","expires_in":300}"#, Some(("t", 300))),
            ("oauth access_token", r#"{"access_token":"a","expires_in":120}"#, Some(("a", 120))),
            ("token preferred over access_token", r#"{"token":"t","access_token":"a"}"#, Some(("t", 60))),
            ("empty token falls back to access_token", r#"{"token":"","access_token":"a"}"#, Some(("a", 60))),
            ("short lifetimes are raised to 60 s", r#"{"token":"t","expires_in":10}"#, Some(("t", 60))),
            ("no token", r#"{"expires_in":10}"#, None),
        ];
        for (desc, json, want) in cases {
            let response: TokenResponse = serde_json::from_str(json).expect(desc);
            let got = response.token_and_lifetime();
            let got = got.as_ref().map(|(t, l)| (t.as_str(), l.as_secs()));
            assert_eq!(got, want, "{desc}");
        }
    }

    #[test]
    fn a_token_with_an_endless_lifetime_is_cached_for_a_day() {
        // `"expires_in": 18446744073709551615` once overflowed the Instant (found by the
        // www_authenticate fuzz target).
        let response: TokenResponse =
            serde_json::from_str(r#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
        let (token, lifetime) = response.token_and_lifetime().unwrap();
        let cache = AuthCache::default();
        let now = Instant::now();
        cache.store_token("r", "s", &Credentials::Anonymous, token, lifetime, now);
        assert_eq!(
            cache.token("r", "s", &Credentials::Anonymous, now).as_deref(),
            Some("t")
        );
        let tomorrow = now + MAX_CACHED_LIFETIME;
        assert_eq!(cache.token("r", "s", &Credentials::Anonymous, tomorrow), None);
    }

    #[test]
    fn token_cache_expires_and_separates_credentials_and_scopes() {
        let cache = AuthCache::default();
        let t0 = Instant::now();
        let alice = Credentials::Basic {
            username: "alice".into(),
            password: "a".into(),
        };
        let bob = Credentials::Basic {
            username: "bob".into(),
            password: "b".into(),
        };
        let scope = pull_scope("team/app");
        cache.store_token(
            "r.example",
            &scope,
            &alice,
            "alice-token".into(),
            Duration::from_secs(60),
            t0,
        );

        assert_eq!(
            cache.token("r.example", &scope, &alice, t0).as_deref(),
            Some("alice-token")
        );
        assert_eq!(cache.token("r.example", &scope, &bob, t0), None, "other credentials");
        assert_eq!(
            cache.token("r.example", &scope, &Credentials::Anonymous, t0),
            None,
            "anonymous"
        );
        assert_eq!(
            cache.token("r.example", &pull_scope("team/other"), &alice, t0),
            None,
            "other scope"
        );
        assert_eq!(cache.token("other.example", &scope, &alice, t0), None, "other host");

        let later = t0 + Duration::from_secs(54);
        assert_eq!(
            cache.token("r.example", &scope, &alice, later).as_deref(),
            Some("alice-token")
        );
        let expired = t0 + Duration::from_secs(56);
        assert_eq!(
            cache.token("r.example", &scope, &alice, expired),
            None,
            "expires with margin"
        );

        cache.store_token("r.example", &scope, &alice, "again".into(), Duration::from_secs(60), t0);
        cache.forget_token("r.example", &scope, &alice);
        assert_eq!(cache.token("r.example", &scope, &alice, t0), None, "forgotten");
    }

    #[test]
    fn auth_methods_are_remembered_per_host() {
        let cache = AuthCache::default();
        assert_eq!(cache.method("a"), None);
        cache.set_method("a", AuthMethod::Basic);
        assert_eq!(cache.method("a"), Some(AuthMethod::Basic));
        assert_eq!(cache.method("b"), None);
    }
}
