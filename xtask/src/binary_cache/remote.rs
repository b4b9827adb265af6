//! Reading a binary cache by its store URL, without Nix: `file://` from the
//! disk, `http(s)://` with ureq. Other schemes (`s3://`, `ssh://`) are left to
//! Nix itself (`cache verify --with-nix`).
//!
//! The cache is untrusted. On disk, a name is resolved one component at a
//! time below the cache directory without following symbolic links, and only
//! a regular file is read (never a FIFO, a device or a directory: opening
//! those can block or never end). Over HTTP, every wait is bounded by
//! [`timeout`].

use std::fmt;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, Mode, OFlags};
use ureq::ResponseExt as _;

use super::narinfo::shown;

/// Where a store URL points, as far as this tool reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `file:///dir`: an absolute directory.
    File(PathBuf),
    /// `http(s)://host/path`, without a trailing `/` or store parameters.
    Http(String),
    /// A scheme Nix reads and this tool does not (`s3://`, `ssh://`, ...).
    Other,
}

impl Location {
    /// Refuses URLs Nix would misread: `file://tmp/x` is the *relative*
    /// directory `tmp/x` to Nix, so it is refused here with the absolute form.
    pub fn parse(url: &str) -> Result<Location> {
        // Store parameters (`?compression=...`) matter to writers only.
        let base = url.split_once('?').map_or(url, |(b, _)| b);
        if let Some(path) = base.strip_prefix("file://") {
            if path.is_empty() {
                bail!("`{}` names no directory; write file:///absolute/path", shown(url));
            }
            if !path.starts_with('/') {
                bail!(
                    "`{}` names the relative directory `{}`: file:// URLs must be absolute, with three slashes, \
                     e.g. file:///{}",
                    shown(url),
                    shown(path),
                    shown(path)
                );
            }
            let path = path.trim_end_matches('/');
            return Ok(Location::File(PathBuf::from(if path.is_empty() { "/" } else { path })));
        }
        if base.starts_with("http://") || base.starts_with("https://") {
            return Ok(Location::Http(base.trim_end_matches('/').to_owned()));
        }
        Ok(Location::Other)
    }
}

/// A narinfo or `nix-cache-info` must arrive whole within this many
/// [`timeout`]s.
const SMALL_FILE_TIMEOUTS: u32 = 2;

/// `url` with any `user:password@` hidden, for messages and reports (CI
/// uploads them).
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        // The whole user part: a token is often passed as the user name.
        Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[authority_end..]),
        None => url.to_owned(),
    }
}

/// `(scheme, host, port)` of an http(s) URL, the port made explicit.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some((scheme, uri.host()?.to_ascii_lowercase(), port))
}

/// How long to wait for a connection, and then for each read, before giving
/// up on a cache server: the xtask's one HTTP timeout (`--http-timeout`,
/// `$PJRTPKGS_HTTP_TIMEOUT`, default 30 s; see [`crate::http`]). Large NARs
/// are fine: the limit is on silence, not on the whole download.
/// (`cli::dispatch` has already refused an invalid `$PJRTPKGS_HTTP_TIMEOUT`.)
pub fn timeout() -> Result<Duration> {
    Ok(crate::http::timeout())
}

pub enum BinaryCache {
    File {
        dir: PathBuf,
        root: OwnedFd,
    },
    /// `shown` is `base` with any credentials hidden, for messages.
    Http {
        base: String,
        shown: String,
        agent: ureq::Agent,
        timeout: Duration,
    },
}

