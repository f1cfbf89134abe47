//! The runc backend and the per-container monitor against real runc, with busybox
//! bundles made here (`runc spec`, edited), independent of the spec builder.
//!
//! Every test runs its own containers in one shared runc root; they share the unpacked
//! busybox rootfs (read-only). Set `MONITOR_BINARY` to run the suite with another build
//! of `runtime-core-monitor` (e.g. `target/release/runtime-core-monitor`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runtime_core::image::unpack::unpack_layer;
use runtime_core::monitor::{self, ExitRecord, MonitorConfig, MonitorError, Started};
use runtime_core::oci::runc::{Runc, RuncError};
use serde_json::{Value, json};
use test_harness::host::InstanceRecord;
use test_harness::process::{is_alive, pids_with_cmdline_containing};
use test_harness::scratch::ScratchDir;
use test_harness::suite::{self, Test};
use test_harness::{note, test_images};

/// How long a test waits for a container to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

struct Env {
    rt: tokio::runtime::Runtime,
    runc: Runc,
    runc_binary: PathBuf,
    runc_root: PathBuf,
    monitor_binary: PathBuf,
    rootfs: PathBuf,
    /// `runc spec`'s default config.json, edited per container.
    base_spec: Value,
    dir: ScratchDir,
}

fn setup() -> anyhow::Result<Env> {
    test_harness::require_root()?;
    test_harness::require_tools(&["runc", "busybox"])?;
    let runc_binary = test_harness::find_tool("runc").context("runc not found")?;
    let dir = ScratchDir::create("monitor-test")?;
    // runc roots hold one directory per namespace (as containerd's do): the harness
    // reaps containers of a run that died from `<root>/<namespace>/<id>`.
    InstanceRecord {
        runc_roots: vec![dir.path().join("runc")],
        ..InstanceRecord::default()
    }
    .write(dir.path())?;
    let runc_root = dir.path().join("runc").join("test");

    let rootfs = dir.path().join("rootfs");
    fs::create_dir_all(&rootfs)?;
    let layer = test_images::busybox_layer()?;
    unpack_layer(layer.blob().as_ref(), None, &rootfs).context("unpacking busybox")?;

    let spec_dir = dir.path().join("spec");
    fs::create_dir_all(&spec_dir)?;
    let status = Command::new(&runc_binary).arg("spec").current_dir(&spec_dir).status()?;
    ensure!(status.success(), "runc spec: {status}");
    let base_spec = serde_json::from_slice(&fs::read(spec_dir.join("config.json"))?)?;

    let monitor_binary = std::env::var_os("MONITOR_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_runtime-core-monitor")));
    note(format!("monitor binary: {}", monitor_binary.display()));
    Ok(Env {
        rt: tokio::runtime::Runtime::new()?,
        runc: Runc::new(&runc_binary, &runc_root),
        runc_binary,
        runc_root,
        monitor_binary,
        rootfs,
        base_spec,
        dir,
    })
}

impl Drop for Env {
    fn drop(&mut self) {
        // Killing the containers makes their monitors record the exit and leave.
        let listed = self.rt.block_on(self.runc.list()).unwrap_or_default();
        for (id, _, _) in listed {
            if let Err(err) = self.rt.block_on(self.runc.delete(&id, true)) {
                note(format!("cannot delete container {id}: {err}"));
            }
        }
        let needle = format!("{}/", self.dir.path().display());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pids_with_cmdline_containing(&needle).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        let left = test_harness::process::kill_and_wait(&pids_with_cmdline_containing(&needle), Duration::from_secs(5));
        if !left.is_empty() {
            note(format!("processes {left:?} survive"));
        }
    }
}

/// One container made for a test, with its monitor.
struct Container<'a> {
    env: &'a Env,
    id: String,
    config: MonitorConfig,
    started: Started,
}

/// How a test wants its container.
struct Options {
    args: Vec<String>,
    terminal: bool,
    stdin: bool,
    log_max_line: usize,
    /// The cgroup memory limit, in bytes.
    memory_limit: Option<u64>,
    /// Share the host's pid namespace: orphans go to the monitor, not to a container init.
    host_pid: bool,
}

