//! PyPI's JSON API: the files of a release, with their sha256.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// `PJRTPKGS_PYPI_URL` overrides https://pypi.org (a mirror).
pub(super) fn base_url() -> String {
    std::env::var("PJRTPKGS_PYPI_URL").unwrap_or_else(|_| "https://pypi.org".to_owned())
}

#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub files: Vec<File>,
}

#[derive(Debug, Clone)]
pub struct File {
    pub filename: String,
    /// Canonical `https://files.pythonhosted.org/packages/...` URL.
    pub url: String,
    pub sha256: String,
}

#[derive(Deserialize)]
struct Json {
    info: Info,
    /// The files of `info.version`.
    urls: Vec<JsonFile>,
    /// Every release's files (only in the project-level document).
    #[serde(default)]
    releases: BTreeMap<String, Vec<JsonFile>>,
}

#[derive(Deserialize)]
struct Info {
    version: String,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    packagetype: String,
    #[serde(default)]
    yanked: bool,
    digests: Digests,
}

#[derive(Deserialize)]
struct Digests {
    sha256: Option<String>,
    blake2b_256: Option<String>,
}

/// GETs a PyPI JSON document; None on 404.
fn get(api: &str) -> Result<Option<Json>> {
    let what = format!("query PyPI ({api})");
    let text = match crate::http::get(api, &what) {
        Ok(mut resp) => resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| crate::http::read_error(std::io::Error::other(e), &what))?,
        Err(e) if matches!(e.downcast_ref::<ureq::Error>(), Some(ureq::Error::StatusCode(404))) => return Ok(None),
        Err(e) => return Err(e),
    };
    parse(&text).map(Some).with_context(|| format!("unexpected answer from {api}"))
}

/// Parses a PyPI JSON document (project or release level).
fn parse(text: &str) -> Result<Json> {
    Ok(serde_json::from_str(text)?)
}

/// The wheels of `name` at `version` (the latest release when None). Yanked
/// files and source distributions are left out. A version is looked up at
/// `/pypi/NAME/VERSION/json`, else in the project document's `releases`
/// (some mirrors only serve the latter).
pub fn release(name: &str, version: Option<&str>) -> Result<Release> {
    let project_api = format!("{}/pypi/{name}/json", base_url());
    let (api, version, files) = match version {
        Some(v) => {
            let version_api = format!("{}/pypi/{name}/{v}/json", base_url());
            match get(&version_api)? {
                Some(json) => (version_api, json.info.version, json.urls),
                None => {
                    let Some(mut json) = get(&project_api)? else {
                        bail!("PyPI has no project `{name}` ({project_api}: 404)");
                    };
                    let Some(files) = json.releases.remove(v) else {
                        let mut known: Vec<&String> = json.releases.keys().collect();
                        known.reverse();
                        known.truncate(12);
                        bail!(
                            "PyPI has no release {v} of `{name}` (some releases: {})",
                            known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        );
                    };
                    (project_api, v.to_owned(), files)
                }
            }
        }
        None => match get(&project_api)? {
            Some(json) => (project_api, json.info.version, json.urls),
            None => bail!("PyPI has no project `{name}` ({project_api}: 404)"),
        },
    };
    wheels(&api, version, files)
}

/// The usable wheels among `files` (of the document at `api`). A file name
/// that is not a plain wheel file name is refused: it becomes a cache file
/// name and part of the pinned URL.
fn wheels(api: &str, version: String, files: Vec<JsonFile>) -> Result<Release> {
    let mut wheels = Vec::new();
    for f in files {
        if f.packagetype != "bdist_wheel" || f.yanked {
            continue;
        }
        crate::fsutil::single_component(&f.filename, "PyPI's file name").with_context(|| format!("refusing the answer of {api}"))?;
        if super::wheel_tags(&f.filename).is_none() {
            bail!("refusing the answer of {api}: `{}` is listed as a wheel but is not a wheel file name", f.filename.escape_debug());
        }
        let Some(sha256) = f.digests.sha256 else { continue };
        let url = canonical_url(api, &f.url, f.digests.blake2b_256.as_deref(), &f.filename);
        wheels.push(File { filename: f.filename, url, sha256: sha256.to_ascii_lowercase() });
    }
    Ok(Release { version, files: wheels })
}

/// PyPI stores every file at `packages/<b2[0:2]>/<b2[2:4]>/<b2[4:]>/<name>`
/// (b2 = blake2b-256 of the file) on files.pythonhosted.org; pins always use
/// that address, even when a mirror answered with another one.
fn canonical_url(api: &str, url: &str, blake2b: Option<&str>, filename: &str) -> String {
    if let Some(b) = blake2b.filter(|b| b.len() == 64 && b.bytes().all(|c| c.is_ascii_hexdigit())) {
        return format!("https://files.pythonhosted.org/packages/{}/{}/{}/{filename}", &b[..2], &b[2..4], &b[4..]);
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return url.to_owned();
    }
    // A relative URL: resolve it against the API URL.
    let (scheme_host, path) = match api.find("://").and_then(|i| api[i + 3..].find('/').map(|j| i + 3 + j)) {
        Some(i) => (&api[..i], &api[i..]),
        None => (api, "/"),
    };
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments.pop(); // the document itself
    for part in url.split('/') {
        match part {
            ".." => {
                segments.pop();
            }
            "." | "" => {}
            p => segments.push(p),
        }
    }
    format!("{scheme_host}/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical() {
        let b2 = "c92d2c6703356beded886d95f9e37adb49aeca7b21e7617f2ff59893f038f61e";
        assert_eq!(
            super::canonical_url("https://pypi.org/pypi/x/json", "../../packages/packages/c9/x.whl", Some(b2), "x.whl"),
            "https://files.pythonhosted.org/packages/c9/2d/2c6703356beded886d95f9e37adb49aeca7b21e7617f2ff59893f038f61e/x.whl"
        );
        assert_eq!(
            super::canonical_url("https://pypi.org/pypi/x/json", "../../packages/ab/x.whl", None, "x.whl"),
            "https://pypi.org/packages/ab/x.whl"
        );
    }
}
