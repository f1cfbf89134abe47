//! A registry's authentication answers: `WWW-Authenticate` challenges (any header value),
//! the auth method chosen from them, and the token endpoint's JSON answer cached for its
//! lifetime. Nothing may panic, whatever a registry (or a man in the middle of plain HTTP)
//! sends; parsed challenges hold lower-case schemes and parameter names.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use runtime_core::image::registry::auth::{
    AuthCache, AuthMethod, Credentials, TokenResponse, parse_www_authenticate, pull_scope,
};

fuzz_target!(|input: &[u8]| {
    let Some((&split, rest)) = input.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (header, body) = rest.split_at(at);
    let header = String::from_utf8_lossy(header);
    let challenges = parse_www_authenticate(&header);
    for challenge in &challenges {
        assert!(!challenge.scheme.is_empty());
        assert_eq!(challenge.scheme, challenge.scheme.to_ascii_lowercase());
        for (name, _) in &challenge.params {
            assert_eq!(*name, name.to_ascii_lowercase());
        }
    }
    let cache = AuthCache::default();
    let credentials = Credentials::Anonymous;
    let scope = pull_scope("library/busybox");
    if let Some((method, scopes)) = AuthMethod::from_challenges(&challenges) {
        if let AuthMethod::Bearer { realm, .. } = &method {
            assert!(!realm.is_empty());
        }
        let _ = scopes;
        cache.set_method("registry.test", method.clone());
        assert_eq!(cache.method("registry.test"), Some(method));
    }
    if let Ok(response) = serde_json::from_slice::<TokenResponse>(body)
        && let Some((token, lifetime)) = response.token_and_lifetime()
    {
        assert!(!token.is_empty());
        let now = Instant::now();
        cache.store_token("registry.test", &scope, &credentials, token.clone(), lifetime, now);
        assert!(lifetime >= Duration::from_secs(60));
        assert_eq!(cache.token("registry.test", &scope, &credentials, now), Some(token));
    }
});
