//! The kubelet API's request paths and `/containerLogs` query, as the apiserver (or anyone
//! who reaches port 10250) sends them. Parsing must not panic; a route that parses names
//! only valid Kubernetes names (no traversal: joined under a directory, they stay there)
//! and rebuilding its path parses to the same route; log options read from a query are
//! consistent.

#![no_main]

use std::path::{Component, Path};

use jiff::Timestamp;
use kubelet_lite::server::logs::LogOptions;
use kubelet_lite::server::routes::{ContainerRef, PodRef, Route};
use libfuzzer_sys::fuzz_target;

fn pod_path(pod: &PodRef) -> String {
    match &pod.uid {
        Some(uid) => format!("{}/{}/{uid}", pod.namespace, pod.name),
        None => format!("{}/{}", pod.namespace, pod.name),
    }
}

fn container_path(container: &ContainerRef) -> String {
    format!("{}/{}", pod_path(&container.pod), container.container)
}

/// Checks each name is one plain path component.
fn stays_under(names: &[&str]) {
    let base = Path::new("/var/log/pods");
    for name in names {
        let joined = base.join(name);
        let relative = joined.strip_prefix(base).expect("joined under the base");
        let components: Vec<_> = relative.components().collect();
        assert!(
            components.len() == 1 && matches!(components[0], Component::Normal(_)),
            "name {name:?} is not one path component"
        );
    }
}

fn check(route: &Route) {
    let (rebuilt, names): (String, Vec<&str>) = match route {
        Route::Healthz => ("/healthz".into(), vec![]),
        Route::Pods => ("/pods".into(), vec![]),
        Route::StatsSummary => ("/stats/summary".into(), vec![]),
        Route::Metrics => ("/metrics".into(), vec![]),
        Route::Exec(c) => (
            format!("/exec/{}", container_path(c)),
            vec![&c.pod.namespace, &c.pod.name, &c.container],
        ),
        Route::Attach(c) => (
            format!("/attach/{}", container_path(c)),
            vec![&c.pod.namespace, &c.pod.name, &c.container],
        ),
        Route::Run(c) => (
            format!("/run/{}", container_path(c)),
            vec![&c.pod.namespace, &c.pod.name, &c.container],
        ),
        Route::PortForward(p) => (format!("/portForward/{}", pod_path(p)), vec![&p.namespace, &p.name]),
        Route::ContainerLogs(c) => (
            format!("/containerLogs/{}", container_path(c)),
            vec![&c.pod.namespace, &c.pod.name, &c.container],
        ),
    };
    stays_under(&names);
    assert_eq!(Route::parse(&rebuilt).as_ref().ok(), Some(route), "{rebuilt:?}");
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    match Route::parse(path) {
        Ok(route) => check(&route),
        Err(error) => assert!(error.status.is_client_error(), "{path:?}: {}", error.status),
    }
    let now = Timestamp::from_second(1_700_000_000).expect("a time");
    match LogOptions::from_query(query, now) {
        Ok(options) => {
            if let Some(limit) = options.limit_bytes {
                assert!(limit > 0);
            }
        }
        Err(error) => assert!(error.status.is_client_error()),
    }
});
