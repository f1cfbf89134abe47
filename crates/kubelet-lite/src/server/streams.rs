//! `/exec`, `/attach`, `/portForward` and `/run`: the pod and container are looked up in
//! the runtime ([`super::locate`]), the CRI Exec, Attach or PortForward call gives the
//! runtime's streaming URL, and the request is proxied there ([`super::proxy`]). `/run`
//! runs the command with ExecSync and answers with its output.
//!
//! The stream options come from the query: `command` (repeated), `stdin`, `stdout`,
//! `stderr`, `tty`, and the older names `input`, `output`, `error` of the first three,
//! which are translated before the query goes on to the runtime.

use std::time::Duration;

use cri_client::v1::{AttachRequest, ExecRequest};
use http::{Request, Response};
use hyper::body::Incoming;

use super::body::{Body, text};
use super::error::ApiError;
use super::locate;
use super::proxy::proxy_stream;
use super::routes::{ContainerRef, PodRef};

/// How long `/run` lets its command run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The stream options of an exec or attach request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StreamOptions {
    /// The command to run (exec and run only).
    pub(crate) command: Vec<String>,
    /// Connect the container's standard input.
    pub(crate) stdin: bool,
    /// Connect its standard output.
    pub(crate) stdout: bool,
    /// Connect its standard error (never with a TTY).
    pub(crate) stderr: bool,
    /// Allocate a TTY.
    pub(crate) tty: bool,
    /// The query as the runtime gets it: old names translated.
    pub(crate) query: String,
    /// The ports of a port-forward (`port`).
    pub(crate) ports: Vec<i32>,
}

impl StreamOptions {
    /// The options of `query`.
    pub(crate) fn from_query(query: &str) -> Result<StreamOptions, ApiError> {
        let mut options = StreamOptions::default();
        let mut translated = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let key = match key.as_ref() {
                "input" => "stdin",
                "output" => "stdout",
                "error" => "stderr",
                other => other,
            };
            let flag = || matches!(value.as_ref(), "1" | "true" | "True" | "TRUE" | "t" | "T");
            match key {
                "stdin" => options.stdin = flag(),
                "stdout" => options.stdout = flag(),
                "stderr" => options.stderr = flag(),
                "tty" => options.tty = flag(),
                "command" => options.command.push(value.to_string()),
                "port" => {
                    let port = value
                        .parse::<u16>()
                        .ok()
                        .filter(|port| *port > 0)
                        .ok_or_else(|| ApiError::bad_request(format!("invalid port {value:?}")))?;
                    options.ports.push(i32::from(port));
                }
                _ => {}
            }
            translated.append_pair(key, &value);
        }
        // The kubelet drops stderr when a TTY is asked for: a TTY has one output.
        if options.tty {
            options.stderr = false;
        }
        options.query = translated.finish();
        Ok(options)
    }

    fn require_a_stream(&self) -> Result<(), ApiError> {
        if self.stdin || self.stdout || self.stderr {
            Ok(())
        } else {
            Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ))
        }
    }
}

fn query(request: &Request<Incoming>) -> Result<StreamOptions, ApiError> {
    StreamOptions::from_query(request.uri().query().unwrap_or_default())
}

/// What `/exec` and `/attach` stream from a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerStream {
    /// `/exec`: a command run in the container.
    Exec,
    /// `/attach`: the container's main process.
    Attach,
}

impl ContainerStream {
    /// The verb errors name.
    fn verb(self) -> &'static str {
        match self {
            ContainerStream::Exec => "exec",
            ContainerStream::Attach => "attach",
        }
    }
}

/// `/exec` or `/attach`: the stream of the running container, asked of the runtime with
/// CRI Exec or Attach and proxied to its streaming server.
pub(crate) async fn container_stream(
    cri: &cri_client::Client,
    request: Request<Incoming>,
    container: &ContainerRef,
    kind: ContainerStream,
) -> Result<Response<Body>, ApiError> {
    let options = query(&request)?;
    options.require_a_stream()?;
    if kind == ContainerStream::Exec && options.command.is_empty() {
        return Err(ApiError::bad_request("no command given"));
    }
    let container_id = locate::running_container(cri, container).await?;
    let (tty, stdin, stdout, stderr) = (options.tty, options.stdin, options.stdout, options.stderr);
    let url = match kind {
        ContainerStream::Exec => {
            let exec = ExecRequest {
                container_id,
                cmd: options.command.clone(),
                tty,
                stdin,
                stdout,
                stderr,
            };
            cri.exec(exec).await
        }
        ContainerStream::Attach => {
            let attach = AttachRequest {
                container_id,
                tty,
                stdin,
                stdout,
                stderr,
            };
            cri.attach(attach).await
        }
    };
    let url = url.map_err(|err| ApiError::from_cri(kind.verb(), &err))?;
    proxy_stream(request, &url, &options.query).await
}

/// `/portForward`: the pod's ports, streamed.
pub(crate) async fn port_forward(
    cri: &cri_client::Client,
    request: Request<Incoming>,
    pod: &PodRef,
) -> Result<Response<Body>, ApiError> {
    let options = query(&request)?;
    let sandbox = locate::sandbox(cri, pod).await?;
    let url = cri
        .port_forward(&sandbox.id, &options.ports)
        .await
        .map_err(|err| ApiError::from_cri("port-forward", &err))?;
    proxy_stream(request, &url, &options.query).await
}

/// `/run`: the command's output (stdout then stderr) as the body.
pub(crate) async fn run(
    cri: &cri_client::Client,
    request: &Request<Incoming>,
    container: &ContainerRef,
) -> Result<Response<Body>, ApiError> {
    let options = query(request)?;
    // `/run` takes the command in `cmd`, one string split on spaces, as the kubelet does.
    let command: Vec<String> = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "cmd")
        .flat_map(|(_, value)| {
            value
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .chain(options.command)
        .collect();
    if command.is_empty() {
        return Err(ApiError::bad_request("no command given"));
    }
    let id = locate::running_container(cri, container).await?;
    let output = cri
        .exec_sync(&id, command, RUN_TIMEOUT)
        .await
        .map_err(|err| ApiError::from_cri("run", &err))?;
    let mut body = output.stdout;
    body.extend_from_slice(&output.stderr);
    Ok(text(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_stream_names_are_translated() {
        let options =
            StreamOptions::from_query("command=sh&command=-c&command=echo%20hi&input=1&output=1&error=1").unwrap();
        assert_eq!(options.command, ["sh", "-c", "echo hi"]);
        assert!(options.stdin && options.stdout && options.stderr && !options.tty);
        assert_eq!(
            options.query,
            "command=sh&command=-c&command=echo+hi&stdin=1&stdout=1&stderr=1"
        );
    }

    #[test]
    fn a_tty_drops_stderr_and_a_stream_is_required() {
        let options = StreamOptions::from_query("stdout=true&stderr=true&tty=true").unwrap();
        assert!(options.stdout && !options.stderr);
        assert!(StreamOptions::from_query("tty=1").unwrap().require_a_stream().is_err());
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(
            StreamOptions::from_query("port=8080&port=80").unwrap().ports,
            [8080, 80]
        );
        assert!(StreamOptions::from_query("port=0").is_err());
        assert!(StreamOptions::from_query("port=99999").is_err());
    }
}
