//! Reading the files of a published release, from a directory (`dist/` as
//! `release` wrote it) or over HTTP(S) from where its assets are downloaded.
//!
//! Everything read is untrusted, and every read is bounded:
//! - a file is refused when larger than its cap (a `SHA256SUMS` of 2 GB is
//!   an attack, not a release), before it is read when its size is known;
//! - a small file (`SHA256SUMS`, its signature, `compat.json`, an SBOM, the
//!   notes) must arrive whole within [`SMALL_FILE_TIMEOUTS`] times the HTTP
//!   timeout, however it trickles;
//! - a large one (an archive) may take as long as it keeps moving: at least
//!   [`MIN_BYTES_PER_WINDOW`] in every HTTP-timeout window (curl's
//!   `--speed-limit`), so a server sending one byte a second is given up on.
//!
//! Release assets are not narinfos: GitHub answers every asset URL with a
//! redirect to another host (objects.githubusercontent.com), so redirects
//! are followed here, by this module's rules rather than the HTTP client's:
//! at most [`MAX_REDIRECTS`], http(s) only, never from https down to http
//! (unless the release URL itself is http), never to a URL carrying
//! credentials, and no credential of the release URL is sent on to the
//! next host.
//!
//! In a directory, a name is opened below the directory without following
//! symbolic links, and only a regular file is read (never a FIFO, a device
//! or a directory: opening those can block or never end). Anything else is
//! a problem of the release, named with its path.

use std::fmt;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rustix::fs::{FileType, Mode, OFlags};

/// Redirects followed for one file (GitHub uses one).
pub const MAX_REDIRECTS: usize = 5;
/// A small file must arrive whole within this many HTTP timeouts.
pub const SMALL_FILE_TIMEOUTS: u32 = 2;
/// A large file must move at least this many bytes in every HTTP-timeout
/// window (64 KiB per 30 s by default: about 2 KiB/s).
pub const MIN_BYTES_PER_WINDOW: u64 = 64 << 10;

/// Why a file could not be had (a missing one is `Ok(None)`).
#[derive(Debug)]
pub enum FetchError {
    /// The release is at fault: the name is no regular file, the content is
    /// larger than it may be, a redirect breaks the rules. A problem of the
    /// release (`verify` exits 2).
    Refused(String),
    /// Reading failed: I/O, a timeout, an HTTP error status, too many
    /// redirects. The release may be fine; it could not be read now (exit 1).
    Failed(anyhow::Error),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Refused(m) => f.write_str(m),
            FetchError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

/// The io::Error payload of a stream that went past its cap: a refusal,
/// told apart from a read failure by [`refusal_of`].
#[derive(Debug)]
struct TooLarge(String);

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TooLarge {}

/// The io::Error payload of a transfer too slow to go on.
#[derive(Debug)]
struct Crawling(String);

impl fmt::Display for Crawling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Crawling {}

/// The refusal carried by a read error of a [`Release::stream`], if any.
pub fn refusal_of(e: &std::io::Error) -> Option<String> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<TooLarge>()).map(|t| t.0.clone())
}

/// A release to read.
pub enum Release {
    Dir { dir: PathBuf, root: OwnedFd },
    Http { base: String, agent: ureq::Agent, timeout: Duration },
}

/// What a directory entry of a release is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Other(&'static str),
}

/// `text` fit for a message: at most 160 characters, control characters escaped.
pub fn shown(text: &str) -> String {
    const MAX: usize = 160;
    let mut out: String = text.chars().take(MAX).flat_map(char::escape_debug).collect();
    if text.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

/// `url` with any `user:password@` hidden.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return shown(url) };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => shown(&format!("{scheme}://***@{host}{}", &rest[end..])),
        None => shown(url),
    }
}

