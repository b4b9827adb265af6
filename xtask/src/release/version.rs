//! Release versions: `v<PJRT major>.<PJRT minor>.<build>`, as GoMLX tags
//! its plugin releases, and `.devYYYYMMDD` pre-releases of the next build
//! (PEP 440 orders `0.93.2.dev20260301` before `0.93.2`).

use std::cmp::Ordering;
use std::fmt;

use anyhow::{bail, Context, Result};

/// One release version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseVersion {
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    /// `YYYYMMDD` of a pre-release.
    pub dev: Option<String>,
}

impl ReleaseVersion {
    /// The version of a plugin implementing PJRT `api` ("0.93") in build `build`.
    pub fn new(api: &str, build: u32, dev: Option<&str>) -> Result<ReleaseVersion> {
        let api: crate::xla_headers::ApiVersion = api.parse()?;
        Ok(ReleaseVersion { major: api.major, minor: api.minor, build, dev: dev.map(str::to_owned) })
    }

    /// `v0.93.1` / `v0.93.1.dev20260301`.
    pub fn tag(&self) -> String {
        format!("v{self}")
    }

    /// Parses a tag (`v0.93.1`, `v0.93.1.dev20260301`); None when it is not one.
    pub fn parse_tag(tag: &str) -> Option<ReleaseVersion> {
        let rest = tag.strip_prefix('v')?;
        let (numbers, dev) = match rest.split_once(".dev") {
            Some((n, d)) if is_date(d) => (n, Some(d.to_owned())),
            Some(_) => return None,
            None => (rest, None),
        };
        let number = |p: &str| -> Option<u32> {
            let canonical = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'));
            canonical.then(|| p.parse().ok()).flatten()
        };
        let parts: Vec<u32> = numbers.split('.').map(number).collect::<Option<_>>()?;
        match parts[..] {
            [major, minor, build] => Some(ReleaseVersion { major, minor, build, dev }),
            _ => None,
        }
    }

    /// The order of releases: by number, a pre-release before its build.
    pub fn order(&self, other: &ReleaseVersion) -> Ordering {
        (self.major, self.minor, self.build).cmp(&(other.major, other.minor, other.build)).then_with(|| match (&self.dev, &other.dev) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.cmp(b),
        })
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)?;
        if let Some(date) = &self.dev {
            write!(f, ".dev{date}")?;
        }
        Ok(())
    }
}

/// Whether `s` is a plausible `YYYYMMDD`.
pub fn is_date(s: &str) -> bool {
    s.len() == 8
        && s.bytes().all(|b| b.is_ascii_digit())
        && (1..=12).contains(&s[4..6].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&s[6..8].parse::<u32>().unwrap_or(0))
}

/// The date of a pre-release: `date` when given, else the day (UTC) of
/// `SOURCE_DATE_EPOCH` when set (reproducible builds), else today (UTC).
pub fn dev_date(date: Option<&str>) -> Result<String> {
    if let Some(d) = date {
        if !is_date(d) {
            bail!("--date `{d}` is not a date YYYYMMDD (20260301)");
        }
        return Ok(d.to_owned());
    }
    let seconds = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse::<i64>().with_context(|| format!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"))?,
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).context("the clock is before 1970")?.as_secs() as i64,
    };
    let (y, m, d) = civil_from_days(seconds.div_euclid(86_400));
    Ok(format!("{y:04}{m:02}{d:02}"))
}

/// Seconds since the epoch of an RFC 3339 date with an offset
/// (`2026-02-20T22:36:47-08:00`), the form of `[xla] date`.
pub fn epoch_seconds(rfc3339: &str) -> Result<i64> {
    let dt: toml::value::Datetime = rfc3339.parse().with_context(|| format!("`{rfc3339}` is not an RFC 3339 date"))?;
    let (Some(date), Some(time), Some(offset)) = (dt.date, dt.time, dt.offset) else {
        bail!("`{rfc3339}` is not a full RFC 3339 date with an offset");
    };
    let days = days_from_civil(i64::from(date.year), u32::from(date.month), u32::from(date.day));
    let offset_minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i64::from(minutes),
    };
    Ok(days * 86_400 + i64::from(time.hour) * 3600 + i64::from(time.minute) * 60 + i64::from(time.second.unwrap_or(0))
        - offset_minutes * 60)
}

/// `2026-02-21T06:36:47Z`: seconds since the epoch as an RFC 3339 UTC date.
pub fn rfc3339_utc(seconds: i64) -> String {
    let (y, m, d) = civil_from_days(seconds.div_euclid(86_400));
    let s = seconds.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        let v = ReleaseVersion::new("0.93", 1, None).unwrap();
        assert_eq!(v.tag(), "v0.93.1");
        assert_eq!(ReleaseVersion::parse_tag("v0.93.1"), Some(v.clone()));
        let dev = ReleaseVersion::new("0.93", 2, Some("20260301")).unwrap();
        assert_eq!(dev.tag(), "v0.93.2.dev20260301");
        assert_eq!(ReleaseVersion::parse_tag(&dev.tag()), Some(dev.clone()));
        assert_eq!(dev.order(&v), Ordering::Greater);
        let final2 = ReleaseVersion::new("0.93", 2, None).unwrap();
        assert_eq!(dev.order(&final2), Ordering::Less);
        for bad in ["0.93.1", "v0.93", "v0.93.1.dev2026", "v0.93.x", "v0.93.1.rc1", "v0.93.1.2", "v0.093.1", "v0.+93.1"] {
            assert_eq!(ReleaseVersion::parse_tag(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:00Z").unwrap(), 0);
        // `date -d 2026-02-20T22:36:47-08:00 +%s`
        assert_eq!(epoch_seconds("2026-02-20T22:36:47-08:00").unwrap(), 1_771_655_807);
        assert_eq!(rfc3339_utc(1_771_655_807), "2026-02-21T06:36:47Z");
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(dev_date(Some("20260301")).unwrap(), "20260301");
        assert!(dev_date(Some("2026-03-01")).is_err());
    }
}
