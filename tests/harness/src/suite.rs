//! Running a test binary's tests against one shared environment, with libtest's command
//! line (`cargo test -p crate --test name -- filter --exact --test-threads 1 --list`).
//!
//! ```no_run
//! use std::process::ExitCode;
//! use test_harness::suite::{self, Test};
//!
//! struct Env { registry: test_harness::Registry }
//!
//! fn registry_answers(env: &Env) -> anyhow::Result<()> {
//!     env.registry.client().ping()
//! }
//!
//! fn main() -> ExitCode {
//!     suite::run(
//!         || Ok(Env { registry: test_harness::Registry::start()? }),
//!         vec![Test::new("registry_answers", registry_answers)],
//!     )
//! }
//! ```
//!
//! Setup runs only if at least one test is selected (so `--list` and filters that match
//! other binaries cost nothing). Tests then run in parallel (`--test-threads`), each
//! with a shared `&E`; a test fails by returning an error or panicking. The environment
//! is dropped (cleaned up) after the last test, before the process exits. A test that
//! runs past [`TEST_TIMEOUT`] ends the process (see there).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Conclusion, Failed, Trial};

use crate::{Missing, in_ci, note};

/// One test: a name (for output and filtering) and a function of the environment.
pub struct Test<E> {
    /// The name libtest prints and filters on.
    pub name: &'static str,
    /// The test; an `Err` (or a panic) fails it.
    pub run: fn(&E) -> anyhow::Result<()>,
}

impl<E> Test<E> {
    /// A test named `name` running `run`.
    pub const fn new(name: &'static str, run: fn(&E) -> anyhow::Result<()>) -> Test<E> {
        Test { name, run }
    }
}

impl<E> Clone for Test<E> {
    fn clone(&self) -> Test<E> {
        *self
    }
}

impl<E> Copy for Test<E> {}

impl<E> std::fmt::Debug for Test<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Test").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Runs `setup`, then the tests with libtest-mimic (so `cargo test -- filter` works),
/// then drops the environment (cleanup), and returns the exit code.
///
/// If setup fails because a prerequisite is missing (a [`Missing`] in the error's
/// chain): outside CI every selected test is reported ignored, with the reason printed;
/// with `CI=true` ([`in_ci`]) every selected test fails. Any other setup error fails
/// every selected test, with the error printed once in full.
pub fn run<E: Sync>(setup: impl FnOnce() -> anyhow::Result<E>, tests: Vec<Test<E>>) -> ExitCode {
    run_with_args(&Arguments::from_args(), setup, tests).exit_code()
}

/// [`run`] with explicit arguments; returns libtest-mimic's conclusion.
pub fn run_with_args<E: Sync>(
    args: &Arguments,
    setup: impl FnOnce() -> anyhow::Result<E>,
    tests: Vec<Test<E>>,
) -> Conclusion {
    if let Some(duplicate) = tests
        .iter()
        .enumerate()
        .find(|(i, t)| tests[..*i].iter().any(|u| u.name == t.name))
    {
        note(format!(
            "two tests are named {:?}; names must be unique",
            duplicate.1.name
        ));
        return libtest_mimic::run(
            args,
            vec![Trial::test(duplicate.1.name, || Err("duplicate test name".into()))],
        );
    }
    let selected = tests
        .iter()
        .filter(|test| {
            let probe = Trial::test(test.name, || Ok(()));
            !args.is_filtered_out(&probe) && !args.is_ignored(&probe)
        })
        .count();
    if args.list || selected == 0 {
        return libtest_mimic::run(
            args,
            tests.iter().map(|test| Trial::test(test.name, || Ok(()))).collect(),
        );
    }

    let started = Instant::now();
    let env = match setup() {
        Ok(env) => env,
        Err(error) => return report_setup_failure(args, &tests, &error),
    };
    note(format!(
        "environment ready in {:.2?}; running {selected} test(s)",
        started.elapsed()
    ));
    let conclusion = run_tests(args, &env, &tests);
    let cleanup = Instant::now();
    drop(env);
    note(format!("environment dropped in {:.2?}", cleanup.elapsed()));
    conclusion
}