impl Release {
    /// A directory, or an `http(s)://` / `file://` URL of one.
    pub fn open(source: &str) -> Result<Release> {
        if let Some(rest) = source.strip_prefix("file://") {
            if !rest.starts_with('/') {
                anyhow::bail!("`{}` names a relative directory: file:// URLs are absolute (file:///path)", shown(source));
            }
            return Self::open_dir(PathBuf::from(rest));
        }
        if source.starts_with("http://") || source.starts_with("https://") {
            let timeout = crate::http::timeout();
            let config = crate::http::config()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(timeout))
                .timeout_per_read(Some(timeout))
                .build();
            let base = source.split(['?', '#']).next().unwrap_or(source).trim_end_matches('/').to_owned();
            return Ok(Release::Http { base, agent: ureq::Agent::new_with_config(config), timeout });
        }
        if source.contains("://") {
            anyhow::bail!("`{}`: only http://, https:// and file:// URLs can be read", shown(source));
        }
        Self::open_dir(PathBuf::from(source))
    }

    fn open_dir(dir: PathBuf) -> Result<Release> {
        // The directory itself may be reached through symbolic links (the
        // user named it); nothing below it may.
        let root = rustix::fs::open(&dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .with_context(|| format!("cannot open the release directory {} (give dist/ as `release` wrote it, or a URL)", dir.display()))?;
        Ok(Release::Dir { dir, root })
    }

    /// Where `name` is read from, for messages.
    pub fn describe(&self, name: &str) -> String {
        match self {
            Release::Dir { dir, .. } => dir.join(shown(name)).display().to_string(),
            Release::Http { base, .. } => format!("{}/{}", redacted(base), shown(name)),
        }
    }

    /// The release as the user named it, for messages.
    pub fn location(&self) -> String {
        match self {
            Release::Dir { dir, .. } => dir.display().to_string(),
            Release::Http { base, .. } => redacted(base),
        }
    }

    /// The path segments of the release URL (none for a directory).
    pub fn url_segments(&self) -> Vec<String> {
        match self {
            Release::Dir { .. } => Vec::new(),
            Release::Http { base, .. } => {
                let rest = base.split_once("://").map_or("", |(_, r)| r);
                rest.split('/').skip(1).filter(|s| !s.is_empty()).map(str::to_owned).collect()
            }
        }
    }

    /// A small file, whole: refused when larger than `cap`, failed when it
    /// does not arrive within [`SMALL_FILE_TIMEOUTS`] HTTP timeouts.
    pub fn read_small(&self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let deadline = match self {
            Release::Http { timeout, .. } => Some(Instant::now() + *timeout * SMALL_FILE_TIMEOUTS),
            Release::Dir { .. } => None,
        };
        let Some(reader) = self.open_reader(name, cap, deadline)? else { return Ok(None) };
        let mut bytes = Vec::new();
        match reader.take(cap + 1).read_to_end(&mut bytes) {
            Ok(_) if bytes.len() as u64 > cap => Err(FetchError::Refused(too_large(&self.describe(name), cap))),
            Ok(_) => Ok(Some(bytes)),
            Err(e) => Err(self.read_failure(name, e, deadline.is_some())),
        }
    }

    /// A large file as a stream, refused past `cap` bytes (the read error
    /// carries the refusal: [`refusal_of`]); over HTTP it must keep moving.
    pub fn stream(&self, name: &str, cap: u64) -> Result<Option<Box<dyn Read + Send>>, FetchError> {
        self.open_reader(name, cap, None)
    }

    /// The error for a failed read of `name`.
    pub fn read_failure(&self, name: &str, e: std::io::Error, whole_within: bool) -> FetchError {
        if let Some(refusal) = refusal_of(&e) {
            return FetchError::Refused(refusal);
        }
        if let Some(crawl) = e.get_ref().and_then(|inner| inner.downcast_ref::<Crawling>()) {
            return FetchError::Failed(anyhow!("{crawl}"));
        }
        let timed_out = crate::http::is_timeout(&e) || e.kind() == std::io::ErrorKind::TimedOut;
        match (self, timed_out) {
            (Release::Http { timeout, .. }, true) if whole_within => FetchError::Failed(anyhow!(
                "{} did not arrive within {} s ({}× --http-timeout, which sets this limit)",
                self.describe(name),
                (*timeout * SMALL_FILE_TIMEOUTS).as_secs_f64(),
                SMALL_FILE_TIMEOUTS
            )),
            (Release::Http { timeout, .. }, true) => FetchError::Failed(anyhow!(
                "{}: the transfer stalled (nothing for {} s; --http-timeout or PJRTPKGS_HTTP_TIMEOUT sets this limit)",
                self.describe(name),
                timeout.as_secs_f64()
            )),
            _ => FetchError::Failed(anyhow::Error::new(e).context(format!("cannot read {}", self.describe(name)))),
        }
    }

    fn open_reader(&self, name: &str, cap: u64, deadline: Option<Instant>) -> Result<Option<Box<dyn Read + Send>>, FetchError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(FetchError::Refused(format!("`{}` is not a file name of a release", shown(name))));
        }
        match self {
            Release::Dir { root, .. } => {
                let Some((file, size)) = open_regular(root, name).map_err(|e| self.located(name, e))? else { return Ok(None) };
                if size > cap {
                    return Err(FetchError::Refused(too_large(&self.describe(name), cap)));
                }
                Ok(Some(Box::new(Capped { inner: file, left: cap, what: self.describe(name) })))
            }
            Release::Http { base, agent, timeout } => {
                let url = format!("{base}/{name}");
                let Some((body, length)) = get(agent, &url, base.starts_with("http://"), deadline, *timeout)? else { return Ok(None) };
                if length.is_some_and(|n| n > cap) {
                    return Err(FetchError::Refused(format!(
                        "{} is {} bytes, larger than the {} a release's {name} may be",
                        self.describe(name),
                        length.unwrap_or(0),
                        bytes_text(cap)
                    )));
                }
                let capped = Capped { inner: body, left: cap, what: self.describe(name) };
                Ok(Some(match deadline {
                    Some(_) => Box::new(capped),
                    None => Box::new(Moving {
                        inner: capped,
                        window: *timeout,
                        window_start: Instant::now(),
                        in_window: 0,
                        what: self.describe(name),
                    }),
                }))
            }
        }
    }

    fn located(&self, name: &str, e: FetchError) -> FetchError {
        match e {
            FetchError::Refused(m) => FetchError::Refused(format!("{} {m}", self.describe(name))),
            FetchError::Failed(e) => FetchError::Failed(e.context(format!("cannot read {}", self.describe(name)))),
        }
    }

    /// Every entry of a release directory with its kind (symbolic links are
    /// not followed), sorted; `None` over HTTP, where nothing can be listed.
    pub fn entries(&self) -> Option<Result<Vec<(String, EntryKind)>>> {
        let Release::Dir { dir, .. } = self else { return None };
        let list = || -> Result<Vec<(String, EntryKind)>> {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
                let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
                let meta = std::fs::symlink_metadata(entry.path()).with_context(|| format!("cannot stat {}", entry.path().display()))?;
                let kind = if meta.file_type().is_file() {
                    EntryKind::File
                } else {
                    EntryKind::Other(crate::fsutil::file_type_name(FileType::from_raw_mode(std::os::unix::fs::MetadataExt::mode(&meta))))
                };
                out.push((entry.file_name().to_string_lossy().into_owned(), kind));
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        };
        Some(list())
    }
}