impl Options {
    fn new(args: &[&str]) -> Options {
        Options {
            args: args.iter().map(|a| a.to_string()).collect(),
            terminal: false,
            stdin: false,
            log_max_line: MonitorConfig::DEFAULT_LOG_MAX_LINE,
            memory_limit: None,
            host_pid: false,
        }
    }
}

impl Env {
    /// Writes a bundle for `name` running `options.args` and its monitor configuration.
    fn prepare(&self, name: &str, options: &Options) -> anyhow::Result<MonitorConfig> {
        let bundle = self.dir.path().join("bundles").join(name);
        fs::create_dir_all(&bundle)?;
        let mut spec = self.base_spec.clone();
        spec["process"]["args"] = json!(options.args);
        spec["process"]["terminal"] = json!(options.terminal);
        spec["root"] = json!({ "path": self.rootfs, "readonly": true });
        spec["hostname"] = json!(name);
        if options.host_pid
            && let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut()
        {
            namespaces.retain(|ns| ns["type"] != "pid");
        }
        if let Some(limit) = options.memory_limit {
            spec["linux"]["resources"]["memory"] = json!({ "limit": limit });
        }
        fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
        let logs = self.dir.path().join("logs");
        fs::create_dir_all(&logs)?;
        Ok(MonitorConfig {
            id: name.to_owned(),
            bundle,
            runc_binary: self.runc_binary.clone(),
            runc_root: self.runc_root.clone(),
            state_dir: self.dir.path().join("monitors").join(name),
            log_path: Some(logs.join(format!("{name}.log"))),
            log_max_line: options.log_max_line,
            stdin: options.stdin,
            tty: options.terminal,
        })
    }

    /// Creates container `name` (runc `created` state) through a monitor.
    fn create(&self, name: &str, options: Options) -> anyhow::Result<Container<'_>> {
        let config = self.prepare(name, &options)?;
        let started = self
            .rt
            .block_on(monitor::start(&self.monitor_binary, &config))
            .with_context(|| format!("starting the monitor of {name}"))?;
        Ok(Container {
            env: self,
            id: name.to_owned(),
            config,
            started,
        })
    }

    /// Creates and starts container `name`.
    fn run(&self, name: &str, options: Options) -> anyhow::Result<Container<'_>> {
        let container = self.create(name, options)?;
        self.rt.block_on(self.runc.start(name))?;
        Ok(container)
    }
}

impl Container<'_> {
    fn wait_for_exit(&self) -> anyhow::Result<ExitRecord> {
        self.env
            .rt
            .block_on(monitor::wait_for_exit(&self.config.state_dir, EXIT_TIMEOUT))
            .with_context(|| format!("{} did not exit within {EXIT_TIMEOUT:?}", self.id))
    }

    fn log_path(&self) -> &Path {
        self.config.log_path.as_deref().unwrap_or(Path::new("/nonexistent"))
    }

    /// The records of the log file: (stream, tag, content).
    fn log_records(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        read_records(self.log_path())
    }

    fn status(&self) -> anyhow::Result<String> {
        let state = self.env.rt.block_on(self.env.runc.state(&self.id))?;
        Ok(state.map(|s| s.status).unwrap_or_default())
    }
}

/// Parses a CRI log file, checking each record's timestamp.
fn read_records(path: &Path) -> anyhow::Result<Vec<(String, String, String)>> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let mut records = Vec::new();
    for line in text.split_terminator('\n') {
        let mut fields = line.splitn(4, ' ');
        let (Some(time), Some(stream), Some(tag), Some(content)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            bail!("malformed log line {line:?}");
        };
        let b = time.as_bytes();
        ensure!(
            b.len() == 30 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[29] == b'Z',
            "timestamp {time:?} is not RFC 3339 with nanoseconds in UTC"
        );
        records.push((stream.to_owned(), tag.to_owned(), content.to_owned()));
    }
    Ok(records)
}

fn record(stream: &str, tag: &str, content: &str) -> (String, String, String) {
    (stream.into(), tag.into(), content.into())
}