fn report_setup_failure<E>(args: &Arguments, tests: &[Test<E>], error: &anyhow::Error) -> Conclusion {
    if let Some(missing) = Missing::find(error) {
        let program = std::env::args().next().unwrap_or_default();
        if !in_ci() {
            note(format!(
                "SKIPPING the tests of {program}: prerequisites missing on this machine:\n{}\n\
                 (with CI=true this is a failure)",
                missing.explain()
            ));
            let reason = missing.to_string();
            return libtest_mimic::run(
                args,
                tests
                    .iter()
                    .map(|test| {
                        let reason = reason.clone();
                        Trial::ignorable_test(test.name, move || Ok(Completion::ignored_with(reason)))
                    })
                    .collect(),
            );
        }
        note(format!("CI=true and prerequisites are missing:\n{}", missing.explain()));
    }
    note(format!("environment setup failed: {error:?}"));
    let message = format!("environment setup failed: {error:#}");
    libtest_mimic::run(
        args,
        tests
            .iter()
            .map(|test| {
                let message = message.clone();
                Trial::test(test.name, move || Err(message.into()))
            })
            .collect(),
    )
}

/// How long one test may run. A test still running then hangs (a deadlock, a call
/// without a deadline): the process names it and exits with [`HANG_EXIT_CODE`], without
/// cleaning up, rather than keep a CI run waiting until its own time limit says nothing.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The exit code of a test binary that gave up on a hanging test.
pub const HANG_EXIT_CODE: i32 = 124;

/// A request to an executor thread: run test `index`, send the outcome to `reply`.
struct Job {
    index: usize,
    reply: mpsc::Sender<Result<(), Failed>>,
}

/// Runs the tests on scoped executor threads that borrow the environment.
///
/// libtest-mimic wants `'static` test closures, and a borrowed `&E` is not one. The
/// closures handed to it therefore only send the test's index to executor threads that
/// live in a `std::thread::scope` holding `&E`, and wait for the outcome. This needs only
/// `E: Sync`, and the environment is still dropped by the caller, on this thread.
fn run_tests<E: Sync>(args: &Arguments, env: &E, tests: &[Test<E>]) -> Conclusion {
    let threads = args
        .test_threads
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1)
        .max(1);
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Mutex::new(queue);
    std::thread::scope(|scope| {
        for n in 0..threads {
            let queue = &queue;
            let spawned = std::thread::Builder::new()
                .name(format!("test-executor-{n}"))
                .spawn_scoped(scope, move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok(job) = job else { return };
                        let _ = job.reply.send(run_one(&tests[job.index], env));
                    }
                });
            if let Err(err) = spawned {
                note(format!("cannot start test executor thread {n}: {err}"));
            }
        }
        let trials = tests
            .iter()
            .enumerate()
            .map(|(index, test)| {
                let jobs = jobs.clone();
                let name = test.name;
                Trial::test(name, move || {
                    let (reply, outcome) = mpsc::channel();
                    jobs.send(Job { index, reply })
                        .map_err(|_| Failed::from("no test executor is running"))?;
                    match outcome.recv_timeout(TEST_TIMEOUT) {
                        Ok(result) => result,
                        Err(RecvTimeoutError::Disconnected) => Err("the test executor died".into()),
                        Err(RecvTimeoutError::Timeout) => {
                            note(format!(
                                "test {name} still running after {TEST_TIMEOUT:?}: it hangs; \
                                 exiting with {HANG_EXIT_CODE} without cleaning up"
                            ));
                            std::process::exit(HANG_EXIT_CODE)
                        }
                    }
                })
            })
            .collect();
        // Once libtest-mimic has consumed every trial, no sender is left and the
        // executors' `recv` fails, so they return and the scope ends.
        drop(jobs);
        libtest_mimic::run(args, trials)
    })
}