fn too_large(what: &str, cap: u64) -> String {
    format!("{what} is larger than {}, more than a release file of its kind can be: refused unread", bytes_text(cap))
}

fn bytes_text(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// Opens the regular file `name` of the directory `root` without following
/// a symbolic link; the name is first opened with `O_PATH`, which opens
/// nothing (a FIFO or a device is never opened for reading). Returns the
/// file and its size.
fn open_regular(root: &OwnedFd, name: &str) -> Result<Option<(std::fs::File, u64)>, FetchError> {
    let path = match rustix::fs::openat(root, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(FetchError::Failed(e.into())),
    };
    let stat = |fd: &OwnedFd| rustix::fs::fstat(fd).map(|s| (FileType::from_raw_mode(s.st_mode), s.st_dev, s.st_ino, s.st_size as u64));
    let (file_type, dev, ino, _) = stat(&path).map_err(|e| FetchError::Failed(e.into()))?;
    if file_type != FileType::RegularFile {
        return Err(FetchError::Refused(format!(
            "is {}, not a regular file: a release directory holds regular files only",
            crate::fsutil::file_type_name(file_type)
        )));
    }
    let fd = rustix::fs::openat(root, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| FetchError::Failed(e.into()))?;
    match stat(&fd) {
        Ok((FileType::RegularFile, d, i, size)) if (d, i) == (dev, ino) => Ok(Some((std::fs::File::from(fd), size))),
        _ => Err(FetchError::Refused("changed while it was being opened".to_owned())),
    }
}

/// The response to `GET url`, following redirects by the module's rules:
/// the body and its announced length; `None` for 404 / 410.
fn get(
    agent: &ureq::Agent,
    first: &str,
    http_allowed: bool,
    deadline: Option<Instant>,
    timeout: Duration,
) -> Result<Option<(ureq::BodyReader<'static>, Option<u64>)>, FetchError> {
    let mut url = first.to_owned();
    for hop in 0..=MAX_REDIRECTS {
        let mut request = agent.get(&url);
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(FetchError::Failed(anyhow!("{}: no answer within the deadline", redacted(first))));
            }
            request = request.config().timeout_global(Some(left)).build();
        }
        let response = request.call().map_err(|e| {
            let timed_out = matches!(e, ureq::Error::Timeout(_));
            FetchError::Failed(if timed_out {
                anyhow!("{}: timed out (--http-timeout {} s; PJRTPKGS_HTTP_TIMEOUT sets it too)", redacted(&url), timeout.as_secs_f64())
            } else {
                anyhow::Error::new(e).context(format!("cannot fetch {}", redacted(&url)))
            })
        })?;
        let status = response.status().as_u16();
        match status {
            301 | 302 | 303 | 307 | 308 => {
                if hop == MAX_REDIRECTS {
                    break;
                }
                let location =
                    response.headers().get("location").and_then(|v| v.to_str().ok()).ok_or_else(|| {
                        FetchError::Failed(anyhow!("{} answered HTTP {status} without a usable Location", redacted(&url)))
                    })?;
                url = follow(&url, location, http_allowed).map_err(|why| {
                    FetchError::Refused(format!("{} redirected to `{}`, which is refused: {why}", redacted(&url), redacted(location)))
                })?;
            }
            200 => {
                let length = response.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
                return Ok(Some((response.into_body().into_reader(), length)));
            }
            404 | 410 => return Ok(None),
            code => return Err(FetchError::Failed(anyhow!("{} answered HTTP {code}", redacted(&url)))),
        }
    }
    Err(FetchError::Failed(anyhow!("{}: more than {MAX_REDIRECTS} redirects; a release asset takes one", redacted(first))))
}

