//! The command lines of the harness's programs (`soak`, `conformance`): flags written
//! `--flag value` or `--flag=value`, read one at a time.
//!
//! ```
//! use test_harness::cli::Flags;
//!
//! let mut flags = Flags::new(["--pods=3", "--output", "/tmp/x", "--verbose"].map(String::from).into_iter());
//! let mut seen = Vec::new();
//! while let Some(flag) = flags.next_flag() {
//!     match flag.name() {
//!         "--verbose" => seen.push("verbose".to_string()),
//!         _ => seen.push(flags.value(&flag).unwrap()),
//!     }
//! }
//! assert_eq!(seen, ["3", "/tmp/x", "verbose"]);
//! ```

use anyhow::Context;

/// The arguments after a program's name, read as flags.
#[derive(Debug)]
pub struct Flags<I> {
    args: I,
}

/// One flag: its name and, if written `--flag=value`, its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    name: String,
    inline: Option<String>,
}

impl Flag {
    /// The flag as written before any `=` (`--pods`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<I: Iterator<Item = String>> Flags<I> {
    /// Reads flags from `args` (without the program's name).
    pub fn new(args: I) -> Flags<I> {
        Flags { args }
    }

    /// The next flag, or `None` at the end.
    pub fn next_flag(&mut self) -> Option<Flag> {
        let arg = self.args.next()?;
        Some(match arg.split_once('=') {
            Some((name, value)) => Flag {
                name: name.to_string(),
                inline: Some(value.to_string()),
            },
            None => Flag {
                name: arg,
                inline: None,
            },
        })
    }

    /// The value of `flag`: what followed its `=`, else the next argument; an error
    /// naming the flag if there is none.
    pub fn value(&mut self, flag: &Flag) -> anyhow::Result<String> {
        flag.inline
            .clone()
            .or_else(|| self.args.next())
            .with_context(|| format!("{} needs a value", flag.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags<std::vec::IntoIter<String>> {
        Flags::new(args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>().into_iter())
    }

    #[test]
    fn a_value_follows_the_flag_or_its_equals_sign() {
        let mut args = flags(&["--a", "1", "--b=2=3"]);
        let a = args.next_flag().unwrap();
        assert_eq!((a.name(), args.value(&a).unwrap().as_str()), ("--a", "1"));
        let b = args.next_flag().unwrap();
        assert_eq!((b.name(), args.value(&b).unwrap().as_str()), ("--b", "2=3"));
        assert_eq!(args.next_flag(), None);
    }

    #[test]
    fn a_missing_value_is_an_error_naming_the_flag() {
        let mut args = flags(&["--output"]);
        let output = args.next_flag().unwrap();
        let error = args.value(&output).unwrap_err();
        assert_eq!(error.to_string(), "--output needs a value");
    }
}