/// Why a file of the cache could not be had (a missing one is `Ok(None)`).
#[derive(Debug)]
pub enum FetchError {
    /// The name leads to something that is no regular file below the cache
    /// (a symbolic link, a FIFO, a device, a directory), or the content is
    /// refused (too large, not text): the cache is at fault.
    Refused(String),
    /// Reading failed: I/O error, timeout, an HTTP error status. The cache
    /// may be fine; it could not be read now.
    Unreadable(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Refused(m) | FetchError::Unreadable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FetchError {}

impl BinaryCache {
    /// `None` for a scheme this reader does not speak.
    /// A local directory read as the cache. The directory itself may be
    /// reached through symbolic links (the user named it); nothing below it
    /// may.
    pub fn open_dir(dir: PathBuf) -> Result<BinaryCache> {
        let root = rustix::fs::open(&dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .with_context(|| format!("cannot open the directory {}", dir.display()))?;
        Ok(BinaryCache::File { dir, root })
    }

    pub fn open(url: &str) -> Result<Option<BinaryCache>> {
        match Location::parse(url)? {
            Location::File(dir) => Ok(Some(Self::open_dir(dir)?)),
            Location::Http(base) => {
                let timeout = timeout()?;
                let config = crate::http::config()
                    .http_status_as_error(false)
                    .timeout_connect(Some(timeout))
                    .timeout_per_read(Some(timeout))
                    .build();
                Ok(Some(BinaryCache::Http { shown: redacted(&base), base, agent: ureq::Agent::new_with_config(config), timeout }))
            }
            Location::Other => Ok(None),
        }
    }

    pub fn describe(&self, rel: &str) -> String {
        let rel = shown(rel);
        match self {
            BinaryCache::File { dir, .. } => dir.join(&*rel).display().to_string(),
            BinaryCache::Http { shown, .. } => format!("{shown}/{rel}"),
        }
    }

    /// A file of the cache, `None` when the cache does not have it. `rel` must
    /// have passed [`check_url`](super::narinfo::check_url) (narinfo names do).
    pub fn get(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>, FetchError> {
        self.fetch(rel, false)
    }

    fn fetch(&self, rel: &str, whole_within: bool) -> Result<Option<Box<dyn Read + Send>>, FetchError> {
        if let Err(e) = super::narinfo::check_url(rel) {
            return Err(FetchError::Refused(format!("`{}` is not a name under the cache: {e:#}", shown(rel))));
        }
        match self {
            BinaryCache::File { root, .. } => Ok(open_below(root, rel).map_err(|e| self.located(rel, e))?.map(|f| Box::new(f) as _)),
            BinaryCache::Http { base, shown, agent, timeout } => {
                let url = format!("{base}/{rel}");
                let request = agent.get(&url);
                // A small file must arrive whole in bounded time: a server that
                // trickles a byte just before each read timeout is no answer either.
                let request =
                    if whole_within { request.config().timeout_per_call(Some(*timeout * SMALL_FILE_TIMEOUTS)).build() } else { request };
                let requested = url;
                let url = format!("{shown}/{rel}");
                let response = request.call().map_err(|e| FetchError::Unreadable(http_failure(&url, e, *timeout)))?;
                // A narinfo is read, and parts of a bad one quoted, only from the
                // cache itself: a redirect to another host could make verify
                // quote another server's answer (a cloud metadata endpoint's,
                // say) into its report. NARs are only hashed; they may move.
                let same_origin = matches!((origin(&requested), origin(&response.get_uri().to_string())), (Some(a), Some(b)) if a == b);
                if whole_within && !same_origin {
                    return Err(FetchError::Refused(format!(
                        "{url} redirected to another host ({}); narinfos are read from the cache itself only",
                        redacted(&response.get_uri().to_string())
                    )));
                }
                match response.status().as_u16() {
                    200 => Ok(Some(Box::new(TimeoutExplained { inner: response.into_body().into_reader(), timeout: *timeout }))),
                    // S3 answers 403 for a missing key when listing is not allowed.
                    403 | 404 | 410 => Ok(None),
                    code => Err(FetchError::Unreadable(format!("{url} answered HTTP {code}"))),
                }
            }
        }
    }

    fn located(&self, rel: &str, e: FetchError) -> FetchError {
        match e {
            FetchError::Refused(m) => FetchError::Refused(format!("{} {m}", self.describe(rel))),
            FetchError::Unreadable(m) => FetchError::Unreadable(format!("cannot read {}: {m}", self.describe(rel))),
        }
    }

    /// A small text file (a narinfo, `nix-cache-info`): refused when larger
    /// than [`MAX_NARINFO_BYTES`](super::narinfo::MAX_NARINFO_BYTES) or not
    /// UTF-8, never cut to size.
    pub fn get_text(&self, rel: &str) -> Result<Option<String>, FetchError> {
        let Some(reader) = self.fetch(rel, true)? else { return Ok(None) };
        let limit = super::narinfo::MAX_NARINFO_BYTES;
        let mut bytes = Vec::new();
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| FetchError::Unreadable(format!("cannot read {}: {e}", self.describe(rel))))?;
        if bytes.len() > limit {
            return Err(FetchError::Refused(format!("{} is larger than {} MiB", self.describe(rel), limit >> 20)));
        }
        String::from_utf8(bytes).map(Some).map_err(|_| FetchError::Refused(format!("{} is not UTF-8 text", self.describe(rel))))
    }
}

/// Opens `rel` (already checked: relative, no `.`/`..`) below `root`, one
/// component at a time, never following a symbolic link, and only if it is
/// a regular file. The last component is first opened with `O_PATH`, which
/// opens nothing (a FIFO or a device is never opened for reading).
fn open_below(root: &OwnedFd, rel: &str) -> Result<Option<std::fs::File>, FetchError> {
    let components: Vec<&str> = rel.split('/').collect();
    let (last, dirs) = components.split_last().expect("split yields one component at least");
    let mut dir: Option<OwnedFd> = None;
    for (i, name) in dirs.iter().enumerate() {
        let at = dir.as_ref().unwrap_or(root);
        match rustix::fs::openat(at, *name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => dir = Some(fd),
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                return Err(FetchError::Refused(format!(
                    "is not a regular file below the cache: `{}` is a symbolic link or not a directory",
                    components[..=i].join("/")
                )))
            }
            Err(e) => return Err(FetchError::Unreadable(e.to_string())),
        }
    }
    let at = dir.as_ref().unwrap_or(root);
    let path = match rustix::fs::openat(at, *last, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(FetchError::Unreadable(e.to_string())),
    };
    let kind = |fd: &OwnedFd| rustix::fs::fstat(fd).map(|s| (FileType::from_raw_mode(s.st_mode), s.st_dev, s.st_ino));
    let (file_type, dev, ino) = kind(&path).map_err(|e| FetchError::Unreadable(e.to_string()))?;
    if file_type != FileType::RegularFile {
        let what = crate::fsutil::file_type_name(file_type);
        return Err(FetchError::Refused(format!("is not a regular file (it is {what}); a cache holds regular files only")));
    }
    // Opened for reading by name again: it must still be the file checked.
    let fd = rustix::fs::openat(at, *last, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| FetchError::Unreadable(e.to_string()))?;
    if kind(&fd).ok() != Some((FileType::RegularFile, dev, ino)) {
        return Err(FetchError::Refused("changed while it was being opened".to_owned()));
    }
    Ok(Some(std::fs::File::from(fd)))
}

/// Says which limit ran out, and how to change it, when a read of an HTTP
/// body times out.
struct TimeoutExplained<R> {
    inner: R,
    timeout: Duration,
}

impl<R: Read> Read for TimeoutExplained<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| std::io::Error::new(e.kind(), io_failure_with(&e, self.timeout)))
    }
}

