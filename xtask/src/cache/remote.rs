//! Reading a binary cache by its store URL, without Nix: `file://` from the
//! disk, `http(s)://` with ureq. Other schemes (`s3://`, `ssh://`) are left to
//! Nix itself (`cache verify --with-nix`).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub enum BinaryCache {
    File(PathBuf),
    Http { base: String, agent: ureq::Agent },
}

impl BinaryCache {
    /// `None` for a scheme this reader does not speak.
    pub fn open(url: &str) -> Result<Option<BinaryCache>> {
        // Store parameters (`?compression=...`) matter to writers only.
        let base = url.split_once('?').map_or(url, |(b, _)| b).trim_end_matches('/');
        if let Some(path) = base.strip_prefix("file://") {
            if path.is_empty() {
                bail!("`{url}` names no directory; write file:///absolute/path");
            }
            return Ok(Some(BinaryCache::File(PathBuf::from(path))));
        }
        if base.starts_with("http://") || base.starts_with("https://") {
            let config = crate::http::config().http_status_as_error(false).timeout_connect(Some(Duration::from_secs(30))).build();
            return Ok(Some(BinaryCache::Http { base: base.to_owned(), agent: ureq::Agent::new_with_config(config) }));
        }
        Ok(None)
    }

    pub fn describe(&self, rel: &str) -> String {
        match self {
            BinaryCache::File(dir) => dir.join(rel).display().to_string(),
            BinaryCache::Http { base, .. } => format!("{base}/{rel}"),
        }
    }

    /// A file of the cache, `None` when the cache does not have it.
    pub fn get(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>> {
        match self {
            BinaryCache::File(dir) => match std::fs::File::open(dir.join(rel)) {
                Ok(f) => Ok(Some(Box::new(f))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("cannot read {}", self.describe(rel))),
            },
            BinaryCache::Http { base, agent } => {
                let url = format!("{base}/{rel}");
                let response = agent.get(&url).call().with_context(|| format!("cannot fetch {url}"))?;
                match response.status().as_u16() {
                    200 => Ok(Some(Box::new(response.into_body().into_reader()))),
                    // S3 answers 403 for a missing key when listing is not allowed.
                    403 | 404 | 410 => Ok(None),
                    code => bail!("fetching {url} answered HTTP {code}; is the server up and the URL the cache root?"),
                }
            }
        }
    }

    pub fn get_text(&self, rel: &str) -> Result<Option<String>> {
        let Some(mut reader) = self.get(rel)? else { return Ok(None) };
        let mut text = String::new();
        // A narinfo is a few hundred bytes; refuse to slurp something huge.
        reader.by_ref().take(1 << 20).read_to_string(&mut text).with_context(|| format!("cannot read {} as text", self.describe(rel)))?;
        Ok(Some(text))
    }
}
