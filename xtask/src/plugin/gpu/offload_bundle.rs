//! The AMD GPU code a HIP plugin carries (`.hip_fatbin`): clang offload
//! bundles, one per translation unit, each naming its targets
//! (`hipv4-amdgcn-amd-amdhsa--gfx90a:xnack-`).
//!
//! Layout (clang's `clang-offload-bundler`): a plain bundle is the magic
//! `__CLANG_OFFLOAD_BUNDLE__`, an entry count (u64), then per entry its
//! offset, size and triple length (u64 each) and the triple. ROCm 6.2+
//! compresses bundles: magic `CCOB`, version (u16), method (u16: 0 zlib,
//! 1 zstd), then for version 2 the total size (u32) and uncompressed size
//! (u32), for version 3 both as u64, a hash (u64), then the compressed
//! plain bundle. Only the start of each is decompressed: the header is all
//! that is needed.

use std::collections::BTreeSet;
use std::io::Read;

const PLAIN: &[u8] = b"__CLANG_OFFLOAD_BUNDLE__";
const COMPRESSED: &[u8] = b"CCOB";
/// Bytes of a decompressed bundle read to find its header.
const HEADER_BYTES: usize = 16 * 1024;

/// What the bundles say.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AmdTargets {
    /// `gfx90a`, `gfx942`, `gfx11-generic`, ... (target features dropped).
    pub targets: BTreeSet<String>,
    pub bundles: usize,
    /// Bundles whose header could not be read, with why.
    pub unreadable: Vec<String>,
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// `hipv4-amdgcn-amd-amdhsa--gfx90a:xnack-` -> `gfx90a`.
pub fn target_of_triple(triple: &str) -> Option<String> {
    if !triple.contains("amdgcn") {
        return None;
    }
    let cpu = triple.rsplit('-').find(|p| p.starts_with("gfx")).map(str::to_owned);
    // Generic targets contain dashes themselves (gfx10-3-generic).
    if let Some(at) = triple.find("gfx") {
        let rest = &triple[at..];
        let name = rest.split(':').next().unwrap_or(rest);
        if name.ends_with("-generic") {
            return Some(name.to_owned());
        }
    }
    cpu.map(|c| c.split(':').next().unwrap_or(&c).to_owned())
}

/// The triples of a plain bundle's header; `None` if it is not one or is
/// cut short.
fn plain_triples(data: &[u8]) -> Option<(Vec<String>, usize)> {
    if !data.starts_with(PLAIN) {
        return None;
    }
    let count = u64_at(data, PLAIN.len())?;
    let mut at = PLAIN.len() + 8;
    let mut triples = Vec::new();
    let mut end = at;
    for _ in 0..count.min(4096) {
        let offset = u64_at(data, at)?;
        let size = u64_at(data, at + 8)?;
        let len = usize::try_from(u64_at(data, at + 16)?).ok().filter(|&l| l <= 4096)?;
        let triple = data.get(at + 24..at + 24 + len)?;
        triples.push(String::from_utf8_lossy(triple).into_owned());
        at += 24 + len;
        end = end.max(usize::try_from(offset.checked_add(size)?).ok()?);
    }
    Some((triples, end.max(at)))
}

fn decompress_head(method: u16, compressed: &[u8]) -> Result<Vec<u8>, String> {
    let mut head = Vec::with_capacity(HEADER_BYTES);
    let result = match method {
        0 => flate2::read::ZlibDecoder::new(compressed).take(HEADER_BYTES as u64).read_to_end(&mut head),
        // libzstd's streaming decoder hands out the first bytes as soon
        // as they are decoded; ruzstd keeps a single-segment frame's whole
        // content as its window and gives nothing before the end (8.5 s for
        // jax-rocm7-pjrt's 45 bundles, against milliseconds here).
        1 => match zstd::stream::read::Decoder::with_buffer(compressed) {
            Ok(decoder) => decoder.take(HEADER_BYTES as u64).read_to_end(&mut head),
            Err(e) => return Err(format!("zstd: {e}")),
        },
        other => return Err(format!("compression method {other} is unknown")),
    };
    match result {
        Ok(_) => Ok(head),
        // A header already read is enough, even if the stream errs later.
        Err(_) if head.len() > PLAIN.len() + 8 => Ok(head),
        Err(e) => Err(format!("cannot decompress: {e}")),
    }
}

