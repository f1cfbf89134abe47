//! Who a container runs as: the user of the CRI security context or of the image,
//! resolved against the `/etc/passwd` and `/etc/group` of the container's own rootfs, the
//! way containerd's CRI plugin does.
//!
//! The user is taken from, in order:
//! 1. the security context: `run_as_username`, else `run_as_user`, with `run_as_group` as
//!    the group (a group without a user is refused, as containerd does);
//! 2. the image's `User`: `name`, `uid`, `name:group`, `uid:gid` (and mixes);
//! 3. root.
//!
//! A numeric uid needs no passwd entry (its gid is then 0 unless one is given); a name
//! must be found. The additional gids are the primary gid, the groups of `/etc/group` that
//! list the user's name, and the security context's `supplemental_groups`, sorted and
//! without duplicates.
//!
//! The files are read inside the rootfs: `openat2(RESOLVE_IN_ROOT)` resolves symbolic
//! links (`/etc/passwd -> /usr/lib/passwd`, or `-> /../../host/etc/passwd`) as if the rootfs
//! were `/`, so a hostile image cannot make the runtime read a host file. On kernels
//! without `openat2` (before 5.6) a symbolic link on the way is refused instead.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use cri_api::v1::LinuxContainerSecurityContext;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::oci::spec::User;

/// The largest `/etc/passwd` or `/etc/group` read (a bigger one is refused).
const MAX_DATABASE_SIZE: u64 = 16 << 20;

/// Why the container's user could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A user name that the image's `/etc/passwd` does not have.
    #[error("user {0:?} not found in the image's /etc/passwd")]
    UserNotFound(String),
    /// A group name that the image's `/etc/group` does not have.
    #[error("group {0:?} not found in the image's /etc/group")]
    GroupNotFound(String),
    /// A user string that is not `user`, `uid`, `user:group` or `uid:gid`.
    #[error("invalid user {0:?}: expected user, uid, user:group or uid:gid")]
    InvalidUser(String),
    /// `run_as_group` without `run_as_user` or `run_as_username`.
    #[error("run_as_group {0} is set without run_as_user or run_as_username")]
    GroupWithoutUser(i64),
    /// An id outside `0..=4294967294`.
    #[error("{what} {value} is out of range")]
    IdOutOfRange {
        /// Which id (`run_as_user`, `supplemental group`...).
        what: &'static str,
        /// The value given.
        value: i64,
    },
    /// The user database could not be read.
    #[error("reading {path} in the container rootfs: {source}")]
    Read {
        /// The file, relative to the rootfs.
        path: &'static str,
        /// What went wrong.
        source: io::Error,
    },
}

impl UserError {
    /// Whether the request itself is wrong (gRPC `InvalidArgument`), rather than the
    /// runtime failing to read the rootfs.
    pub fn is_invalid_argument(&self) -> bool {
        !matches!(self, UserError::Read { .. })
    }
}

/// What a container asks to run as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserRequest<'a> {
    /// The security context's `run_as_user`.
    pub run_as_user: Option<i64>,
    /// The security context's `run_as_username` (`None` or empty: unset).
    pub run_as_username: Option<&'a str>,
    /// The security context's `run_as_group`.
    pub run_as_group: Option<i64>,
    /// The security context's `supplemental_groups`.
    pub supplemental_groups: &'a [i64],
    /// The image config's `User`.
    pub image_user: Option<&'a str>,
}

impl<'a> UserRequest<'a> {
    /// The request of a container with this security context and image `User`.
    pub fn new(security_context: Option<&'a LinuxContainerSecurityContext>, image_user: Option<&'a str>) -> Self {
        let Some(sc) = security_context else {
            return UserRequest {
                image_user,
                ..UserRequest::default()
            };
        };
        UserRequest {
            run_as_user: sc.run_as_user.as_ref().map(|value| value.value),
            run_as_username: Some(sc.run_as_username.as_str()),
            run_as_group: sc.run_as_group.as_ref().map(|value| value.value),
            supplemental_groups: &sc.supplemental_groups,
            image_user,
        }
    }
}