/// The URL a redirect from `from` to `location` leads to, or why it is
/// refused. `http_allowed`: the release URL itself was http.
pub fn follow(from: &str, location: &str, http_allowed: bool) -> Result<String, String> {
    let location = location.trim();
    if location.is_empty() || location.chars().any(|c| c.is_control() || c == ' ') {
        return Err("not a URL".to_owned());
    }
    let (scheme, rest) = from.split_once("://").ok_or("the previous URL has no scheme")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = (&rest[..authority_end], &rest[authority_end..]);
    // RFC 3986: a reference that starts with `scheme:` is absolute.
    let has_scheme = location.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic()) && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let next = if has_scheme {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
        format!("{scheme}://{authority}{dir}{location}")
    };
    let uri: ureq::http::Uri = next.parse().map_err(|_| "not a URL".to_owned())?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => {}
        Some("http") if http_allowed => {}
        Some("http") => return Err("it goes from https down to plain http".to_owned()),
        Some(other) => return Err(format!("`{other}` is not http(s)")),
        None => return Err("not an absolute URL".to_owned()),
    }
    let authority = uri.authority().ok_or("it names no host")?;
    if authority.as_str().contains('@') {
        return Err("it carries credentials".to_owned());
    }
    Ok(next)
}

/// Passes at most `left` bytes on; one more is a refusal.
struct Capped<R> {
    inner: R,
    left: u64,
    what: String,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Ask for one byte past the cap, so going over it is seen.
        let want = buf.len().min(self.left.saturating_add(1).min(usize::MAX as u64) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(TooLarge(format!("{} is larger than its size on record: refused", self.what))));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Fails a transfer that moves less than [`MIN_BYTES_PER_WINDOW`] in a
/// window of `window`.
struct Moving<R> {
    inner: R,
    window: Duration,
    window_start: Instant,
    in_window: u64,
    what: String,
}

impl<R: Read> Read for Moving<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.in_window += n as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= self.window {
            if self.in_window < MIN_BYTES_PER_WINDOW && n > 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    Crawling(format!(
                        "{}: the transfer crawls ({} bytes in {:.1} s, under {} per --http-timeout window): given up",
                        self.what,
                        self.in_window,
                        elapsed.as_secs_f64(),
                        bytes_text(MIN_BYTES_PER_WINDOW)
                    )),
                ));
            }
            self.window_start = Instant::now();
            self.in_window = 0;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_follow_the_rules() {
        let from = "https://github.com/o/r/releases/download/v0.93.1/SHA256SUMS";
        let to = "https://objects.githubusercontent.com/x/y?X-Amz-Signature=a";
        assert_eq!(follow(from, to, false).unwrap(), to);
        assert_eq!(follow(from, "/o/r/other", false).unwrap(), "https://github.com/o/r/other");
        assert_eq!(follow(from, "//cdn.example/a", false).unwrap(), "https://cdn.example/a");
        assert_eq!(
            follow(from, "SHA256SUMS.minisig", false).unwrap(),
            "https://github.com/o/r/releases/download/v0.93.1/SHA256SUMS.minisig"
        );
        assert!(follow(from, "http://objects.githubusercontent.com/x", false).unwrap_err().contains("plain http"));
        assert_eq!(follow("http://127.0.0.1:1/a", "http://127.0.0.1:2/b", true).unwrap(), "http://127.0.0.1:2/b");
        for bad in
            ["file:///etc/passwd", "ftp://x/y", "https://user:pw@evil.example/x", "https://evil.example/a b", "", "javascript:alert(1)"]
        {
            assert!(follow(from, bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn caps_and_crawls() {
        let mut capped = Capped { inner: &[0u8; 10][..], left: 9, what: "x".into() };
        let e = std::io::copy(&mut capped, &mut std::io::sink()).unwrap_err();
        assert!(refusal_of(&e).is_some());
        let mut exact = Capped { inner: &[0u8; 10][..], left: 10, what: "x".into() };
        assert_eq!(std::io::copy(&mut exact, &mut std::io::sink()).unwrap(), 10);
        assert_eq!(bytes_text(1 << 20), "1 MiB");
        assert_eq!(redacted("https://tok:en@host.example/a"), "https://***@host.example/a");
    }
}
