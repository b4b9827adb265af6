//! Formats of pins.toml values shared by its rules (`check`) and its
//! tables with rules of their own (`runtime`), and how a key is written.

use super::SYSTEMS;

/// A key segment as written in a dotted path.
pub(crate) fn segment(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        key.to_owned()
    } else {
        format!("\"{key}\"")
    }
}

/// What is wrong with a prebuilt wheel's URL for `version` on `system`:
/// not https, no wheel file name at its end, another version, a platform
/// tag that does not fit. Also checked by `prebuilt update` before it
/// downloads anything.
pub(crate) fn wheel_url_problems(url: &str, version: &str, system: &str) -> Vec<String> {
    if !url.starts_with("https://") {
        return vec![format!("`{url}` is not an https URL")];
    }
    let file = url.rsplit('/').next().unwrap_or("");
    let Some(tags) = crate::wheels::wheel_tags(file) else {
        return vec![format!("`{file}` is not a wheel file name")];
    };
    let mut problems = Vec::new();
    if crate::fsutil::single_component(file, "the wheel").is_err() {
        problems.push(format!("`{file}` cannot be used as a file name"));
    }
    if tags.version != version {
        problems.push(format!("the wheel `{file}` is version {}, not the pinned {version}", tags.version));
    }
    if SYSTEMS.contains(&system) && !tags.platforms.iter().any(|t| crate::wheels::platform_tag_fits(t, system)) {
        problems.push(format!("the wheel `{file}` is not built for {system}"));
    }
    problems
}

/// A PyPI project name (PEP 508): ASCII letters, digits, `.`, `_`, `-`,
/// beginning and ending with a letter or digit. Such a name is always a
/// safe single path component (the cache directory of the plugin).
pub(crate) fn is_project_name(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 200
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| alnum(b) || b == b'.' || b == b'_' || b == b'-')
}

/// A path inside a wheel: see [`crate::wheels::wheel::is_member_path`].
pub(crate) fn is_member_path(s: &str) -> bool {
    crate::wheels::wheel::is_member_path(s)
}

pub(crate) fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