/// Resolves the process user of a container whose root filesystem is `rootfs`.
pub fn resolve_user(rootfs: &Path, request: &UserRequest<'_>) -> Result<User, UserError> {
    let user_string = user_string(request)?;
    let (user_part, group_part) = split_user(&user_string)?;
    let mut db = Databases::new(rootfs);

    let (uid, primary_gid, name) = match user_part.parse::<u32>() {
        Ok(uid) => {
            check_id("uid", i64::from(uid))?;
            match db.passwd()?.iter().find(|entry| entry.uid == uid) {
                Some(entry) => (uid, entry.gid, Some(entry.name.clone())),
                None => (uid, 0, None),
            }
        }
        Err(_) if is_numeric(user_part) => return Err(UserError::InvalidUser(user_string)),
        Err(_) => match db.passwd()?.iter().find(|entry| entry.name == user_part) {
            Some(entry) => (entry.uid, entry.gid, Some(entry.name.clone())),
            None => return Err(UserError::UserNotFound(user_part.to_string())),
        },
    };

    let gid = match group_part {
        None => primary_gid,
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => {
                check_id("gid", i64::from(gid))?;
                gid
            }
            Err(_) if is_numeric(group) => return Err(UserError::InvalidUser(user_string)),
            Err(_) => match db.group()?.iter().find(|entry| entry.name == group) {
                Some(entry) => entry.gid,
                None => return Err(UserError::GroupNotFound(group.to_string())),
            },
        },
    };

    // The primary group is listed too, as containerd does: `id` in a Kubernetes pod shows
    // `groups=<gid>,<supplemental...>`.
    let mut additional = BTreeSet::from([gid]);
    if let Some(name) = &name {
        for entry in db.group()? {
            if entry.members.iter().any(|member| member == name) {
                additional.insert(entry.gid);
            }
        }
    }
    for &group in request.supplemental_groups {
        additional.insert(check_id("supplemental group", group)?);
    }

    Ok(User {
        uid,
        gid,
        umask: None,
        additional_gids: additional.into_iter().collect(),
    })
}

/// The `user[:group]` string the request resolves to (`"0"` when nothing is set).
fn user_string(request: &UserRequest<'_>) -> Result<String, UserError> {
    let username = request.run_as_username.filter(|name| !name.is_empty());
    let user = match (username, request.run_as_user) {
        (Some(name), _) => Some(name.to_string()),
        (None, Some(uid)) => Some(check_id("run_as_user", uid)?.to_string()),
        (None, None) => None,
    };
    match (user, request.run_as_group) {
        (Some(user), Some(gid)) => Ok(format!("{user}:{}", check_id("run_as_group", gid)?)),
        (Some(user), None) => Ok(user),
        (None, Some(gid)) => Err(UserError::GroupWithoutUser(gid)),
        (None, None) => Ok(request
            .image_user
            .map(str::trim)
            .filter(|user| !user.is_empty())
            .unwrap_or("0")
            .to_string()),
    }
}

fn split_user(user: &str) -> Result<(&str, Option<&str>), UserError> {
    let invalid = || UserError::InvalidUser(user.to_string());
    let mut parts = user.split(':');
    let name = parts.next().filter(|name| !name.is_empty()).ok_or_else(invalid)?;
    let group = match parts.next() {
        None => None,
        Some("") => return Err(invalid()),
        Some(group) => Some(group),
    };
    if parts.next().is_some() {
        return Err(invalid());
    }
    Ok((name, group))
}

fn is_numeric(value: &str) -> bool {
    value.bytes().all(|byte| byte.is_ascii_digit())
}

/// `value` as an id: `u32::MAX` is `(uid_t)-1`, which means "unchanged" to the kernel.
fn check_id(what: &'static str, value: i64) -> Result<u32, UserError> {
    u32::try_from(value)
        .ok()
        .filter(|&id| id != u32::MAX)
        .ok_or(UserError::IdOutOfRange { what, value })
}

