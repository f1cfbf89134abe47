//! Crash points: named places in state-changing code where a test can make the process
//! die at once, as a power cut or `kill -9` would, to prove that what was written before
//! that point is enough to recover.
//!
//! A point is one call, `crash_point::hit("sandbox_run.after_pin")`. Without the
//! `enabled` feature it does nothing and compiles away. With it, the process reads
//! [`ENV_VAR`] once: when it names the point (`NAME`, or `NAME@N` for its N-th hit,
//! counting from 1), the point prints `crash point NAME reached` on stderr and the process
//! sends itself SIGKILL — no destructor, no flush, no unwinding runs.
//!
//! Crates that carry points forward a `crash-points` feature to `crash-point/enabled`,
//! and keep the list of their points' names beside them, so a test can walk every one.

/// The environment variable that arms one point.
pub const ENV_VAR: &str = "KUBELET_LITE_CRASH_POINT";

/// Kills the process with SIGKILL if the `enabled` feature is on and [`ENV_VAR`] names
/// this point (and this is the hit it names); otherwise returns at once.
#[inline(always)]
pub fn hit(name: &'static str) {
    #[cfg(feature = "enabled")]
    armed::hit(name);
    #[cfg(not(feature = "enabled"))]
    let _ = name;
}

/// Parses an [`ENV_VAR`] value: the point's name and the hit that kills (1 when not given).
/// `None` for an empty value or a hit count that is not a positive number.
pub fn parse_spec(spec: &str) -> Option<(&str, u64)> {
    let (name, nth) = match spec.rsplit_once('@') {
        Some((name, nth)) => (name, nth.parse().ok().filter(|n| *n > 0)?),
        None => (spec, 1),
    };
    (!name.is_empty()).then_some((name, nth))
}

/// The names of the points (`hit("...")` calls through this crate's path) in the Rust
/// files under `dir`: what a crash-recovery test compares with the points it walks, so a
/// point added to the code cannot be left out.
pub fn names_in_sources(dir: &std::path::Path) -> std::io::Result<std::collections::BTreeSet<String>> {
    const CALL: &str = "crash_point::hit(\"";
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(names_in_sources(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)?;
            for (at, _) in text.match_indices(CALL) {
                let rest = &text[at + CALL.len()..];
                let end = rest.find('"').ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: an unterminated crash point name", path.display()),
                    )
                })?;
                found.insert(rest[..end].to_string());
            }
        }
    }
    Ok(found)
}

#[cfg(feature = "enabled")]
mod armed {
    use std::io::Write;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The armed point and how many times it was reached so far.
    struct Armed {
        name: String,
        nth: u64,
        hits: AtomicU64,
    }

    fn armed() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let spec = std::env::var(super::ENV_VAR).ok()?;
                let (name, nth) = super::parse_spec(&spec)?;
                Some(Armed {
                    name: name.to_string(),
                    nth,
                    hits: AtomicU64::new(0),
                })
            })
            .as_ref()
    }

    pub(super) fn hit(name: &'static str) {
        let Some(armed) = armed() else { return };
        if armed.name != name || armed.hits.fetch_add(1, Ordering::SeqCst) + 1 != armed.nth {
            return;
        }
        let _ = writeln!(std::io::stderr(), "crash point {name} reached");
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; the process is gone before this line.
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::parse_spec;

    #[test]
    fn the_points_of_a_source_tree_are_found_by_name() {
        let dir = std::env::temp_dir().join(format!("crash-point-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("dirs");
        std::fs::write(dir.join("a.rs"), "fn f() { crash_point::hit(\"a.one\"); }").expect("a.rs");
        std::fs::write(
            dir.join("sub/b.rs"),
            "crash_point::hit(\"b.two\");\ncrash_point::hit(\"b.three\");",
        )
        .expect("b.rs");
        std::fs::write(dir.join("c.txt"), "crash_point::hit(\"not.rust\")").expect("c.txt");
        let found = super::names_in_sources(&dir);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        let names: Vec<String> = found.expect("names").into_iter().collect();
        assert_eq!(names, ["a.one", "b.three", "b.two"]);
    }

    #[test]
    fn a_spec_names_a_point_and_optionally_its_hit() {
        assert_eq!(parse_spec("pull.after_fetch"), Some(("pull.after_fetch", 1)));
        assert_eq!(parse_spec("pull.after_fetch@3"), Some(("pull.after_fetch", 3)));
        assert_eq!(parse_spec(""), None);
        assert_eq!(parse_spec("x@0"), None);
        assert_eq!(parse_spec("x@y"), None);
        assert_eq!(parse_spec("@2"), None);
    }
}
