//! The options of `/containerLogs` from its query: the fields of `PodLogOptions` that
//! the apiserver passes on (`follow`, `tailLines`, `timestamps`, `sinceSeconds`,
//! `sinceTime`, `previous`, `limitBytes`), checked as the apiserver checks them.

use jiff::{SignedDuration, Timestamp};

use crate::server::error::ApiError;

/// What part of a log to send and how.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Keep sending what the container writes (`follow`).
    pub follow: bool,
    /// Only the last lines (`tailLines`).
    pub tail_lines: Option<u64>,
    /// Put each line's timestamp before it (`timestamps`).
    pub timestamps: bool,
    /// Only lines written at or after this time (`sinceSeconds` or `sinceTime`).
    pub since: Option<Timestamp>,
    /// The log of the previous instance of the container (`previous`).
    pub previous: bool,
    /// Stop after this many bytes (`limitBytes`).
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// The options of `query` (the part of the URL after `?`); `now` anchors
    /// `sinceSeconds`. Unknown parameters are ignored; malformed values are a 400.
    pub fn from_query(query: &str, now: Timestamp) -> Result<LogOptions, ApiError> {
        let mut options = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "follow" => options.follow = boolean(&key, &value)?,
                "timestamps" => options.timestamps = boolean(&key, &value)?,
                "previous" => options.previous = boolean(&key, &value)?,
                "tailLines" => options.tail_lines = Some(non_negative(&key, &value)?),
                "limitBytes" => options.limit_bytes = Some(positive(&key, &value)?),
                "sinceSeconds" => since_seconds = Some(positive(&key, &value)?),
                "sinceTime" => {
                    let time = value
                        .parse::<Timestamp>()
                        .map_err(|err| ApiError::bad_request(format!("sinceTime {value:?}: {err}")))?;
                    since_time = Some(time);
                }
                _ => {}
            }
        }
        options.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "at most one of sinceTime or sinceSeconds may be specified",
                ));
            }
            (Some(seconds), None) => {
                let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
                Some(
                    now.checked_sub(SignedDuration::from_secs(seconds))
                        .unwrap_or(Timestamp::MIN),
                )
            }
            (None, time) => time,
        };
        Ok(options)
    }
}

/// Go's `strconv.ParseBool`, plus an empty value meaning true (`?follow`).
fn boolean(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!("{key}: {value:?} is not a boolean"))),
    }
}

fn non_negative(key: &str, value: &str) -> Result<u64, ApiError> {
    value
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("{key}: {value:?} must be a non-negative integer")))
}

fn positive(key: &str, value: &str) -> Result<u64, ApiError> {
    match non_negative(key, value)? {
        0 => Err(ApiError::bad_request(format!("{key}: must be greater than 0"))),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn every_option_parses() {
        let options = LogOptions::from_query(
            "follow=true&tailLines=3&timestamps=1&sinceSeconds=60&previous=false&limitBytes=10&other=x",
            now(),
        )
        .unwrap();
        assert_eq!(
            options,
            LogOptions {
                follow: true,
                tail_lines: Some(3),
                timestamps: true,
                since: Some("2024-05-01T11:59:00Z".parse().unwrap()),
                previous: false,
                limit_bytes: Some(10),
            }
        );
        let options = LogOptions::from_query("sinceTime=2024-05-01T10%3A00%3A00.5Z", now()).unwrap();
        assert_eq!(options.since, Some("2024-05-01T10:00:00.5Z".parse().unwrap()));
    }

    #[test]
    fn bad_values_are_bad_requests() {
        for query in [
            "follow=maybe",
            "tailLines=-1",
            "limitBytes=0",
            "sinceSeconds=0",
            "sinceTime=yesterday",
            "sinceSeconds=5&sinceTime=2024-05-01T10:00:00Z",
        ] {
            let error = LogOptions::from_query(query, now()).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{query}");
        }
    }
}