/// An `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// An `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// `name:password:uid:gid:gecos:home:shell`; lines that do not parse are skipped, as
/// libc and runc's user package skip them.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    database_lines(text)
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let uid = fields.next()?.trim().parse().ok()?;
            let gid = fields.next()?.trim().parse().ok()?;
            Some(PasswdEntry {
                name: name.to_string(),
                uid,
                gid,
            })
        })
        .collect()
}

/// `name:password:gid:member,member`.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    database_lines(text)
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let gid = fields.next()?.trim().parse().ok()?;
            let members = fields
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|member| !member.is_empty())
                .map(str::to_string)
                .collect();
            Some(GroupEntry {
                name: name.to_string(),
                gid,
                members,
            })
        })
        .collect()
}

/// The lines of a user database that can hold entries: no blanks, comments or NIS
/// `+`/`-` inclusions.
fn database_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', '+', '-']))
}

/// The rootfs's user databases, read when first needed.
struct Databases<'a> {
    rootfs: &'a Path,
    passwd: Option<Vec<PasswdEntry>>,
    group: Option<Vec<GroupEntry>>,
}

impl<'a> Databases<'a> {
    fn new(rootfs: &'a Path) -> Self {
        Databases {
            rootfs,
            passwd: None,
            group: None,
        }
    }

    fn passwd(&mut self) -> Result<&[PasswdEntry], UserError> {
        if self.passwd.is_none() {
            let text = read_database(self.rootfs, "etc/passwd")?;
            self.passwd = Some(parse_passwd(&text));
        }
        Ok(self.passwd.as_deref().unwrap_or_default())
    }

    fn group(&mut self) -> Result<&[GroupEntry], UserError> {
        if self.group.is_none() {
            let text = read_database(self.rootfs, "etc/group")?;
            self.group = Some(parse_group(&text));
        }
        Ok(self.group.as_deref().unwrap_or_default())
    }
}

