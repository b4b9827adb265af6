//! PyPI's JSON API: the files of a release, with their sha256.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// `PJRTPKGS_PYPI_URL` overrides https://pypi.org (a mirror).
pub(crate) fn base_url() -> String {
    let url = std::env::var("PJRTPKGS_PYPI_URL").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "https://pypi.org".to_owned());
    let url = url.trim_end_matches('/').to_owned();
    if url.starts_with("http://") {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            eprintln!(
                "warning: PJRTPKGS_PYPI_URL={url} is plain http: its answers (the sha256 and URLs that get pinned) can be altered on the way; use an https mirror outside a trusted network"
            )
        });
    }
    url
}

#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub files: Vec<File>,
}

impl Release {
    /// The wheel of this release that fits `system` best (by
    /// [`wheel_rank`](super::wheel::wheel_rank)), None when none fits.
    pub fn best_file(&self, system: &str) -> Option<&File> {
        self.files
            .iter()
            .filter_map(|f| super::wheel::wheel_rank(&f.filename, system).map(|rank| (rank, f)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, f)| f)
    }
}

#[derive(Debug, Clone)]
pub struct File {
    pub filename: String,
    /// Canonical `https://files.pythonhosted.org/packages/...` URL.
    pub url: String,
    pub sha256: String,
    /// Bytes, as PyPI says (for messages only).
    pub size: Option<u64>,
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
    #[serde(default)]
    size: Option<u64>,
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

/// Every release of `name` with its wheels (the project document's
/// `releases`), in no particular order; None when PyPI has no such project.
/// Releases whose version is not PEP 440 are left out (they cannot satisfy
/// a requirement); so are yanked files, as in [`release`].
pub fn releases(name: &str) -> Result<Option<Vec<Release>>> {
    let api = format!("{}/pypi/{name}/json", base_url());
    let Some(json) = get(&api)? else { return Ok(None) };
    let mut out = Vec::new();
    for (version, files) in json.releases {
        if version.parse::<pep440_rs::Version>().is_ok() {
            out.push(wheels(&api, version, files)?);
        }
    }
    Ok(Some(out))
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
        // The pin keeps the URL, the cache the file name: they must agree
        // (PyPI's always do), or what is checked is not what is fetched.
        if url.rsplit('/').next() != Some(f.filename.as_str()) {
            bail!("refusing the answer of {api}: the URL of `{}` does not end with that file name: {url}", f.filename.escape_debug());
        }
        wheels.push(File { filename: f.filename, url, sha256: sha256.to_ascii_lowercase(), size: f.size });
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
    use proptest::prelude::*;

    /// PyPI's answer, fuzzed: file names from a hostile alphabet, digests,
    /// URLs, and the whole document's bytes edited. Parsing never panics,
    /// and every wheel that comes out has a plain wheel file name, which is
    /// also the last segment of its URL.
    fn file_name() -> impl Strategy<Value = String> {
        let part =
            prop::sample::select(vec!["..", ".", "/", "x", "-", "1.0", "py3", "none", "manylinux_2_27_x86_64", ".whl", "\\", "\0", "%2e"]);
        let hostile = prop::collection::vec(part.clone(), 0..4).prop_map(|p| p.concat());
        prop_oneof![
            // A real wheel name with hostile text in front or inside.
            (hostile.clone(), hostile.clone()).prop_map(|(a, b)| format!("{a}x{b}-1.0-py3-none-manylinux_2_27_x86_64.whl")),
            prop::collection::vec(part, 1..12).prop_map(|p| p.concat()),
        ]
    }

    fn cases() -> u32 {
        std::env::var("PJRTPKGS_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn pypi_answers_never_panic_and_name_only_plain_wheels(
            names in prop::collection::vec(file_name(), 1..4),
            blake in prop::option::of("[0-9a-f]{64}|[0-9a-zA-Z./]{0,70}"),
            url in "(https?://[a-z0-9.:]{1,20})?(/|\\.\\./)[a-z0-9./]{0,30}",
            cut in any::<usize>(), flip in any::<(usize, u8)>(),
        ) {
            let files: Vec<serde_json::Value> = names.iter().map(|n| serde_json::json!({
                "filename": n, "url": format!("{url}{n}"), "packagetype": "bdist_wheel",
                "digests": {"sha256": "AB".repeat(32), "blake2b_256": blake.clone()},
            })).collect();
            let doc = serde_json::json!({"info": {"version": "1.0"}, "urls": files, "releases": {"1.0": []}}).to_string();
            let api = "https://pypi.example/pypi/x/json";
            if let Ok(json) = super::parse(&doc) {
                if let Ok(release) = super::wheels(api, json.info.version, json.urls) {
                    for f in &release.files {
                        prop_assert!(crate::fsutil::single_component(&f.filename, "file").is_ok(), "{:?}", f.filename);
                        prop_assert!(super::super::wheel_tags(&f.filename).is_some(), "{:?}", f.filename);
                        prop_assert!(f.url.ends_with(&format!("/{}", f.filename)), "{} for {:?}", f.url, f.filename);
                        prop_assert_eq!(f.sha256.len(), 64);
                    }
                }
            }
            // The same document with its bytes edited.
            let mut bytes = doc.into_bytes();
            if !bytes.is_empty() {
                let at = flip.0 % bytes.len();
                bytes[at] ^= flip.1;
                bytes.truncate(cut % (bytes.len() + 1));
            }
            if let Ok(json) = super::parse(&String::from_utf8_lossy(&bytes)) {
                let _ = super::wheels(api, json.info.version, json.urls);
            }
        }
    }

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