/// Polls `check` every 20 ms until it is true or `timeout` passes.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fields 4 (ppid), 5 (pgrp) and 6 (session) of /proc/PID/stat.
fn parent_group_session(pid: u32) -> anyhow::Result<(u32, u32, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, rest) = stat.rsplit_once(')').context("malformed stat")?;
    let fields: Vec<u32> = rest
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    ensure!(fields.len() == 3, "malformed stat {stat:?}");
    Ok((fields[0], fields[1], fields[2]))
}

// ---------------------------------------------------------------------------------------
// The monitor

fn output_and_exit_code_are_recorded(env: &Env) -> anyhow::Result<()> {
    let container = env.create(
        "exit3",
        Options::new(&["sh", "-c", "echo out; echo err >&2; printf 'a\\r\\nb'; exit 3"]),
    )?;
    ensure!(container.status()? == "created", "the container waits in created state");
    ensure!(
        container.started.container_pid == env.rt.block_on(env.runc.state("exit3"))?.map_or(0, |s| s.pid),
        "the reported pid is runc's init pid"
    );
    ensure!(monitor::monitor_running(&container.config.state_dir));
    ensure!(monitor::exit_status(&container.config.state_dir).is_none());
    env.rt.block_on(env.runc.start("exit3"))?;

    let exit = container.wait_for_exit()?;
    ensure!(
        exit.exit_code == 3 && exit.signal.is_none() && !exit.oom_killed,
        "{exit:?}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as i64;
    ensure!(
        (now - exit.finished_at_nanos).abs() < 60_000_000_000,
        "finished_at {exit:?} is now"
    );
    let records = container.log_records()?;
    let stdout: Vec<_> = records.iter().filter(|r| r.0 == "stdout").cloned().collect();
    let stderr: Vec<_> = records.iter().filter(|r| r.0 == "stderr").cloned().collect();
    ensure!(
        stdout
            == [
                record("stdout", "F", "out"),
                record("stdout", "F", "a"),
                record("stdout", "P", "b")
            ],
        "stdout records: {stdout:?}"
    );
    ensure!(stderr == [record("stderr", "F", "err")], "stderr records: {stderr:?}");
    ensure!(
        eventually(Duration::from_secs(5), || !monitor::monitor_running(
            &container.config.state_dir
        )),
        "the monitor exits after recording the exit"
    );
    Ok(())
}

fn long_lines_are_split_into_partial_records(env: &Env) -> anyhow::Result<()> {
    let options = Options {
        log_max_line: 1000,
        ..Options::new(&["sh", "-c", "head -c 2500 /dev/zero | tr '\\0' x; echo; echo short"])
    };
    let container = env.run("longline", options)?;
    ensure!(container.wait_for_exit()?.exit_code == 0);
    let records = container.log_records()?;
    let shape: Vec<(String, usize)> = records.iter().map(|r| (r.1.clone(), r.2.len())).collect();
    let want: Vec<(String, usize)> = vec![
        ("P".into(), 1000),
        ("P".into(), 1000),
        ("F".into(), 500),
        ("F".into(), 5),
    ];
    ensure!(shape == want, "record tags and lengths {shape:?}");
    ensure!(records[..3].iter().all(|r| r.2.bytes().all(|b| b == b'x')));
    Ok(())
}

fn reopened_logs_continue_in_a_new_file(env: &Env) -> anyhow::Result<()> {
    let container = env.run(
        "reopen",
        Options::new(&[
            "sh",
            "-c",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done",
        ]),
    )?;
    let log = container.log_path().to_owned();
    let rotated = log.with_extension("log.1");
    ensure!(
        eventually(Duration::from_secs(10), || read_records(&log)
            .is_ok_and(|r| r.len() >= 3)),
        "the container logs"
    );
    fs::rename(&log, &rotated)?;
    monitor::reopen_log(&container.config.state_dir)?;
    ensure!(
        eventually(Duration::from_secs(10), || read_records(&log)
            .is_ok_and(|r| r.len() >= 3)),
        "output goes to a new file after reopening"
    );
    env.rt.block_on(env.runc.kill("reopen", 9, false))?;
    let exit = container.wait_for_exit()?;
    ensure!(exit.exit_code == 137, "{exit:?}");

    // Nothing was lost or duplicated across the rotation.
    let numbers: Vec<u64> = read_records(&rotated)?
        .into_iter()
        .chain(read_records(&log)?)
        .map(|(_, _, content)| content.trim_start_matches("line ").parse().unwrap_or(u64::MAX))
        .collect();
    ensure!(
        numbers.iter().enumerate().all(|(i, n)| *n == i as u64),
        "lines across both files: {numbers:?}"
    );

    // Once the monitor is gone, reopening says so.
    ensure!(eventually(Duration::from_secs(5), || !monitor::monitor_running(
        &container.config.state_dir
    )));
    match monitor::reopen_log(&container.config.state_dir) {
        Err(MonitorError::NotRunning) => Ok(()),
        other => bail!("reopen_log without a monitor: {other:?}"),
    }
}

fn sigkill_is_recorded_as_137(env: &Env) -> anyhow::Result<()> {
    let container = env.run("killed", Options::new(&["sleep", "1000"]))?;
    ensure!(container.status()? == "running");
    ensure!(
        env.rt
            .block_on(monitor::wait_for_exit(
                &container.config.state_dir,
                Duration::from_millis(200)
            ))
            .is_none(),
        "no exit while it runs"
    );
    env.rt.block_on(env.runc.kill("killed", 9, false))?;
    let exit = container.wait_for_exit()?;
    ensure!(exit.exit_code == 137 && exit.signal == Some(9), "{exit:?}");
    // runc sees it stopped until the monitor deletes its state, right after the exit record.
    let status = container.status()?;
    ensure!(status == "stopped" || status.is_empty(), "runc status {status:?}");
    // Killing a stopped or deleted container is not an error.
    env.rt.block_on(env.runc.kill("killed", 9, false))?;
    env.rt.block_on(env.runc.kill("killed", 15, true))?;
    env.rt.block_on(env.runc.delete("killed", false))?;
    Ok(())
}

fn monitors_run_in_their_own_session(env: &Env) -> anyhow::Result<()> {
    // A bare runtime name is looked up in PATH, as a runtime handler may name it.
    let mut config = env.prepare("session", &Options::new(&["sleep", "1000"]))?;
    config.runc_binary = PathBuf::from("runc");
    let started = env.rt.block_on(monitor::start(&env.monitor_binary, &config))?;
    let container = Container {
        env,
        id: "session".into(),
        config,
        started,
    };
    env.rt.block_on(env.runc.start("session"))?;
    let monitor_pid = container.started.monitor_pid;
    ensure!(monitor::monitor_pid(&container.config.state_dir) == Some(monitor_pid));
    let (_, group, session) = parent_group_session(monitor_pid)?;
    let (_, _, our_session) = parent_group_session(std::process::id())?;
    ensure!(
        session == monitor_pid && group == monitor_pid && session != our_session,
        "monitor {monitor_pid}: group {group}, session {session} (ours {our_session})"
    );
    // The container's init is the monitor's child (it is a subreaper).
    let (init_parent, _, _) = parent_group_session(container.started.container_pid)?;
    ensure!(
        init_parent == monitor_pid,
        "init's parent is {init_parent}, not the monitor"
    );
    env.rt.block_on(env.runc.kill("session", 9, false))?;
    container.wait_for_exit()?;
    Ok(())
}

fn monitors_outlive_a_killed_daemon(env: &Env) -> anyhow::Result<()> {
    // A stand-in daemon: a shell that starts the monitor and waits for it, killed with
    // SIGKILL once the container is created.
    let config = env.prepare("orphan", &Options::new(&["sleep", "1000"]))?;
    fs::create_dir_all(&config.state_dir)?;
    let mut daemon = Command::new("sh")
        .arg("-c")
        .arg("\"$@\" & wait")
        .arg("sh")
        .arg(&env.monitor_binary)
        .args(config.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(config.state_dir.join(monitor::MONITOR_LOG))?)
        .spawn()?;
    let mut report = String::new();
    BufReader::new(daemon.stdout.take().context("stdout")?).read_line(&mut report)?;
    ensure!(report.starts_with(monitor::REPORT_CREATED), "report {report:?}");
    let monitor_pid = monitor::monitor_pid(&config.state_dir).context("monitor pid")?;
    ensure!(parent_group_session(monitor_pid)?.0 == daemon.id());

    daemon.kill()?;
    daemon.wait()?;
    ensure!(
        eventually(Duration::from_secs(5), || parent_group_session(monitor_pid)
            .is_ok_and(|p| p.0 != daemon.id())),
        "the monitor is reparented"
    );
    ensure!(
        monitor::monitor_running(&config.state_dir),
        "the monitor survives its daemon"
    );

    env.rt.block_on(env.runc.start("orphan"))?;
    ensure!(
        env.rt
            .block_on(env.runc.state("orphan"))?
            .is_some_and(|s| s.status == "running")
    );
    env.rt.block_on(env.runc.kill("orphan", 9, false))?;
    let exit = env
        .rt
        .block_on(monitor::wait_for_exit(&config.state_dir, EXIT_TIMEOUT))
        .context("exit recorded by the orphaned monitor")?;
    ensure!(exit.exit_code == 137, "{exit:?}");
    Ok(())
}

fn create_failures_carry_runc_errors(env: &Env) -> anyhow::Result<()> {
    let config = env.prepare("nosuchbinary", &Options::new(&["/no/such/binary"]))?;
    match env.rt.block_on(monitor::start(&env.monitor_binary, &config)) {
        Err(MonitorError::Create(text)) => {
            ensure!(text.contains("no such file"), "runc's error: {text:?}");
            note(format!("runc create error as reported: {text}"));
        }
        other => bail!("start of a container without its binary: {other:?}"),
    }
    ensure!(eventually(Duration::from_secs(5), || !monitor::monitor_running(
        &config.state_dir
    )));
    ensure!(monitor::exit_status(&config.state_dir).is_none());
    ensure!(
        !config.state_dir.join(monitor::CONTROL_SOCKET).exists(),
        "the failed monitor cleaned up"
    );

    // A log that cannot be opened fails the start before runc runs.
    let mut unloggable = env.prepare("unloggable", &Options::new(&["true"]))?;
    unloggable.log_path = Some(env.dir.path().join("no-such-dir").join("c.log"));
    match env.rt.block_on(monitor::start(&env.monitor_binary, &unloggable)) {
        Err(MonitorError::Create(text)) => ensure!(text.contains("opening log"), "{text:?}"),
        other => bail!("start with an unwritable log: {other:?}"),
    }
    ensure!(env.rt.block_on(env.runc.state("unloggable"))?.is_none());
    ensure!(
        env.rt.block_on(env.runc.state("nosuchbinary"))?.is_none(),
        "runc cleaned up"
    );
    Ok(())
}

fn terminal_output_is_logged_as_stdout(env: &Env) -> anyhow::Result<()> {
    let options = Options {
        terminal: true,
        ..Options::new(&["sh", "-c", "echo hello; echo oops >&2; tty; exit 2"])
    };
    let container = env.run("terminal", options)?;
    ensure!(container.wait_for_exit()?.exit_code == 2);
    let records = container.log_records()?;
    ensure!(
        // The terminal's `\r\n` line ends lose their `\r`, as with containerd.
        records.first() == Some(&record("stdout", "F", "hello"))
            && records.get(1) == Some(&record("stdout", "F", "oops"))
            && records.get(2).is_some_and(|r| r.2.starts_with("/dev/pts/")),
        "terminal records: {records:?}"
    );
    Ok(())
}

fn stdin_is_kept_open_when_asked(env: &Env) -> anyhow::Result<()> {
    // `cat` ends at once on /dev/null, and waits on a stdin kept open.
    let closed = env.run("stdin-null", Options::new(&["cat"]))?;
    ensure!(closed.wait_for_exit()?.exit_code == 0);
    let open = env.run(
        "stdin-open",
        Options {
            stdin: true,
            ..Options::new(&["cat"])
        },
    )?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(open.status()? == "running", "cat waits for input");
    // SIGKILL: as pid 1 of its namespace, cat ignores SIGTERM.
    env.rt.block_on(env.runc.kill("stdin-open", 9, false))?;
    ensure!(open.wait_for_exit()?.exit_code == 137);
    Ok(())
}

fn orphans_are_reaped_at_once(env: &Env) -> anyhow::Result<()> {
    // In the host's pid namespace, the background sleeps' parents exit at once, and the
    // monitor (a subreaper) inherits them.
    let options = Options {
        host_pid: true,
        ..Options::new(&["sh", "-c", "(sleep 0.2 &); (sleep 0.2 &); (sleep 0.2 &); sleep 1.5"])
    };
    let container = env.run("orphans", options)?;
    let monitor_pid = container.started.monitor_pid;
    let children = |state: Option<&str>| -> Vec<u32> {
        fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                let Some((_, rest)) = stat.rsplit_once(')') else {
                    return false;
                };
                let fields: Vec<&str> = rest.split_whitespace().take(2).collect();
                fields.get(1) == Some(&monitor_pid.to_string().as_str())
                    && state.is_none_or(|state| fields.first() == Some(&state))
            })
            .collect()
    };
    ensure!(
        eventually(Duration::from_secs(5), || children(None).len() >= 2),
        "the orphans become the monitor's children: {:?}",
        children(None)
    );
    std::thread::sleep(Duration::from_millis(600));
    ensure!(children(Some("Z")).is_empty(), "zombies: {:?}", children(Some("Z")));
    ensure!(
        children(None) == [container.started.container_pid],
        "only the init is left"
    );
    ensure!(container.wait_for_exit()?.exit_code == 0);
    Ok(())
}

