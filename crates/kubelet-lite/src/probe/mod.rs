//! Probes: liveness, readiness and startup checks of a container (exec, httpGet, tcpSocket).