/// Reads every bundle in a `.hip_fatbin` section.
pub fn scan(data: &[u8]) -> AmdTargets {
    let mut found = AmdTargets::default();
    let mut pos = 0usize;
    loop {
        let next_c = memchr::memmem::find(&data[pos..], COMPRESSED).map(|p| p + pos);
        let next_p = memchr::memmem::find(&data[pos..], PLAIN).map(|p| p + pos);
        let at = match (next_c, next_p) {
            (Some(c), Some(p)) => c.min(p),
            (Some(c), None) => c,
            (None, Some(p)) => p,
            (None, None) => break,
        };
        found.bundles += 1;
        let bundle = &data[at..];
        let (triples, length) = if bundle.starts_with(PLAIN) {
            match plain_triples(bundle) {
                Some(t) => t,
                None => {
                    found.unreadable.push(format!("bundle at {at:#x}: header cut short"));
                    (Vec::new(), PLAIN.len())
                }
            }
        } else {
            let version = bundle.get(4..6).map(|b| u16::from_le_bytes([b[0], b[1]])).unwrap_or(0);
            let method = bundle.get(6..8).map(|b| u16::from_le_bytes([b[0], b[1]])).unwrap_or(u16::MAX);
            let (header, total) = match version {
                1 => (20, None),
                2 => (24, u32_at(bundle, 8).map(u64::from)),
                3 => (32, u64_at(bundle, 8)),
                _ => (0, None),
            };
            if header == 0 {
                // "CCOB" inside some other bytes, or a version this reader
                // does not know.
                found.bundles -= 1;
                pos = at + COMPRESSED.len();
                continue;
            }
            let length = total.and_then(|t| usize::try_from(t).ok()).filter(|&t| t > header && t <= bundle.len()).unwrap_or(header);
            let compressed = &bundle[header.min(bundle.len())..if length > header { length } else { bundle.len() }];
            match decompress_head(method, compressed) {
                Ok(head) => match plain_triples(&head) {
                    Some((t, _)) => (t, length),
                    None => {
                        found.unreadable.push(format!("bundle at {at:#x}: no bundle header after decompression"));
                        (Vec::new(), length)
                    }
                },
                Err(e) => {
                    found.unreadable.push(format!("bundle at {at:#x}: {e}"));
                    (Vec::new(), length)
                }
            }
        };
        found.targets.extend(triples.iter().filter_map(|t| target_of_triple(t)));
        pos = at + length.max(1);
        if pos >= data.len() {
            break;
        }
    }
    found
}

/// The processors an LLVM generic target covers (LLVM's AMDGPU usage
/// document, "Generic processors").
fn generic_members(generic: &str) -> &'static [&'static str] {
    match generic {
        "gfx9-generic" => &["gfx900", "gfx902", "gfx904", "gfx906", "gfx909", "gfx90c"],
        "gfx9-4-generic" => &["gfx940", "gfx941", "gfx942", "gfx950"],
        "gfx10-1-generic" => &["gfx1010", "gfx1011", "gfx1012", "gfx1013"],
        "gfx10-3-generic" => &["gfx1030", "gfx1031", "gfx1032", "gfx1033", "gfx1034", "gfx1035", "gfx1036"],
        "gfx11-generic" => &["gfx1100", "gfx1101", "gfx1102", "gfx1103", "gfx1150", "gfx1151", "gfx1152", "gfx1153"],
        "gfx12-generic" => &["gfx1200", "gfx1201"],
        _ => &[],
    }
}

/// Whether code for `gpu` (`gfx90a`) is among `targets`.
pub fn covers(targets: &AmdTargets, gpu: &str) -> bool {
    targets.targets.iter().any(|t| t == gpu || generic_members(t).contains(&gpu))
}

/// The name of a KFD `gfx_target_version` (90010 -> gfx90a).
pub fn gfx_name(version: u32) -> String {
    format!("gfx{}{}{:x}", version / 10000, (version / 100) % 100, version % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(triples: &[&str]) -> Vec<u8> {
        let mut b = PLAIN.to_vec();
        b.extend_from_slice(&(triples.len() as u64).to_le_bytes());
        for t in triples {
            b.extend_from_slice(&0u64.to_le_bytes());
            b.extend_from_slice(&0u64.to_le_bytes());
            b.extend_from_slice(&(t.len() as u64).to_le_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        b
    }

    #[test]
    fn reads_plain_and_zlib_compressed_bundles() {
        use std::io::Write;
        let first = plain(&["host-x86_64-unknown-linux-gnu-", "hipv4-amdgcn-amd-amdhsa--gfx90a:xnack-"]);
        let inner = plain(&["hipv4-amdgcn-amd-amdhsa--gfx11-generic", "hipv4-amdgcn-amd-amdhsa--gfx942"]);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&inner).unwrap();
        let compressed = z.finish().unwrap();
        let mut ccob = COMPRESSED.to_vec();
        ccob.extend_from_slice(&3u16.to_le_bytes());
        ccob.extend_from_slice(&0u16.to_le_bytes());
        ccob.extend_from_slice(&((32 + compressed.len()) as u64).to_le_bytes());
        ccob.extend_from_slice(&(inner.len() as u64).to_le_bytes());
        ccob.extend_from_slice(&0u64.to_le_bytes());
        ccob.extend_from_slice(&compressed);
        let mut data = first;
        data.extend_from_slice(&[0; 100]);
        data.extend_from_slice(&ccob);
        let found = scan(&data);
        assert_eq!(found.bundles, 2);
        assert!(found.unreadable.is_empty(), "{:?}", found.unreadable);
        assert_eq!(found.targets.iter().cloned().collect::<Vec<_>>(), ["gfx11-generic", "gfx90a", "gfx942"]);
        assert!(covers(&found, "gfx1101"));
        assert!(covers(&found, "gfx90a"));
        assert!(!covers(&found, "gfx1030"));
    }

    #[test]
    fn names_and_malformed_input() {
        assert_eq!(gfx_name(90010), "gfx90a");
        assert_eq!(gfx_name(110000), "gfx1100");
        assert_eq!(gfx_name(90402), "gfx942");
        assert_eq!(target_of_triple("host-x86_64-unknown-linux-gnu-"), None);
        let mut cut = plain(&["hipv4-amdgcn-amd-amdhsa--gfx90a"]);
        cut.truncate(40);
        let found = scan(&cut);
        assert_eq!(found.unreadable.len(), 1);
        let mut bad = COMPRESSED.to_vec();
        bad.extend_from_slice(&[3, 0, 1, 0]);
        bad.extend_from_slice(&[0xff; 40]);
        assert_eq!(scan(&bad).unreadable.len(), 1);
    }
}
