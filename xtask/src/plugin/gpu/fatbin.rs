//! The CUDA fat binaries a plugin carries (`.nv_fatbin`, and
//! `__nv_relfatbin` for relocatable device code): which GPU architectures
//! it has machine code (SASS) for, and which PTX it can JIT-compile.
//!
//! Layout (NVIDIA's `fatbinary` container, as `cuobjdump` lists it): a
//! 16-byte header (magic 0xBA55ED50, version, header size, size of what
//! follows), then entries, each a header (kind: 1 = PTX, 2 = ELF/SASS;
//! header size; payload size; at +0x18 the format version as minor,
//! major; at +0x1c the architecture number, 90 for sm_90) and its payload.
//! Containers follow one another, zero-padded. For PTX the version is the
//! PTX ISA's (8.8 for CUDA 12.9, 9.0 for CUDA 13.0), which says which CUDA
//! release built it. Payloads are never read (they may be compressed).

use std::collections::BTreeSet;

use serde::Serialize;

const MAGIC: u32 = 0xBA55_ED50;

/// What the fat binaries of one object contain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CudaTargets {
    /// Architectures with SASS (`90` for sm_90).
    pub sass: BTreeSet<u32>,
    /// Architectures with PTX (`120` for compute_120).
    pub ptx: BTreeSet<u32>,
    /// PTX ISA versions (major, minor) seen.
    pub ptx_isa: BTreeSet<(u16, u16)>,
    pub containers: usize,
}

impl CudaTargets {
    pub fn is_empty(&self) -> bool {
        self.sass.is_empty() && self.ptx.is_empty()
    }

    /// The CUDA major that emits the newest PTX ISA seen (PTX 7.x: CUDA
    /// 11, 8.x: CUDA 12, 9.x: CUDA 13).
    pub fn cuda_major(&self) -> Option<u32> {
        let (major, _) = self.ptx_isa.iter().next_back()?;
        match major {
            7 => Some(11),
            8 => Some(12),
            9 => Some(13),
            _ => None,
        }
    }

    /// `sm_50, sm_60, ..., compute_120`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.sass.iter().map(|a| format!("sm_{a}")).collect();
        parts.extend(self.ptx.iter().map(|a| format!("compute_{a}")));
        parts.join(", ")
    }
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// Reads the containers in one fat-binary section. Malformed data ends the
/// walk; what was read until then stands.
pub fn scan(data: &[u8], targets: &mut CudaTargets) {
    let mut pos = 0usize;
    while pos + 16 <= data.len() {
        if u32_at(data, pos) != Some(MAGIC) {
            // Padding between containers is zeros, 8-byte aligned.
            pos += 8;
            continue;
        }
        let (Some(header), Some(size)) = (u16_at(data, pos + 6), u64_at(data, pos + 8)) else { return };
        let Some(end) = usize::try_from(size).ok().and_then(|s| (pos + header as usize).checked_add(s)) else { return };
        let end = end.min(data.len());
        targets.containers += 1;
        let mut entry = pos + header as usize;
        while entry + 0x20 <= end {
            let (Some(kind), Some(entry_header), Some(payload)) = (u16_at(data, entry), u32_at(data, entry + 4), u64_at(data, entry + 8))
            else {
                return;
            };
            let (Some(minor), Some(major), Some(arch)) =
                (u16_at(data, entry + 0x18), u16_at(data, entry + 0x1a), u32_at(data, entry + 0x1c))
            else {
                return;
            };
            match kind {
                1 => {
                    targets.ptx.insert(arch);
                    targets.ptx_isa.insert((major, minor));
                }
                2 => {
                    targets.sass.insert(arch);
                }
                _ => {}
            }
            let Some(next) =
                usize::try_from(payload).ok().and_then(|p| p.checked_add(entry_header as usize)).and_then(|n| entry.checked_add(n))
            else {
                return;
            };
            if next <= entry {
                return;
            }
            entry = next;
        }
        pos = end.max(pos + 16);
        pos = pos.div_ceil(8) * 8;
    }
}

/// Whether code for a device of compute capability `major.minor` is there:
/// SASS of the same major and a minor not above the device's runs as is;
/// PTX of an architecture not above the device's is compiled by the driver.
pub fn fits(targets: &CudaTargets, major: u32, minor: u32) -> Fit {
    let device = major * 10 + minor;
    if targets.sass.iter().any(|&a| a / 10 == major && a % 10 <= minor) {
        Fit::Sass
    } else if targets.ptx.iter().any(|&a| a <= device) {
        Fit::PtxOnly
    } else {
        Fit::None
    }
}

/// How a device is served by the code a plugin carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    Sass,
    PtxOnly,
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: u16, major: u16, minor: u16, arch: u32, payload: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 0x40];
        e[0..2].copy_from_slice(&kind.to_le_bytes());
        e[2..4].copy_from_slice(&0x0101u16.to_le_bytes());
        e[4..8].copy_from_slice(&0x40u32.to_le_bytes());
        e[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        e[0x18..0x1a].copy_from_slice(&minor.to_le_bytes());
        e[0x1a..0x1c].copy_from_slice(&major.to_le_bytes());
        e[0x1c..0x20].copy_from_slice(&arch.to_le_bytes());
        e.extend_from_slice(payload);
        e
    }

    fn container(entries: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = entries.concat();
        let mut c = MAGIC.to_le_bytes().to_vec();
        c.extend_from_slice(&1u16.to_le_bytes());
        c.extend_from_slice(&16u16.to_le_bytes());
        c.extend_from_slice(&(body.len() as u64).to_le_bytes());
        c.extend_from_slice(&body);
        while !c.len().is_multiple_of(8) {
            c.push(0);
        }
        c
    }

    #[test]
    fn reads_sass_and_ptx_across_padded_containers() {
        let mut data = container(&[entry(2, 1, 7, 80, &[1; 24]), entry(1, 8, 8, 120, b"ptx text")]);
        data.extend_from_slice(&[0; 16]);
        data.extend(container(&[entry(2, 1, 8, 90, &[2; 8])]));
        let mut t = CudaTargets::default();
        scan(&data, &mut t);
        assert_eq!(t.containers, 2);
        assert_eq!(t.describe(), "sm_80, sm_90, compute_120");
        assert_eq!(t.cuda_major(), Some(12));
        assert_eq!(fits(&t, 8, 6), Fit::Sass);
        assert_eq!(fits(&t, 9, 0), Fit::Sass);
        assert_eq!(fits(&t, 7, 5), Fit::None);
        assert_eq!(fits(&t, 12, 1), Fit::PtxOnly);
    }

    #[test]
    fn garbage_ends_the_walk_without_panicking() {
        let mut data = container(&[entry(2, 1, 7, 80, &[1; 24])]);
        data[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut t = CudaTargets::default();
        scan(&data, &mut t);
        let mut cut = container(&[entry(1, 9, 0, 100, b"x")]);
        cut.truncate(30);
        scan(&cut, &mut t);
        scan(&[0xff; 3], &mut t);
    }
}
