//! The monitor's command line: how the daemon hands a [`MonitorConfig`] to the monitor
//! process. Written by hand (no clap) to keep the monitor small.
//!
//! ```text
//! runtime-core-monitor --id ID --bundle DIR --runc PATH --runc-root DIR --state-dir DIR
//!                      [--log-path FILE] [--log-max-line BYTES] [--stdin] [--tty]
//! ```
//!
//! Values are taken as they are (paths need not be UTF-8); each option appears at most once.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use super::MonitorConfig;

/// The container id.
const ID: &str = "--id";
/// The OCI bundle directory.
const BUNDLE: &str = "--bundle";
/// The runc-compatible binary.
const RUNC: &str = "--runc";
/// runc's `--root` state directory.
const RUNC_ROOT: &str = "--runc-root";
/// The monitor's own directory.
const STATE_DIR: &str = "--state-dir";
/// The CRI log file.
const LOG_PATH: &str = "--log-path";
/// The longest log record content.
const LOG_MAX_LINE: &str = "--log-max-line";
/// Keep the container's stdin open.
const STDIN: &str = "--stdin";
/// Give the container a terminal.
const TTY: &str = "--tty";

/// A command line the monitor cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An option this monitor does not know.
    #[error("unknown argument {0:?}")]
    Unknown(OsString),
    /// An option that needs a value came last.
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    /// An option was given twice.
    #[error("{0} given twice")]
    Repeated(&'static str),
    /// A required option is absent.
    #[error("{0} is required")]
    Required(&'static str),
    /// A value that does not parse.
    #[error("invalid value {value:?} for {option}")]
    Invalid {
        /// The option.
        option: &'static str,
        /// What was given.
        value: OsString,
    },
}

impl MonitorConfig {
    /// The monitor's command line for this configuration (without the program name).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::with_capacity(16);
        let mut push = |option: &str, value: &OsStr| {
            args.push(option.into());
            args.push(value.to_owned());
        };
        push(ID, self.id.as_ref());
        push(BUNDLE, self.bundle.as_os_str());
        push(RUNC, self.runc_binary.as_os_str());
        push(RUNC_ROOT, self.runc_root.as_os_str());
        push(STATE_DIR, self.state_dir.as_os_str());
        if let Some(log_path) = &self.log_path {
            push(LOG_PATH, log_path.as_os_str());
        }
        push(LOG_MAX_LINE, self.log_max_line.to_string().as_ref());
        if self.stdin {
            args.push(STDIN.into());
        }
        if self.tty {
            args.push(TTY.into());
        }
        args
    }

    /// Parses a command line made by [`MonitorConfig::to_args`] (without the program
    /// name). An absent or zero `--log-max-line` means
    /// [`MonitorConfig::DEFAULT_LOG_MAX_LINE`].
    pub fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<MonitorConfig, ArgsError> {
        let mut id = None;
        let mut bundle = None;
        let mut runc_binary = None;
        let mut runc_root = None;
        let mut state_dir = None;
        let mut log_path = None;
        let mut log_max_line = None;
        let mut stdin = false;
        let mut tty = false;

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(option) = [
                ID,
                BUNDLE,
                RUNC,
                RUNC_ROOT,
                STATE_DIR,
                LOG_PATH,
                LOG_MAX_LINE,
                STDIN,
                TTY,
            ]
            .into_iter()
            .find(|option| arg == *option) else {
                return Err(ArgsError::Unknown(arg));
            };
            if option == STDIN || option == TTY {
                let flag = if option == STDIN { &mut stdin } else { &mut tty };
                if std::mem::replace(flag, true) {
                    return Err(ArgsError::Repeated(option));
                }
                continue;
            }
            let value = args.next().ok_or(ArgsError::MissingValue(option))?;
            let slot = match option {
                ID => &mut id,
                BUNDLE => &mut bundle,
                RUNC => &mut runc_binary,
                RUNC_ROOT => &mut runc_root,
                STATE_DIR => &mut state_dir,
                LOG_PATH => &mut log_path,
                _ => &mut log_max_line,
            };
            if slot.replace(value).is_some() {
                return Err(ArgsError::Repeated(option));
            }
        }

        let id = id.ok_or(ArgsError::Required(ID))?;
        let id = id
            .into_string()
            .map_err(|value| ArgsError::Invalid { option: ID, value })?;
        if id.is_empty() {
            return Err(ArgsError::Invalid {
                option: ID,
                value: OsString::new(),
            });
        }
        let log_max_line = match log_max_line {
            None => MonitorConfig::DEFAULT_LOG_MAX_LINE,
            Some(value) => match value.to_str().and_then(|text| text.parse::<usize>().ok()) {
                Some(0) => MonitorConfig::DEFAULT_LOG_MAX_LINE,
                Some(bytes) => bytes,
                None => {
                    return Err(ArgsError::Invalid {
                        option: LOG_MAX_LINE,
                        value,
                    });
                }
            },
        };
        let required = |value: Option<OsString>, option| value.map(PathBuf::from).ok_or(ArgsError::Required(option));
        Ok(MonitorConfig {
            id,
            bundle: required(bundle, BUNDLE)?,
            runc_binary: required(runc_binary, RUNC)?,
            runc_root: required(runc_root, RUNC_ROOT)?,
            state_dir: required(state_dir, STATE_DIR)?,
            log_path: log_path.map(PathBuf::from),
            log_max_line,
            stdin,
            tty,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn config() -> MonitorConfig {
        MonitorConfig {
            id: "abc123".into(),
            bundle: "/run/rc/bundles/abc123".into(),
            runc_binary: "/usr/sbin/runc".into(),
            runc_root: "/run/rc/runc".into(),
            state_dir: "/run/rc/monitors/abc123".into(),
            log_path: Some("/var/log/pods/ns_pod_uid/c/0.log".into()),
            log_max_line: 1024,
            stdin: false,
            tty: false,
        }
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn configurations_survive_the_command_line() {
        let non_utf8 = PathBuf::from(OsString::from_vec(b"/logs/\xff.log".to_vec()));
        let cases = [
            ("everything", config()),
            (
                "no log, stdin and tty",
                MonitorConfig {
                    log_path: None,
                    stdin: true,
                    tty: true,
                    ..config()
                },
            ),
            (
                "a path that is not utf-8",
                MonitorConfig {
                    log_path: Some(non_utf8),
                    ..config()
                },
            ),
        ];
        for (desc, config) in cases {
            assert_eq!(MonitorConfig::from_args(config.to_args()), Ok(config), "{desc}");
        }
    }

    #[test]
    fn the_line_length_defaults() {
        let mut args = config().to_args();
        let at = args.iter().position(|arg| arg == LOG_MAX_LINE).expect("present");
        args[at + 1] = "0".into();
        let parsed = MonitorConfig::from_args(args.clone()).expect("parses");
        assert_eq!(parsed.log_max_line, MonitorConfig::DEFAULT_LOG_MAX_LINE);
        args.drain(at..at + 2);
        let parsed = MonitorConfig::from_args(args).expect("parses");
        assert_eq!(parsed.log_max_line, MonitorConfig::DEFAULT_LOG_MAX_LINE);
    }

    #[test]
    fn bad_command_lines_are_refused() {
        let minimal = [
            "--id",
            "c",
            "--bundle",
            "/b",
            "--runc",
            "/r",
            "--runc-root",
            "/rr",
            "--state-dir",
            "/s",
        ];
        assert!(MonitorConfig::from_args(os(&minimal)).is_ok());
        let with = |extra: &[&str]| MonitorConfig::from_args(os(&[&minimal[..], extra].concat()));
        let cases: &[(&str, Result<MonitorConfig, ArgsError>, ArgsError)] = &[
            (
                "unknown option",
                with(&["--verbose"]),
                ArgsError::Unknown("--verbose".into()),
            ),
            (
                "value missing",
                with(&["--log-path"]),
                ArgsError::MissingValue(LOG_PATH),
            ),
            ("repeated option", with(&["--id", "d"]), ArgsError::Repeated(ID)),
            ("repeated flag", with(&["--tty", "--tty"]), ArgsError::Repeated(TTY)),
            (
                "line length not a number",
                with(&["--log-max-line", "16k"]),
                ArgsError::Invalid {
                    option: LOG_MAX_LINE,
                    value: "16k".into(),
                },
            ),
            (
                "state dir missing",
                MonitorConfig::from_args(os(&minimal[..8])),
                ArgsError::Required(STATE_DIR),
            ),
            (
                "empty id",
                MonitorConfig::from_args(os(&[&["--id", ""], &minimal[2..]].concat())),
                ArgsError::Invalid {
                    option: ID,
                    value: "".into(),
                },
            ),
        ];
        for (desc, got, want) in cases {
            assert_eq!(got.as_ref().err(), Some(want), "{desc}");
        }
    }
}