fn oom_kills_are_recorded(env: &Env) -> anyhow::Result<()> {
    // The shell holds 100 MB in a variable under a 16 MiB limit.
    let options = Options {
        memory_limit: Some(16 << 20),
        ..Options::new(&[
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
        ])
    };
    let container = env.run("oom", options)?;
    let exit = container.wait_for_exit()?;
    ensure!(exit.oom_killed && exit.exit_code == 137, "{exit:?}");
    Ok(())
}

fn monitor_memory_is_small(env: &Env) -> anyhow::Result<()> {
    let containers = (0..3)
        .map(|i| env.run(&format!("memory{i}"), Options::new(&["sleep", "1000"])))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(200));
    let mut worst_pss = 0;
    for container in &containers {
        let rollup = fs::read_to_string(format!("/proc/{}/smaps_rollup", container.started.monitor_pid))?;
        let field = |name: &str| -> u64 {
            rollup
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse().ok())
                .unwrap_or(0)
        };
        let (rss, pss) = (field("Rss:"), field("Pss:"));
        note(format!(
            "monitor of {} ({}): RSS {rss} kB, PSS {pss} kB (anon {} kB, file {} kB)",
            container.id,
            env.monitor_binary.display(),
            field("Pss_Anon:"),
            field("Pss_File:")
        ));
        worst_pss = worst_pss.max(pss);
    }
    // The issue's target is 1 MB of PSS per container; a debug build is bigger.
    ensure!(worst_pss < 2048, "monitor PSS {worst_pss} kB");
    for container in &containers {
        env.rt.block_on(env.runc.kill(&container.id, 9, false))?;
        container.wait_for_exit()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The runc backend

fn exec_returns_output_and_exit_code(env: &Env) -> anyhow::Result<()> {
    let container = env.run("exec", Options::new(&["sleep", "1000"]))?;
    let cmd = ["sh", "-c", "echo out; echo err >&2; echo $HOME $PWD; exit 5"].map(String::from);
    let output = env
        .rt
        .block_on(env.runc.exec("exec", &cmd, Some(Duration::from_secs(10))))?;
    ensure!(
        output.stdout == b"out\n/root /\n",
        "stdout {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    ensure!(
        output.stderr == b"err\n",
        "stderr {:?}",
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(output.exit_code == 5);

    let killed = env.rt.block_on(
        env.runc
            .exec("exec", &["sh", "-c", "kill -9 $$"].map(String::from), None),
    )?;
    ensure!(
        killed.exit_code == 137,
        "exit code of a killed exec: {}",
        killed.exit_code
    );

    match env
        .rt
        .block_on(env.runc.exec("exec", &["no-such-command".into()], None))
    {
        Err(RuncError::Failed { message, .. }) => {
            ensure!(
                message.contains("executable file not found"),
                "runc's error: {message:?}"
            )
        }
        other => bail!("exec of a missing command: {other:?}"),
    }
    ensure!(matches!(
        env.rt.block_on(env.runc.exec("exec", &[], None)),
        Err(RuncError::EmptyCommand { .. })
    ));
    env.rt.block_on(env.runc.kill("exec", 9, false))?;
    container.wait_for_exit()?;
    match env.rt.block_on(env.runc.exec("exec", &["true".into()], None)) {
        // Stopped, or already gone: the monitor deletes runc's state once it recorded the exit.
        Err(RuncError::Failed { message, .. }) => {
            ensure!(
                message.contains("stopped") || message.contains("does not exist"),
                "{message:?}"
            )
        }
        other => bail!("exec in an exited container: {other:?}"),
    }
    Ok(())
}

fn exec_timeouts_kill_everything_they_started(env: &Env) -> anyhow::Result<()> {
    let container = env.run("exectimeout", Options::new(&["sleep", "1000"]))?;
    let started = Instant::now();
    let cmd = ["sh", "-c", "sleep 6061 & sleep 6060"].map(String::from);
    let result = env
        .rt
        .block_on(env.runc.exec("exectimeout", &cmd, Some(Duration::from_secs(1))));
    let elapsed = started.elapsed();
    ensure!(matches!(result, Err(RuncError::Timeout { .. })), "{result:?}");
    ensure!(elapsed < Duration::from_millis(2500), "returned after {elapsed:?}");
    nothing_left_of_exec("exectimeout", &["sleep 6060", "sleep 6061"])?;

    // An exec whose caller gives up (the future is dropped) is killed all the same.
    let cmd = ["sh", "-c", "sleep 6063 & sleep 6062"].map(String::from);
    let abandoned = env.rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(800), env.runc.exec("exectimeout", &cmd, None)).await
    });
    ensure!(
        abandoned.is_err(),
        "the exec outlived its caller's timeout: {abandoned:?}"
    );
    nothing_left_of_exec("exectimeout", &["sleep 6062", "sleep 6063"])?;

    ensure!(container.status()? == "running", "the container itself is untouched");
    env.rt.block_on(env.runc.kill("exectimeout", 9, false))?;
    container.wait_for_exit()?;
    Ok(())
}