fn is_timeout(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Timeout(_)) || matches!(e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

fn timeout_text(timeout: Duration) -> String {
    format!("timed out: no answer for {} s (--http-timeout or PJRTPKGS_HTTP_TIMEOUT sets this limit in seconds)", timeout.as_secs())
}

fn http_failure(url: &str, e: ureq::Error, timeout: Duration) -> String {
    if is_timeout(&e) {
        format!("{url}: {}", timeout_text(timeout))
    } else {
        format!("cannot fetch {url}: {e}")
    }
}

fn io_failure_with(e: &std::io::Error, timeout: Duration) -> String {
    let timed_out = e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()).is_some_and(is_timeout);
    if timed_out {
        timeout_text(timeout)
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_must_be_absolute() {
        assert_eq!(Location::parse("file:///srv/cache/").unwrap(), Location::File("/srv/cache".into()));
        assert_eq!(Location::parse("file:///srv/cache?compression=xz").unwrap(), Location::File("/srv/cache".into()));
        let err = Location::parse("file://tmp/x").unwrap_err().to_string();
        assert!(err.contains("file:///tmp/x") && err.contains("relative"), "{err}");
        assert!(Location::parse("file://").is_err());
        assert_eq!(Location::parse("https://c.example.org/").unwrap(), Location::Http("https://c.example.org".into()));
        assert_eq!(Location::parse("s3://bucket?region=x").unwrap(), Location::Other);
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redacted("https://ci:hunter2@cache.example.org/nix?x=1"), "https://***@cache.example.org/nix?x=1");
        assert_eq!(redacted("https://token@cache.example.org"), "https://***@cache.example.org");
        assert_eq!(redacted("https://cache.example.org/a@b"), "https://cache.example.org/a@b");
        assert_eq!(redacted("file:///srv/cache"), "file:///srv/cache");
    }
}
