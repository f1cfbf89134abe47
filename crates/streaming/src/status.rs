//! How an exec or attach session ended, as the client reads it from the error stream:
//! a Kubernetes `Status` object in JSON (protocol v4 and later), or for older protocols
//! the failure's message alone (and nothing on success).

use serde::Serialize;

/// The end of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The command exited 0, or the attachment ended normally.
    Success,
    /// The command exited with a non-zero code; kubectl exits with the same code.
    ExitCode { code: i32, message: String },
    /// The runtime failed; `message` says how.
    InternalError(String),
}

/// `metav1.StatusReason` for a command that exited non-zero.
const REASON_NON_ZERO_EXIT_CODE: &str = "NonZeroExitCode";
/// `metav1.CauseType` of the cause that carries the exit code.
const CAUSE_EXIT_CODE: &str = "ExitCode";
/// `metav1.StatusReasonInternalError`.
const REASON_INTERNAL_ERROR: &str = "InternalError";

/// The fields of `metav1.Status` that sessions use, serialized as Go's `encoding/json`
/// writes them (empty fields left out, `metadata` always present).
#[derive(Serialize)]
struct Status<'a> {
    metadata: Empty,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Details<'a> {
    causes: Vec<Cause<'a>>,
}

#[derive(Serialize)]
struct Cause<'a> {
    /// Go names this field `Type` and serializes it as `reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    message: &'a str,
}

impl Outcome {
    /// The error stream's content for protocol v4 and later.
    pub(crate) fn to_v4_json(&self) -> Vec<u8> {
        let internal;
        let code_text;
        let status = match self {
            Outcome::Success => Status {
                metadata: Empty {},
                status: "Success",
                message: None,
                reason: None,
                details: None,
                code: None,
            },
            Outcome::ExitCode { code, message } => {
                code_text = code.to_string();
                Status {
                    metadata: Empty {},
                    status: "Failure",
                    message: Some(message),
                    reason: Some(REASON_NON_ZERO_EXIT_CODE),
                    details: Some(Details {
                        causes: vec![Cause {
                            reason: Some(CAUSE_EXIT_CODE),
                            message: &code_text,
                        }],
                    }),
                    code: None,
                }
            }
            Outcome::InternalError(message) => {
                internal = format!("Internal error occurred: {message}");
                Status {
                    metadata: Empty {},
                    status: "Failure",
                    message: Some(&internal),
                    reason: Some(REASON_INTERNAL_ERROR),
                    details: Some(Details {
                        causes: vec![Cause { reason: None, message }],
                    }),
                    code: Some(500),
                }
            }
        };
        serde_json::to_vec(&status).unwrap_or_default()
    }

    /// The error stream's content before protocol v4: the failure's text, or nothing.
    pub(crate) fn to_text(&self) -> Option<Vec<u8>> {
        match self {
            Outcome::Success => None,
            Outcome::ExitCode { message, .. } => Some(message.clone().into_bytes()),
            Outcome::InternalError(message) => Some(format!("Internal error occurred: {message}").into_bytes()),
        }
    }
}

/// The message of a non-zero exit, worded as containerd's CRI words it.
pub(crate) fn exit_code_message(cmd: &[String], code: i32) -> String {
    format!(
        "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
        cmd.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_metav1_status() {
        assert_eq!(
            String::from_utf8(Outcome::Success.to_v4_json()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let exited = Outcome::ExitCode {
            code: 3,
            message: exit_code_message(&["sh".into(), "-c".into(), "exit 3".into()], 3),
        };
        assert_eq!(
            String::from_utf8(exited.to_v4_json()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let failed = Outcome::InternalError("no such container".into());
        assert_eq!(
            String::from_utf8(failed.to_v4_json()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: no such container","reason":"InternalError","details":{"causes":[{"message":"no such container"}]},"code":500}"#
        );
    }

    #[test]
    fn older_protocols_get_the_message_of_failures_only() {
        assert_eq!(Outcome::Success.to_text(), None);
        assert_eq!(
            Outcome::InternalError("boom".into()).to_text().unwrap(),
            b"Internal error occurred: boom"
        );
        assert_eq!(
            Outcome::ExitCode {
                code: 1,
                message: "m".into()
            }
            .to_text()
            .unwrap(),
            b"m"
        );
    }
}