/// Fails unless, within 2 s, no process runs whose command line holds one of `markers`,
/// and no `runc exec` into container `id` runs.
fn nothing_left_of_exec(id: &str, markers: &[&str]) -> anyhow::Result<()> {
    let leftovers = || {
        let mut pids: Vec<u32> = markers.iter().flat_map(|m| pids_with_cmdline_containing(m)).collect();
        pids.extend(
            pids_with_cmdline_containing(" exec --pid-file ")
                .into_iter()
                .filter(|&pid| test_harness::process::cmdline(pid).contains(&format!(" {id} "))),
        );
        pids
    };
    ensure!(
        eventually(Duration::from_secs(2), || leftovers().is_empty()),
        "left running: {:?}",
        leftovers()
            .iter()
            .map(|&pid| format!("{pid}: {}", test_harness::process::cmdline(pid)))
            .collect::<Vec<_>>()
    );
    Ok(())
}

fn delete_is_idempotent_and_unknown_ids_are_none(env: &Env) -> anyhow::Result<()> {
    let container = env.create("deleted", Options::new(&["sleep", "1000"]))?;
    let listed = env.rt.block_on(env.runc.list())?;
    ensure!(
        listed
            .iter()
            .any(|(id, status, pid)| id == "deleted" && status == "created" && *pid == container.started.container_pid),
        "list: {listed:?}"
    );
    env.rt.block_on(env.runc.delete("deleted", true))?;
    env.rt.block_on(env.runc.delete("deleted", true))?;
    env.rt.block_on(env.runc.delete("deleted", false))?;
    ensure!(env.rt.block_on(env.runc.state("deleted"))?.is_none());
    ensure!(
        !env.rt
            .block_on(env.runc.list())?
            .iter()
            .any(|(id, _, _)| id == "deleted")
    );
    // A created container deleted with force was killed: its monitor says so.
    let exit = container.wait_for_exit()?;
    ensure!(exit.exit_code == 137, "{exit:?}");

    ensure!(env.rt.block_on(env.runc.state("never-existed"))?.is_none());
    env.rt.block_on(env.runc.kill("never-existed", 9, true))?;
    match env.rt.block_on(env.runc.start("never-existed")) {
        Err(RuncError::Failed { message, .. }) => ensure!(message.contains("does not exist"), "{message:?}"),
        other => bail!("start of an unknown container: {other:?}"),
    }
    Ok(())
}

