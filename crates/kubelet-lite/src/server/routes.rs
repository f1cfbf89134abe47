//! The paths the API serves, parsed into a [`Route`] with every name checked
//! ([`super::names`]) before a handler sees it.
//!
//! The paths are the kubelet's (`pkg/kubelet/server/server.go`):
//!
//! | path | route |
//! |---|---|
//! | `/healthz` | [`Route::Healthz`] |
//! | `/pods` | [`Route::Pods`] |
//! | `/stats/summary` | [`Route::StatsSummary`] |
//! | `/metrics` | [`Route::Metrics`] |
//! | `/exec/{ns}/{pod}[/{uid}]/{container}` | [`Route::Exec`] |
//! | `/attach/{ns}/{pod}[/{uid}]/{container}` | [`Route::Attach`] |
//! | `/run/{ns}/{pod}[/{uid}]/{container}` | [`Route::Run`] |
//! | `/portForward/{ns}/{pod}[/{uid}]` | [`Route::PortForward`] |
//! | `/containerLogs/{ns}/{pod}/{container}` | [`Route::ContainerLogs`] |

use super::error::ApiError;
use super::names::{is_dns_label, is_dns_subdomain, is_uid};

/// A pod named in a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// The namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's UID, when the path gives one.
    pub uid: Option<String>,
}

/// A container of a pod named in a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// The pod.
    pub pod: PodRef,
    /// The container's name in the pod spec.
    pub container: String,
}

/// What a request path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`: `ok`.
    Healthz,
    /// `/pods`: the pods of this node as a PodList.
    Pods,
    /// `/stats/summary`: the resource usage summary metrics-server reads.
    StatsSummary,
    /// `/metrics`: Prometheus metrics.
    Metrics,
    /// `/exec/...`: a command in a container, streamed.
    Exec(ContainerRef),
    /// `/attach/...`: the container's main process, streamed.
    Attach(ContainerRef),
    /// `/run/...`: a command in a container, its output as the body.
    Run(ContainerRef),
    /// `/portForward/...`: the pod's ports, streamed.
    PortForward(PodRef),
    /// `/containerLogs/...`: a container's log.
    ContainerLogs(ContainerRef),
}

impl Route {
    /// Parses `path` (without the query). A name that breaks Kubernetes' naming rules
    /// (`..`, `%2F`, an empty segment...) is a 400; an unknown path a 404.
    pub fn parse(path: &str) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        if segments.iter().any(|s| *s == "." || *s == "..") || segments.iter().skip(1).any(|s| s.is_empty()) {
            return Err(ApiError::bad_request(format!("invalid path {path:?}")));
        }
        let not_found = || ApiError::not_found(format!("no handler for {path:?}"));
        match segments.as_slice() {
            ["healthz"] => Ok(Route::Healthz),
            ["pods"] => Ok(Route::Pods),
            ["stats", "summary"] => Ok(Route::StatsSummary),
            ["metrics"] => Ok(Route::Metrics),
            ["exec", rest @ ..] => container_ref(rest).ok_or_else(not_found)?.map(Route::Exec),
            ["attach", rest @ ..] => container_ref(rest).ok_or_else(not_found)?.map(Route::Attach),
            ["run", rest @ ..] => container_ref(rest).ok_or_else(not_found)?.map(Route::Run),
            ["portForward", namespace, name] => pod_ref(namespace, name, None).map(Route::PortForward),
            ["portForward", namespace, name, uid] => pod_ref(namespace, name, Some(uid)).map(Route::PortForward),
            ["containerLogs", namespace, name, container] => Ok(Route::ContainerLogs(checked_container(
                pod_ref(namespace, name, None)?,
                container,
            )?)),
            _ => Err(not_found()),
        }
    }
}

/// `{ns}/{pod}/{container}` or `{ns}/{pod}/{uid}/{container}`; `None` for another shape.
fn container_ref(segments: &[&str]) -> Option<Result<ContainerRef, ApiError>> {
    let (pod, container) = match segments {
        [namespace, name, container] => (pod_ref(namespace, name, None), container),
        [namespace, name, uid, container] => (pod_ref(namespace, name, Some(uid)), container),
        _ => return None,
    };
    Some(pod.and_then(|pod| checked_container(pod, container)))
}

fn pod_ref(namespace: &str, name: &str, uid: Option<&str>) -> Result<PodRef, ApiError> {
    if !is_dns_subdomain(namespace) {
        return Err(ApiError::bad_request(format!("invalid namespace {namespace:?}")));
    }
    if !is_dns_subdomain(name) {
        return Err(ApiError::bad_request(format!("invalid pod name {name:?}")));
    }
    if let Some(uid) = uid.filter(|uid| !is_uid(uid)) {
        return Err(ApiError::bad_request(format!("invalid pod UID {uid:?}")));
    }
    Ok(PodRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: uid.map(str::to_owned),
    })
}

fn checked_container(pod: PodRef, container: &str) -> Result<ContainerRef, ApiError> {
    if !is_dns_label(container) {
        return Err(ApiError::bad_request(format!("invalid container name {container:?}")));
    }
    Ok(ContainerRef {
        pod,
        container: container.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn container(namespace: &str, name: &str, uid: Option<&str>, container: &str) -> ContainerRef {
        ContainerRef {
            pod: PodRef {
                namespace: namespace.into(),
                name: name.into(),
                uid: uid.map(Into::into),
            },
            container: container.into(),
        }
    }

    #[test]
    fn the_kubelet_paths_parse() {
        assert_eq!(Route::parse("/healthz"), Ok(Route::Healthz));
        assert_eq!(Route::parse("/stats/summary"), Ok(Route::StatsSummary));
        assert_eq!(
            Route::parse("/exec/default/web/app"),
            Ok(Route::Exec(container("default", "web", None, "app")))
        );
        assert_eq!(
            Route::parse("/attach/default/web/0f4c-1c3e/app"),
            Ok(Route::Attach(container("default", "web", Some("0f4c-1c3e"), "app")))
        );
        assert_eq!(
            Route::parse("/containerLogs/kube-system/dns.1/c"),
            Ok(Route::ContainerLogs(container("kube-system", "dns.1", None, "c")))
        );
        assert!(matches!(
            Route::parse("/portForward/default/web"),
            Ok(Route::PortForward(_))
        ));
    }

    #[test]
    fn traversal_is_a_bad_request() {
        for path in [
            "/containerLogs/default/web/..",
            "/containerLogs/../../etc/passwd",
            "/containerLogs/default/..%2f..%2fetc/passwd",
            "/exec/default/../app",
            "/exec/default/web/%2e%2e/app",
            "/exec/default//app",
            "/portForward/default/web/../x",
        ] {
            assert_eq!(
                Route::parse(path).map_err(|e| e.status),
                Err(StatusCode::BAD_REQUEST),
                "{path}"
            );
        }
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/",
            "/nope",
            "/exec/default/web",
            "/exec/a/b/c/d/e",
            "/containerLogs/a/b/c/d",
        ] {
            assert_eq!(
                Route::parse(path).map_err(|e| e.status),
                Err(StatusCode::NOT_FOUND),
                "{path}"
            );
        }
    }
}