/// Reads `path` (relative) inside `rootfs`; a missing file reads as empty.
fn read_database(rootfs: &Path, path: &'static str) -> Result<String, UserError> {
    let error = |source: io::Error| UserError::Read { path, source };
    let file = match open_in_root(rootfs, path) {
        Ok(fd) => std::fs::File::from(fd),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(err) => return Err(error(err)),
    };
    if !file.metadata().map_err(error)?.is_file() {
        return Err(error(io::Error::new(io::ErrorKind::InvalidData, "not a regular file")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_DATABASE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(error)?;
    if bytes.len() as u64 > MAX_DATABASE_SIZE {
        return Err(error(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_DATABASE_SIZE} bytes"),
        )));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Opens `path` for reading with `rootfs` as `/`. `O_NONBLOCK` keeps a FIFO planted there
/// from blocking the open.
fn open_in_root(rootfs: &Path, path: &str) -> io::Result<OwnedFd> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    match rustix::fs::openat2(
        &root,
        path,
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Err(Errno::NOSYS) => open_without_symlinks(&root, path, flags),
        result => Ok(result?),
    }
}

/// The fallback for kernels without `openat2`: walks `path` one component at a time and
/// refuses symbolic links (`ELOOP`).
fn open_without_symlinks(root: &OwnedFd, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if components.contains(&"..") {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "path leaves the rootfs"));
    }
    let Some((last, dirs)) = components.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
    };
    let mut dir = rustix::fs::openat(
        root,
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for component in dirs {
        dir = rustix::fs::openat(
            &dir,
            *component,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok(rustix::fs::openat(
        &dir,
        *last,
        flags | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # a comment\n\
                          \n\
                          daemon:x:1:1::/:/bin/false\n\
                          broken line\n\
                          alice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
                          bob:x:1001:1001::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
                         wheel:x:10:alice,bob\n\
                         audio:x:29:alice\n\
                         alice:x:1000:\n\
                         bob:x:1001:\n\
                         staff:x:50:\n";

    fn rootfs_with(passwd: Option<&str>, group: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("etc")).expect("mkdir etc");
        if let Some(passwd) = passwd {
            fs::write(dir.path().join("etc/passwd"), passwd).expect("write passwd");
        }
        if let Some(group) = group {
            fs::write(dir.path().join("etc/group"), group).expect("write group");
        }
        dir
    }

    struct Case {
        desc: &'static str,
        request: UserRequest<'static>,
        want: Result<(u32, u32, &'static [u32]), &'static str>,
    }

    fn req() -> UserRequest<'static> {
        UserRequest::default()
    }

    #[test]
    fn resolves_users_like_containerd() {
        let cases = [
            Case {
                desc: "nothing set runs as root with root's groups",
                request: req(),
                want: Ok((0, 0, &[])),
            },
            Case {
                desc: "image user name",
                request: UserRequest {
                    image_user: Some("alice"),
                    ..req()
                },
                want: Ok((1000, 1000, &[10, 29])),
            },
            Case {
                desc: "image uid with a passwd entry takes its gid and groups",
                request: UserRequest {
                    image_user: Some("1001"),
                    ..req()
                },
                want: Ok((1001, 1001, &[10])),
            },
            Case {
                desc: "image uid without a passwd entry gets gid 0",
                request: UserRequest {
                    image_user: Some("4242"),
                    ..req()
                },
                want: Ok((4242, 0, &[])),
            },
            Case {
                desc: "image uid:gid needs no entries",
                request: UserRequest {
                    image_user: Some("4242:4343"),
                    ..req()
                },
                want: Ok((4242, 4343, &[])),
            },
            Case {
                desc: "image name:group",
                request: UserRequest {
                    image_user: Some("alice:staff"),
                    ..req()
                },
                want: Ok((1000, 50, &[10, 29])),
            },
            Case {
                desc: "image name:gid",
                request: UserRequest {
                    image_user: Some("bob:7"),
                    ..req()
                },
                want: Ok((1001, 7, &[10])),
            },
            Case {
                desc: "image uid:group name",
                request: UserRequest {
                    image_user: Some("4242:staff"),
                    ..req()
                },
                want: Ok((4242, 50, &[])),
            },
            Case {
                desc: "run_as_user overrides the image user",
                request: UserRequest {
                    run_as_user: Some(1000),
                    image_user: Some("bob"),
                    ..req()
                },
                want: Ok((1000, 1000, &[10, 29])),
            },
            Case {
                desc: "run_as_username wins over run_as_user",
                request: UserRequest {
                    run_as_user: Some(1000),
                    run_as_username: Some("bob"),
                    ..req()
                },
                want: Ok((1001, 1001, &[10])),
            },
            Case {
                desc: "an empty run_as_username is unset",
                request: UserRequest {
                    run_as_username: Some(""),
                    image_user: Some("bob"),
                    ..req()
                },
                want: Ok((1001, 1001, &[10])),
            },
            Case {
                desc: "run_as_group overrides the primary group",
                request: UserRequest {
                    run_as_user: Some(1000),
                    run_as_group: Some(3000),
                    ..req()
                },
                want: Ok((1000, 3000, &[10, 29])),
            },
            Case {
                desc: "supplemental groups are merged, sorted, deduplicated",
                request: UserRequest {
                    run_as_user: Some(1000),
                    supplemental_groups: &[5000, 10, 1],
                    ..req()
                },
                want: Ok((1000, 1000, &[1, 10, 29, 5000])),
            },
            Case {
                desc: "supplemental groups apply to the image user too",
                request: UserRequest {
                    supplemental_groups: &[77],
                    image_user: Some("4242"),
                    ..req()
                },
                want: Ok((4242, 0, &[77])),
            },
            Case {
                desc: "whitespace around the image user is ignored",
                request: UserRequest {
                    image_user: Some("  "),
                    ..req()
                },
                want: Ok((0, 0, &[])),
            },
            Case {
                desc: "unknown user name",
                request: UserRequest {
                    image_user: Some("mallory"),
                    ..req()
                },
                want: Err("user \"mallory\" not found in the image's /etc/passwd"),
            },
            Case {
                desc: "unknown run_as_username",
                request: UserRequest {
                    run_as_username: Some("mallory"),
                    ..req()
                },
                want: Err("user \"mallory\" not found in the image's /etc/passwd"),
            },
            Case {
                desc: "unknown group name",
                request: UserRequest {
                    image_user: Some("alice:nope"),
                    ..req()
                },
                want: Err("group \"nope\" not found in the image's /etc/group"),
            },
            Case {
                desc: "group without user",
                request: UserRequest {
                    run_as_group: Some(5),
                    ..req()
                },
                want: Err("run_as_group 5 is set without run_as_user or run_as_username"),
            },
            Case {
                desc: "negative uid",
                request: UserRequest {
                    run_as_user: Some(-1),
                    ..req()
                },
                want: Err("run_as_user -1 is out of range"),
            },
            Case {
                desc: "uid too large",
                request: UserRequest {
                    image_user: Some("4294967296"),
                    ..req()
                },
                want: Err("invalid user \"4294967296\": expected user, uid, user:group or uid:gid"),
            },
            Case {
                desc: "uid -1 as u32",
                request: UserRequest {
                    image_user: Some("4294967295"),
                    ..req()
                },
                want: Err("uid 4294967295 is out of range"),
            },
            Case {
                desc: "negative supplemental group",
                request: UserRequest {
                    supplemental_groups: &[-3],
                    ..req()
                },
                want: Err("supplemental group -3 is out of range"),
            },
            Case {
                desc: "three parts",
                request: UserRequest {
                    image_user: Some("a:b:c"),
                    ..req()
                },
                want: Err("invalid user \"a:b:c\": expected user, uid, user:group or uid:gid"),
            },
            Case {
                desc: "empty group part",
                request: UserRequest {
                    image_user: Some("alice:"),
                    ..req()
                },
                want: Err("invalid user \"alice:\": expected user, uid, user:group or uid:gid"),
            },
            Case {
                desc: "empty user part",
                request: UserRequest {
                    image_user: Some(":10"),
                    ..req()
                },
                want: Err("invalid user \":10\": expected user, uid, user:group or uid:gid"),
            },
        ];
        let rootfs = rootfs_with(Some(PASSWD), Some(GROUP));
        for case in cases {
            let got = resolve_user(rootfs.path(), &case.request);
            match (got, case.want) {
                (Ok(user), Ok((uid, gid, additional))) => {
                    // The primary gid is always among the additional ones.
                    let mut want: Vec<u32> = additional.to_vec();
                    want.push(gid);
                    want.sort_unstable();
                    want.dedup();
                    assert_eq!(
                        (user.uid, user.gid, user.additional_gids),
                        (uid, gid, want),
                        "{}",
                        case.desc
                    );
                }
                (Err(err), Err(message)) => {
                    assert_eq!(err.to_string(), message, "{}", case.desc);
                    assert!(err.is_invalid_argument(), "{}", case.desc);
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.desc),
            }
        }
    }

    #[test]
    fn missing_databases_allow_numeric_ids_only() {
        let rootfs = rootfs_with(None, None);
        let numeric = UserRequest {
            image_user: Some("1234"),
            supplemental_groups: &[5],
            ..req()
        };
        let user = resolve_user(rootfs.path(), &numeric).expect("numeric user");
        assert_eq!((user.uid, user.gid, user.additional_gids), (1234, 0, vec![0, 5]));
        let named = UserRequest {
            image_user: Some("alice"),
            ..req()
        };
        assert!(matches!(
            resolve_user(rootfs.path(), &named),
            Err(UserError::UserNotFound(name)) if name == "alice"
        ));
        // No etc directory at all.
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(resolve_user(empty.path(), &req()).expect("root").uid, 0);
    }

    #[test]
    fn symlinks_resolve_inside_the_rootfs() {
        // The "host" passwd the link would reach if it were followed from the real root.
        let host = tempfile::tempdir().expect("tempdir");
        fs::write(host.path().join("passwd"), "alice:x:6666:6666::/:/bin/sh\n").expect("write host passwd");

        let rootfs = rootfs_with(None, Some(GROUP));
        fs::create_dir_all(rootfs.path().join("usr/lib")).expect("mkdir");
        fs::write(rootfs.path().join("usr/lib/passwd"), "alice:x:1000:1000::/:/bin/sh\n").expect("write passwd");

        // An absolute link is resolved with the rootfs as `/`.
        std::os::unix::fs::symlink("/usr/lib/passwd", rootfs.path().join("etc/passwd")).expect("symlink");
        let alice = UserRequest {
            image_user: Some("alice"),
            ..req()
        };
        assert_eq!(resolve_user(rootfs.path(), &alice).expect("alice").uid, 1000);

        // A link climbing out of the rootfs stays inside it (`..` of `/` is `/`).
        fs::remove_file(rootfs.path().join("etc/passwd")).expect("rm");
        let escape = format!("../../../../../../../../..{}/passwd", host.path().display());
        std::os::unix::fs::symlink(&escape, rootfs.path().join("etc/passwd")).expect("symlink");
        assert!(matches!(
            resolve_user(rootfs.path(), &alice),
            Err(UserError::UserNotFound(_))
        ));
        let by_uid = UserRequest {
            image_user: Some("6666"),
            ..req()
        };
        assert_eq!(resolve_user(rootfs.path(), &by_uid).expect("uid").gid, 0);
    }

    #[test]
    fn the_fallback_refuses_symlinks() {
        let rootfs = rootfs_with(None, None);
        fs::write(rootfs.path().join("real"), "alice:x:1000:1000::/:/bin/sh\n").expect("write");
        std::os::unix::fs::symlink("/real", rootfs.path().join("etc/passwd")).expect("symlink");
        let root = rustix::fs::open(
            rootfs.path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open rootfs");
        let err = open_without_symlinks(&root, "etc/passwd", OFlags::RDONLY).expect_err("symlink refused");
        assert_eq!(err.raw_os_error(), Some(libc_eloop()));
        fs::remove_file(rootfs.path().join("etc/passwd")).expect("rm");
        fs::write(rootfs.path().join("etc/passwd"), "x").expect("write");
        assert!(open_without_symlinks(&root, "etc/passwd", OFlags::RDONLY).is_ok());
        assert!(open_without_symlinks(&root, "etc/../etc/passwd", OFlags::RDONLY).is_err());
    }

    fn libc_eloop() -> i32 {
        Errno::LOOP.raw_os_error()
    }

    #[test]
    fn a_fifo_is_not_read() {
        let rootfs = rootfs_with(None, None);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            rootfs.path().join("etc/passwd"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .expect("mkfifo");
        let named = UserRequest {
            image_user: Some("alice"),
            ..req()
        };
        assert!(matches!(
            resolve_user(rootfs.path(), &named),
            Err(UserError::Read { path: "etc/passwd", .. })
        ));
    }

    #[test]
    fn parses_databases_leniently() {
        assert_eq!(
            parse_passwd("a:x:1:2:::\n+nis\nb:x:notanumber:1::/:/bin/sh\nc:x:3:4\n"),
            vec![
                PasswdEntry {
                    name: "a".into(),
                    uid: 1,
                    gid: 2
                },
                PasswdEntry {
                    name: "c".into(),
                    uid: 3,
                    gid: 4
                },
            ]
        );
        assert_eq!(
            parse_group("g:x:5:a, b,\nh:x:6\n"),
            vec![
                GroupEntry {
                    name: "g".into(),
                    gid: 5,
                    members: vec!["a".into(), "b".into()]
                },
                GroupEntry {
                    name: "h".into(),
                    gid: 6,
                    members: vec![]
                },
            ]
        );
    }

    #[test]
    fn reads_the_security_context() {
        let sc = LinuxContainerSecurityContext {
            run_as_user: Some(cri_api::v1::Int64Value { value: 7 }),
            run_as_group: Some(cri_api::v1::Int64Value { value: 8 }),
            run_as_username: "u".into(),
            supplemental_groups: vec![9],
            ..Default::default()
        };
        let request = UserRequest::new(Some(&sc), Some("img"));
        assert_eq!(
            request,
            UserRequest {
                run_as_user: Some(7),
                run_as_username: Some("u"),
                run_as_group: Some(8),
                supplemental_groups: &[9],
                image_user: Some("img"),
            }
        );
        assert_eq!(UserRequest::new(None, Some("img")).image_user, Some("img"));
    }
}
