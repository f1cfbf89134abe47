//! Single-use tokens for the URLs the CRI's Exec, Attach and PortForward calls hand out
//! (the role of the kubelet streaming package's `request_cache.go`): a token names one
//! request for one minute, is gone once used, and at most 1000 wait at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::time::Instant;

use crate::request::{AttachRequest, ExecRequest, PortForwardRequest, RequestError};

/// How long a URL stays usable.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(60);
/// How many unused URLs may exist at once.
pub(crate) const MAX_IN_FLIGHT: usize = 1000;
/// Random bytes per token: 6 bytes are exactly 8 URL-safe base64 characters.
const TOKEN_BYTES: usize = 6;

/// A request waiting for its URL to be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cached {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

#[derive(Debug)]
struct Entry {
    request: Cached,
    expires: Instant,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Tokens in insertion order, which is also expiry order.
    order: VecDeque<String>,
}

impl State {
    fn remove_expired(&mut self, now: Instant) {
        while let Some(token) = self.order.front() {
            match self.entries.get(token) {
                Some(entry) if entry.expires > now => return,
                Some(_) => {
                    self.entries.remove(token);
                    self.order.pop_front();
                }
                // Already consumed.
                None => {
                    self.order.pop_front();
                }
            }
        }
    }
}

/// The pending requests, by token.
#[derive(Debug)]
pub(crate) struct RequestCache {
    state: Mutex<State>,
    ttl: Duration,
    max_in_flight: usize,
}

impl Default for RequestCache {
    fn default() -> Self {
        Self::new(TOKEN_TTL, MAX_IN_FLIGHT)
    }
}

impl RequestCache {
    /// A cache whose tokens last `ttl`, with at most `max_in_flight` unused at once.
    pub(crate) fn new(ttl: Duration, max_in_flight: usize) -> Self {
        Self {
            state: Mutex::default(),
            ttl,
            max_in_flight,
        }
    }

    /// Stores `request` under a new token.
    pub(crate) fn insert(&self, request: Cached) -> Result<String, RequestError> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.remove_expired(now);
        // Consumed tokens leave their place in `order` until they reach its front.
        if state.entries.len() >= self.max_in_flight {
            return Err(RequestError::TooManyInFlight);
        }
        let token = loop {
            let token = new_token()?;
            if !state.entries.contains_key(&token) {
                break token;
            }
        };
        state.entries.insert(
            token.clone(),
            Entry {
                request,
                expires: now + self.ttl,
            },
        );
        state.order.push_back(token.clone());
        Ok(token)
    }

    /// Takes the request stored under `token`, if it exists and has not expired.
    pub(crate) fn consume(&self, token: &str) -> Option<Cached> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = state.entries.remove(token)?;
        (entry.expires > Instant::now()).then_some(entry.request)
    }
}

fn new_token() -> Result<String, RequestError> {
    let mut raw = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut raw).map_err(|e| RequestError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: &str) -> Cached {
        Cached::Exec(ExecRequest {
            container_id: id.into(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_token_is_eight_url_safe_characters_and_works_once() {
        let cache = RequestCache::default();
        let token = cache.insert(exec("c1")).unwrap();
        assert_eq!(token.len(), 8);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        assert_eq!(cache.consume(&token), Some(exec("c1")));
        assert_eq!(cache.consume(&token), None);
        assert_eq!(cache.consume("unknown!"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_expires_after_a_minute() {
        let cache = RequestCache::default();
        let early = cache.insert(exec("early")).unwrap();
        let late = cache.insert(exec("late")).unwrap();
        tokio::time::advance(TOKEN_TTL - Duration::from_secs(1)).await;
        assert_eq!(cache.consume(&early), Some(exec("early")));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.consume(&late), None);
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_a_thousand_wait_and_expired_ones_make_room() {
        let cache = RequestCache::default();
        let tokens: Vec<String> = (0..MAX_IN_FLIGHT)
            .map(|i| cache.insert(exec(&i.to_string())).unwrap())
            .collect();
        assert!(matches!(
            cache.insert(exec("one too many")),
            Err(RequestError::TooManyInFlight)
        ));
        // Using one frees its place.
        assert!(cache.consume(&tokens[10]).is_some());
        let extra = cache.insert(exec("fits")).unwrap();
        assert!(matches!(
            cache.insert(exec("full again")),
            Err(RequestError::TooManyInFlight)
        ));
        tokio::time::advance(TOKEN_TTL + Duration::from_secs(1)).await;
        assert!(cache.insert(exec("after expiry")).is_ok());
        assert_eq!(cache.consume(&extra), None);
    }
}