fn run_one<E>(test: &Test<E>, env: &E) -> Result<(), Failed> {
    match catch_unwind(AssertUnwindSafe(|| (test.run)(env))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("{error:?}").into()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(format!("panicked: {message}").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn args(list: &[&str]) -> Arguments {
        Arguments::from_iter(
            ["test", "--logfile", "/dev/null"]
                .into_iter()
                .chain(list.iter().copied()),
        )
    }

    struct Env {
        runs: AtomicUsize,
    }

    fn passes(env: &Env) -> anyhow::Result<()> {
        env.runs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn fails(_: &Env) -> anyhow::Result<()> {
        anyhow::bail!("expected failure")
    }

    fn panics(_: &Env) -> anyhow::Result<()> {
        panic!("expected panic")
    }

    #[test]
    fn tests_share_the_environment_and_failures_count() {
        static DROPPED_AFTER: AtomicUsize = AtomicUsize::new(usize::MAX);
        struct Counted(Env);
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPPED_AFTER.store(self.0.runs.load(Ordering::SeqCst), Ordering::SeqCst);
            }
        }
        fn passes_counted(env: &Counted) -> anyhow::Result<()> {
            passes(&env.0)
        }
        fn fails_counted(env: &Counted) -> anyhow::Result<()> {
            fails(&env.0)
        }
        fn panics_counted(env: &Counted) -> anyhow::Result<()> {
            panics(&env.0)
        }
        let tests = vec![
            Test::new("a_passes", passes_counted),
            Test::new("b_passes", passes_counted),
            Test::new("fails", fails_counted),
            Test::new("panics", panics_counted),
        ];
        let conclusion = run_with_args(
            &args(&["--test-threads", "2"]),
            || {
                Ok(Counted(Env {
                    runs: AtomicUsize::new(0),
                }))
            },
            tests,
        );
        assert_eq!((conclusion.num_passed, conclusion.num_failed), (2, 2));
        // The environment was dropped once, after both passing tests used it.
        assert_eq!(DROPPED_AFTER.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn setup_is_skipped_when_no_test_is_selected() {
        let conclusion = run_with_args(
            &args(&["no_such_test"]),
            || -> anyhow::Result<Env> { panic!("setup must not run") },
            vec![Test::new("a_passes", passes)],
        );
        assert_eq!(conclusion.num_filtered_out, 1);
        assert_eq!(conclusion.num_passed, 0);
    }

    #[test]
    fn filters_select_tests() {
        let conclusion = run_with_args(
            &args(&["b_", "--test-threads", "1"]),
            || {
                Ok(Env {
                    runs: AtomicUsize::new(0),
                })
            },
            vec![Test::new("a_passes", passes), Test::new("b_passes", passes)],
        );
        assert_eq!((conclusion.num_passed, conclusion.num_filtered_out), (1, 1));
    }

    #[test]
    fn setup_failures_fail_every_selected_test() {
        let conclusion = run_with_args(
            &args(&[]),
            || -> anyhow::Result<Env> { anyhow::bail!("broken setup") },
            vec![Test::new("a_passes", passes), Test::new("b_passes", passes)],
        );
        assert_eq!(conclusion.num_failed, 2);
    }

    #[test]
    fn missing_prerequisites_fail_in_ci_and_ignore_elsewhere() {
        let conclusion = run_with_args(
            &args(&[]),
            || -> anyhow::Result<Env> { Err(anyhow::Error::new(Missing::new(["containerd"])).context("setup")) },
            vec![Test::new("a_passes", passes)],
        );
        if in_ci() {
            assert_eq!(conclusion.num_failed, 1);
        } else {
            assert_eq!((conclusion.num_ignored, conclusion.num_failed), (1, 0));
        }
    }

    #[test]
    fn duplicate_names_are_refused() {
        let conclusion = run_with_args(
            &args(&[]),
            || -> anyhow::Result<Env> { panic!("setup must not run") },
            vec![Test::new("same", passes), Test::new("same", passes)],
        );
        assert_eq!(conclusion.num_failed, 1);
    }
}