fn update_changes_the_cgroup(env: &Env) -> anyhow::Result<()> {
    let container = env.run("updated", Options::new(&["sleep", "1000"]))?;
    env.rt
        .block_on(env.runc.update("updated", br#"{"pids":{"limit":42}}"#))?;
    let cgroups = fs::read_to_string(format!("/proc/{}/cgroup", container.started.container_pid))?;
    let (v1, v2) = cgroups.lines().fold((None, None), |(v1, v2), line| {
        let parts: Vec<&str> = line.splitn(3, ':').collect();
        match parts.as_slice() {
            [_, controllers, path] if controllers.split(',').any(|c| c == "pids") => (Some(path.to_string()), v2),
            [_, "", path] => (v1, Some(path.to_string())),
            _ => (v1, v2),
        }
    });
    let pids_max = match (v1, v2) {
        (Some(path), _) => format!("/sys/fs/cgroup/pids{path}/pids.max"),
        (None, Some(path)) => format!("/sys/fs/cgroup{path}/pids.max"),
        _ => bail!("no pids cgroup in {cgroups:?}"),
    };
    let limit = fs::read_to_string(&pids_max)?;
    ensure!(limit.trim() == "42", "{pids_max}: {limit:?}");
    ensure!(matches!(
        env.rt.block_on(env.runc.update("updated", b"not json")),
        Err(RuncError::Failed { .. })
    ));
    env.rt.block_on(env.runc.kill("updated", 9, false))?;
    container.wait_for_exit()?;
    ensure!(!is_alive(container.started.container_pid));
    Ok(())
}

fn main() -> ExitCode {
    suite::run(
        setup,
        vec![
            Test::new("output_and_exit_code_are_recorded", output_and_exit_code_are_recorded),
            Test::new(
                "long_lines_are_split_into_partial_records",
                long_lines_are_split_into_partial_records,
            ),
            Test::new(
                "reopened_logs_continue_in_a_new_file",
                reopened_logs_continue_in_a_new_file,
            ),
            Test::new("sigkill_is_recorded_as_137", sigkill_is_recorded_as_137),
            Test::new("monitors_run_in_their_own_session", monitors_run_in_their_own_session),
            Test::new("monitors_outlive_a_killed_daemon", monitors_outlive_a_killed_daemon),
            Test::new("create_failures_carry_runc_errors", create_failures_carry_runc_errors),
            Test::new(
                "terminal_output_is_logged_as_stdout",
                terminal_output_is_logged_as_stdout,
            ),
            Test::new("stdin_is_kept_open_when_asked", stdin_is_kept_open_when_asked),
            Test::new("orphans_are_reaped_at_once", orphans_are_reaped_at_once),
            Test::new("oom_kills_are_recorded", oom_kills_are_recorded),
            Test::new("monitor_memory_is_small", monitor_memory_is_small),
            Test::new("exec_returns_output_and_exit_code", exec_returns_output_and_exit_code),
            Test::new(
                "exec_timeouts_kill_everything_they_started",
                exec_timeouts_kill_everything_they_started,
            ),
            Test::new(
                "delete_is_idempotent_and_unknown_ids_are_none",
                delete_is_idempotent_and_unknown_ids_are_none,
            ),
            Test::new("update_changes_the_cgroup", update_changes_the_cgroup),
        ],
    )
}
