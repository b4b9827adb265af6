//! Which x86 instruction-set extensions a plugin's code needs, against
//! what this CPU has.
//!
//! "An AVX-512 instruction exists somewhere" proves nothing: XLA, Eigen,
//! oneDNN and XNNPACK carry kernels for several extensions and pick one by
//! CPUID at run time. What the compiler was told to assume (`-mavx`,
//! `-march=x86-64-v3`) shows in the ordinary code instead. This decodes an
//! even sample of the functions and reads three signs, strongest first:
//! - witnesses: where an extension replaces an older form of the same
//!   operation, a compiler told the CPU has it never emits the older form.
//!   VEX against legacy-encoded SSE (AVX), SHLX/SHRX/SARX against shifts by
//!   CL (BMI2), LZCNT against BSR (LZCNT). Plenty of the new form and next
//!   to none of the old: the baseline has it; plenty of the old: it does
//!   not, whatever uses the new form is dispatched. (Measured on jax 0.12's
//!   wheels: 128 sampled functions with SHLX, 0 with a shift by CL.)
//! - the level: BMI2 or LZCNT in the baseline means the code was compiled
//!   for x86-64-v3 (or a CPU that has all of it): AVX2, FMA, F16C, BMI1
//!   and MOVBE, rare in ordinary code, are then baseline too;
//! - for the rest, the share of functions using it (with Wilson's 95 %
//!   interval) and how it is spread: baseline code is everywhere, a
//!   library of kernels built for one extension sits in a few runs of
//!   neighbouring functions.
//!
//! The verdict says how sure it is: witnesses are sure; the level and the
//! share are less so.
//!
//! Functions come from `.eh_frame_hdr`'s sorted table of function starts
//! (present in stripped libraries, unlike `.symtab`); each sampled function
//! is decoded up to the next start. Decoding uses iced-x86: pure Rust, well
//! kept, and it names the CPUID feature of every instruction it decodes,
//! which is exactly the question asked here.

use std::collections::{BTreeSet, HashSet};

use iced_x86::{CpuidFeature, Decoder, DecoderOptions, EncodingKind, Instruction, Mnemonic, OpKind, Register};
use serde::Serialize;

use super::ldso::ObjectFile;

/// Functions decoded at most (evenly spread over all of them).
pub const SAMPLE: usize = 4000;
/// Bytes decoded at most per function.
const FUNCTION_CAP: usize = 32 * 1024;
/// At or above this share of functions (lower bound of the interval), an
/// extension is the baseline the code was compiled for.
pub const BASELINE_SHARE: f64 = 0.05;
/// Below this share (upper bound of the interval), it only appears in
/// kernels selected at run time.
pub const DISPATCH_SHARE: f64 = 0.02;
/// The sample is cut into this many runs of neighbouring functions to see
/// whether an extension is spread over the code or clustered.
const BUCKETS: usize = 50;

/// An extension this module tracks: its name, the `/proc/cpuinfo` flag
/// that says a CPU has it, and the x86-64 micro-architecture level that
/// includes it (0 where none does).
struct Known {
    feature: CpuidFeature,
    name: &'static str,
    flag: &'static str,
    level: u8,
}

const KNOWN: &[Known] = &[
    Known { feature: CpuidFeature::SSE3, name: "SSE3", flag: "pni", level: 2 },
    Known { feature: CpuidFeature::SSSE3, name: "SSSE3", flag: "ssse3", level: 2 },
    Known { feature: CpuidFeature::SSE4_1, name: "SSE4.1", flag: "sse4_1", level: 2 },
    Known { feature: CpuidFeature::SSE4_2, name: "SSE4.2", flag: "sse4_2", level: 2 },
    Known { feature: CpuidFeature::POPCNT, name: "POPCNT", flag: "popcnt", level: 2 },
    Known { feature: CpuidFeature::CMPXCHG16B, name: "CMPXCHG16B", flag: "cx16", level: 2 },
    Known { feature: CpuidFeature::AVX, name: "AVX", flag: "avx", level: 3 },
    Known { feature: CpuidFeature::AVX2, name: "AVX2", flag: "avx2", level: 3 },
    Known { feature: CpuidFeature::FMA, name: "FMA", flag: "fma", level: 3 },
    Known { feature: CpuidFeature::F16C, name: "F16C", flag: "f16c", level: 3 },
    Known { feature: CpuidFeature::BMI1, name: "BMI1", flag: "bmi1", level: 3 },
    Known { feature: CpuidFeature::BMI2, name: "BMI2", flag: "bmi2", level: 3 },
    Known { feature: CpuidFeature::LZCNT, name: "LZCNT", flag: "abm", level: 3 },
    Known { feature: CpuidFeature::MOVBE, name: "MOVBE", flag: "movbe", level: 3 },
    Known { feature: CpuidFeature::AVX512F, name: "AVX-512F", flag: "avx512f", level: 4 },
    Known { feature: CpuidFeature::AVX512BW, name: "AVX-512BW", flag: "avx512bw", level: 4 },
    Known { feature: CpuidFeature::AVX512CD, name: "AVX-512CD", flag: "avx512cd", level: 4 },
    Known { feature: CpuidFeature::AVX512DQ, name: "AVX-512DQ", flag: "avx512dq", level: 4 },
    Known { feature: CpuidFeature::AVX512VL, name: "AVX-512VL", flag: "avx512vl", level: 4 },
    Known { feature: CpuidFeature::AVX512_VNNI, name: "AVX-512 VNNI", flag: "avx512_vnni", level: 0 },
    Known { feature: CpuidFeature::AVX512_BF16, name: "AVX-512 BF16", flag: "avx512_bf16", level: 0 },
    Known { feature: CpuidFeature::AVX512_FP16, name: "AVX-512 FP16", flag: "avx512_fp16", level: 0 },
    Known { feature: CpuidFeature::AVX512_IFMA, name: "AVX-512 IFMA", flag: "avx512ifma", level: 0 },
    Known { feature: CpuidFeature::AVX512_VBMI, name: "AVX-512 VBMI", flag: "avx512vbmi", level: 0 },
    Known { feature: CpuidFeature::AVX512_VBMI2, name: "AVX-512 VBMI2", flag: "avx512_vbmi2", level: 0 },
    Known { feature: CpuidFeature::AVX512_BITALG, name: "AVX-512 BITALG", flag: "avx512_bitalg", level: 0 },
    Known { feature: CpuidFeature::AVX512_VPOPCNTDQ, name: "AVX-512 VPOPCNTDQ", flag: "avx512_vpopcntdq", level: 0 },
    Known { feature: CpuidFeature::AVX512_VP2INTERSECT, name: "AVX-512 VP2INTERSECT", flag: "avx512_vp2intersect", level: 0 },
    Known { feature: CpuidFeature::AVX512ER, name: "AVX-512ER", flag: "avx512er", level: 0 },
    Known { feature: CpuidFeature::AVX512PF, name: "AVX-512PF", flag: "avx512pf", level: 0 },
    Known { feature: CpuidFeature::AVX_VNNI, name: "AVX-VNNI", flag: "avx_vnni", level: 0 },
    Known { feature: CpuidFeature::AVX_IFMA, name: "AVX-IFMA", flag: "avx_ifma", level: 0 },
    Known { feature: CpuidFeature::AVX_NE_CONVERT, name: "AVX-NE-CONVERT", flag: "avx_ne_convert", level: 0 },
    Known { feature: CpuidFeature::AVX_VNNI_INT8, name: "AVX-VNNI-INT8", flag: "avx_vnni_int8", level: 0 },
    Known { feature: CpuidFeature::AMX_TILE, name: "AMX-TILE", flag: "amx_tile", level: 0 },
    Known { feature: CpuidFeature::AMX_BF16, name: "AMX-BF16", flag: "amx_bf16", level: 0 },
    Known { feature: CpuidFeature::AMX_INT8, name: "AMX-INT8", flag: "amx_int8", level: 0 },
    Known { feature: CpuidFeature::AMX_FP16, name: "AMX-FP16", flag: "amx_fp16", level: 0 },
    Known { feature: CpuidFeature::GFNI, name: "GFNI", flag: "gfni", level: 0 },
    Known { feature: CpuidFeature::VAES, name: "VAES", flag: "vaes", level: 0 },
    Known { feature: CpuidFeature::VPCLMULQDQ, name: "VPCLMULQDQ", flag: "vpclmulqdq", level: 0 },
    Known { feature: CpuidFeature::AES, name: "AES-NI", flag: "aes", level: 0 },
    Known { feature: CpuidFeature::PCLMULQDQ, name: "PCLMULQDQ", flag: "pclmulqdq", level: 0 },
    Known { feature: CpuidFeature::SHA, name: "SHA", flag: "sha_ni", level: 0 },
    Known { feature: CpuidFeature::ADX, name: "ADX", flag: "adx", level: 0 },
    Known { feature: CpuidFeature::RDRAND, name: "RDRAND", flag: "rdrand", level: 0 },
    Known { feature: CpuidFeature::RDSEED, name: "RDSEED", flag: "rdseed", level: 0 },
    Known { feature: CpuidFeature::SSE4A, name: "SSE4a", flag: "sse4a", level: 0 },
    Known { feature: CpuidFeature::FMA4, name: "FMA4", flag: "fma4", level: 0 },
    Known { feature: CpuidFeature::XOP, name: "XOP", flag: "xop", level: 0 },
    Known { feature: CpuidFeature::TBM, name: "TBM", flag: "tbm", level: 0 },
];

/// How sure a verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// What the code says about an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Part of the compiled-for baseline.
    Baseline,
    /// Confined to a few functions: kernels chosen at run time.
    Dispatched,
    /// In between: cannot tell.
    Unclear,
}

/// One extension the sampled code uses.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub extension: &'static str,
    /// x86-64 micro-architecture level that includes it (2, 3, 4), if any.
    pub level: Option<u8>,
    /// Sampled functions using it.
    pub functions: usize,
    /// Their share of the sample, and the 95 % interval of the share in the
    /// whole library.
    pub share: f64,
    pub share_low: f64,
    pub share_high: f64,
    /// How evenly it is spread over the code: runs of neighbouring sampled
    /// functions that use it, against how many would if the same number of
    /// uses were scattered at random (1: spread like compiler-chosen
    /// baseline code; well below 1: clustered, like a library of kernels
    /// compiled for one extension and picked at run time).
    pub spread: f64,
    pub role: Role,
    /// Which sign decided the role.
    pub evidence: Evidence,
    /// Whether this CPU has it (from /proc/cpuinfo); `None`: unknown.
    pub on_this_cpu: Option<bool>,
}

/// The sign a role was read from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// New form against the older form it replaces.
    Witness,
    /// Implied by the x86-64 level other extensions show.
    Level,
    /// Share and spread of the functions using it.
    Share,
}

/// Sampled functions with the new form and with the older form of one
/// operation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Witness {
    pub new_form: usize,
    pub old_form: usize,
}

impl Witness {
    /// `Some(true)`: the baseline has it; `Some(false)`: it does not;
    /// `None`: too few functions to tell.
    pub fn reading(&self) -> Option<bool> {
        if self.new_form >= 10 && self.old_form * 20 <= self.new_form {
            Some(true)
        } else if self.old_form >= 10 && self.new_form * 20 <= self.old_form {
            Some(false)
        } else {
            None
        }
    }
}

/// The measurement and its reading.
#[derive(Debug, Clone, Serialize)]
pub struct IsaReport {
    /// Where function boundaries came from.
    pub method: &'static str,
    pub functions_total: usize,
    pub functions_sampled: usize,
    pub bytes_decoded: usize,
    /// VEX/EVEX against legacy-encoded SSE (AVX).
    pub vex_vs_legacy_sse: Witness,
    /// SHLX/SHRX/SARX against shifts by CL (BMI2).
    pub bmi2_vs_shift_by_cl: Witness,
    /// LZCNT against BSR.
    pub lzcnt_vs_bsr: Witness,
    pub uses: Vec<Usage>,
    /// What the code was compiled for: `x86-64-v3`, `x86-64 with AVX`,
    /// `plain x86-64`, ...
    pub compiled_for: String,
    /// Extensions the baseline needs that this CPU lacks.
    pub missing_baseline: Vec<&'static str>,
    /// Extensions that may be baseline (unclear) and this CPU lacks.
    pub missing_unclear: Vec<&'static str>,
    /// Extensions only dispatched code uses that this CPU lacks.
    pub missing_dispatched: Vec<&'static str>,
    pub confidence: Confidence,
}

/// The flags of `/proc/cpuinfo`'s first processor (what the kernel lets
/// user code use: an extension the OS does not enable is absent).
pub fn cpu_flags() -> Option<HashSet<String>> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("flags"))?;
    Some(line.split_once(':')?.1.split_whitespace().map(str::to_owned).collect())
}

/// Wilson's 95 % interval for `k` successes in `n`.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Observed runs with a use, over the runs expected if `k` uses among `n`
/// sampled functions were scattered at random.
fn spread(covered: usize, k: usize, n: usize) -> f64 {
    if k == 0 || n == 0 {
        return 0.0;
    }
    let per_bucket = n as f64 / BUCKETS as f64;
    let expected = BUCKETS as f64 * (1.0 - (1.0 - k as f64 / n as f64).powf(per_bucket));
    covered as f64 / expected.max(1.0)
}

fn share_role(low: f64, high: f64, spread: f64) -> Role {
    if low >= BASELINE_SHARE && spread >= 0.7 {
        Role::Baseline
    } else if high < DISPATCH_SHARE || spread < 0.5 {
        Role::Dispatched
    } else {
        Role::Unclear
    }
}

/// Extensions x86-64-v3 adds that ordinary code rarely shows.
const V3_RARE: &[&str] = &["AVX2", "FMA", "F16C", "BMI1", "MOVBE", "AVX"];

/// Function starts (virtual addresses, sorted) from `.eh_frame_hdr`'s
/// binary-search table. Only the encodings compilers emit are read
/// (4- and 8-byte, absolute, pc- or data-relative); others give `None`.
pub fn eh_frame_starts(object: &ObjectFile) -> Option<Vec<u64>> {
    let (section, data) = object.section_data(".eh_frame_hdr")?;
    if data.len() < 4 || data[0] != 1 {
        return None;
    }
    let little = object.ident.little_endian;
    let base = section.address;
    let read = |enc: u8, at: usize| -> Option<(u64, usize)> {
        let (value, size) = match enc & 0x0f {
            0x03 => (u64::from(rd32(data, at, little)?), 4),
            0x0b => (i64::from(rd32(data, at, little)? as i32) as u64, 4),
            0x04 | 0x0c => (rd64(data, at, little)?, 8),
            0x00 => (rd64(data, at, little)?, 8),
            _ => return None,
        };
        let value = match enc & 0x70 {
            0x00 => value,
            0x10 => base.wrapping_add(at as u64).wrapping_add(value),
            0x30 => base.wrapping_add(value),
            _ => return None,
        };
        Some((value, size))
    };
    let (eh_ptr_enc, count_enc, table_enc) = (data[1], data[2], data[3]);
    if eh_ptr_enc == 0xff || count_enc == 0xff || table_enc == 0xff {
        return None;
    }
    let (_, n1) = read(eh_ptr_enc, 4)?;
    let (count, n2) = read(count_enc, 4 + n1)?;
    let mut at = 4 + n1 + n2;
    let count = usize::try_from(count).ok()?.min(data.len() / 8);
    let mut starts = Vec::with_capacity(count);
    for _ in 0..count {
        let (start, n) = read(table_enc, at)?;
        let (_, m) = read(table_enc, at + n)?;
        at += n + m;
        starts.push(start);
    }
    starts.sort_unstable();
    starts.dedup();
    Some(starts)
}

fn rd32(data: &[u8], at: usize, little: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
}

fn rd64(data: &[u8], at: usize, little: bool) -> Option<u64> {
    let b: [u8; 8] = data.get(at..at + 8)?.try_into().ok()?;
    Some(if little { u64::from_le_bytes(b) } else { u64::from_be_bytes(b) })
}

/// Windows of code to decode: (file offset, length), `SAMPLE` at most.
fn sample_functions(object: &ObjectFile) -> (&'static str, usize, Vec<(u64, usize)>) {
    let executable: Vec<_> = object.sections.iter().filter(|s| s.executable && !s.no_bits && s.size > 0).collect();
    let in_code = |va: u64| executable.iter().find(|s| va >= s.address && va - s.address < s.size).copied();
    if let Some(starts) = eh_frame_starts(object) {
        let starts: Vec<u64> = starts.into_iter().filter(|&va| in_code(va).is_some()).collect();
        if !starts.is_empty() {
            let total = starts.len();
            let step = (total as f64 / SAMPLE as f64).max(1.0);
            let mut picks = Vec::new();
            let mut i = 0.0f64;
            while (i as usize) < total && picks.len() < SAMPLE {
                let k = i as usize;
                let va = starts[k];
                let section = in_code(va).expect("filtered above");
                let section_end = section.address.saturating_add(section.size);
                let end = starts.get(k + 1).copied().unwrap_or(section_end).min(section_end);
                let len = (end.saturating_sub(va) as usize).min(FUNCTION_CAP);
                picks.push(((va - section.address).saturating_add(section.offset), len));
                i += step;
            }
            return ("eh_frame_hdr", total, picks);
        }
    }
    // No unwind table: fixed windows over the code, a weaker sample.
    let total: u64 = executable.iter().fold(0u64, |t, s| t.saturating_add(s.size));
    let window = 2048u64;
    let count = (total / window).clamp(1, SAMPLE as u64);
    let step = total / count;
    let mut picks = Vec::new();
    for k in 0..count {
        let mut at = k * step;
        for s in &executable {
            if at < s.size {
                picks.push((s.offset.saturating_add(at), window.min(s.size - at) as usize));
                break;
            }
            at -= s.size;
        }
    }
    ("code windows (no .eh_frame_hdr)", count as usize, picks)
}

/// Measures an x86-64 object (see the module comment). `None` for other
/// machines.
pub fn measure(object: &ObjectFile, flags: Option<&HashSet<String>>) -> Option<IsaReport> {
    if object.ident.machine != 62 {
        return None;
    }
    let bitness = if object.ident.bits == 64 { 64 } else { 32 };
    let (method, functions_total, picks) = sample_functions(object);
    let data = object.data();
    let mut index_of = vec![usize::MAX; 1024];
    for (i, k) in KNOWN.iter().enumerate() {
        index_of[k.feature as usize] = i;
    }
    let mut per_feature = vec![0usize; KNOWN.len()];
    let mut buckets: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); KNOWN.len()];
    let mut seen = vec![false; KNOWN.len()];
    let (mut avx, mut bmi2, mut lzcnt) = (Witness::default(), Witness::default(), Witness::default());
    let mut bytes_decoded = 0;
    let mut instruction = Instruction::default();
    for (pick, &(offset, len)) in picks.iter().enumerate() {
        let Some(bytes) = usize::try_from(offset).ok().and_then(|o| data.get(o..o.checked_add(len)?)) else { continue };
        bytes_decoded += bytes.len();
        seen.iter_mut().for_each(|s| *s = false);
        // new form / old form seen in this function, per witness
        let mut w = [[false; 2]; 3];
        let mut decoder = Decoder::with_ip(bitness, bytes, 0, DecoderOptions::NONE);
        while decoder.can_decode() {
            decoder.decode_out(&mut instruction);
            if instruction.is_invalid() {
                continue;
            }
            let features = instruction.cpuid_features();
            match instruction.encoding() {
                EncodingKind::VEX | EncodingKind::EVEX => w[0][0] = true,
                EncodingKind::Legacy if features.iter().any(|f| matches!(f, CpuidFeature::SSE | CpuidFeature::SSE2)) => w[0][1] = true,
                _ => {}
            }
            match instruction.mnemonic() {
                Mnemonic::Shlx | Mnemonic::Shrx | Mnemonic::Sarx => w[1][0] = true,
                Mnemonic::Shl | Mnemonic::Shr | Mnemonic::Sar
                    if instruction.op_count() == 2
                        && instruction.op1_kind() == OpKind::Register
                        && instruction.op1_register() == Register::CL =>
                {
                    w[1][1] = true
                }
                Mnemonic::Lzcnt => w[2][0] = true,
                Mnemonic::Bsr => w[2][1] = true,
                // TZCNT is `rep bsf`: CPUs without BMI1 run it as BSF, and
                // compilers emit it without being told the CPU has BMI1.
                Mnemonic::Tzcnt => continue,
                _ => {}
            }
            for f in features {
                if let Some(&i) = index_of.get(*f as usize) {
                    if i != usize::MAX {
                        seen[i] = true;
                    }
                }
            }
        }
        for (witness, [new, old]) in [&mut avx, &mut bmi2, &mut lzcnt].into_iter().zip(w) {
            witness.new_form += usize::from(new);
            witness.old_form += usize::from(old);
        }
        for (i, s) in seen.iter().enumerate() {
            if *s {
                per_feature[i] += 1;
                buckets[i].insert(pick * BUCKETS / picks.len());
            }
        }
    }
    let n = picks.len();
    let witnessed = |name: &str| match name {
        "AVX" => avx.reading(),
        "BMI2" => bmi2.reading(),
        "LZCNT" => lzcnt.reading(),
        _ => None,
    };
    let v3 = bmi2.reading() == Some(true) || lzcnt.reading() == Some(true);
    let mut uses: Vec<Usage> = Vec::new();
    for (i, &k) in per_feature.iter().enumerate() {
        if k == 0 {
            continue;
        }
        let known = &KNOWN[i];
        let (low, high) = wilson(k, n);
        let spread = spread(buckets[i].len(), k, n);
        let (role, evidence) = match witnessed(known.name) {
            Some(true) => (Role::Baseline, Evidence::Witness),
            Some(false) => (Role::Dispatched, Evidence::Witness),
            None if v3 && V3_RARE.contains(&known.name) => (Role::Baseline, Evidence::Level),
            None => (share_role(low, high, spread), Evidence::Share),
        };
        uses.push(Usage {
            extension: known.name,
            level: (known.level > 0).then_some(known.level),
            functions: k,
            share: if n == 0 { 0.0 } else { k as f64 / n as f64 },
            share_low: low,
            share_high: high,
            spread,
            role,
            evidence,
            on_this_cpu: flags.map(|f| f.contains(known.flag)),
        });
    }
    uses.sort_by_key(|u| std::cmp::Reverse(u.functions));
    let baseline = |name: &str| uses.iter().any(|u| u.extension == name && u.role == Role::Baseline);
    let compiled_for = if uses.iter().any(|u| u.role == Role::Baseline && u.level == Some(4)) {
        "x86-64-v4".to_owned()
    } else if v3 {
        "x86-64-v3".to_owned()
    } else if baseline("AVX") {
        "x86-64 with AVX".to_owned()
    } else if uses.iter().any(|u| u.role == Role::Baseline && u.level == Some(2)) {
        "x86-64-v2".to_owned()
    } else {
        "plain x86-64".to_owned()
    };
    let missing = |role: Role| -> Vec<&'static str> {
        uses.iter().filter(|u| u.role == role && u.on_this_cpu == Some(false)).map(|u| u.extension).collect()
    };
    let (missing_baseline, missing_unclear, missing_dispatched) =
        (missing(Role::Baseline), missing(Role::Unclear), missing(Role::Dispatched));
    // How sure the verdict is: it only turns on the extensions this CPU
    // lacks, and is as sure as the weakest sign behind one of them.
    let weakest = uses
        .iter()
        .filter(|u| u.on_this_cpu == Some(false))
        .map(|u| match (u.role, u.evidence) {
            (Role::Unclear, _) => Confidence::Low,
            (_, Evidence::Witness) => Confidence::High,
            (Role::Dispatched, Evidence::Share) if u.share_high < DISPATCH_SHARE / 4.0 => Confidence::High,
            _ => Confidence::Medium,
        })
        .min()
        .unwrap_or(Confidence::High);
    let confidence = if n < 200 || method != "eh_frame_hdr" { Confidence::Low.min(weakest) } else { weakest };
    Some(IsaReport {
        method,
        functions_total,
        functions_sampled: n,
        bytes_decoded,
        vex_vs_legacy_sse: avx,
        bmi2_vs_shift_by_cl: bmi2,
        lzcnt_vs_bsr: lzcnt,
        uses,
        compiled_for,
        missing_baseline,
        missing_unclear,
        missing_dispatched,
        confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_brackets_the_share() {
        let (lo, hi) = wilson(40, 4000);
        assert!(lo < 0.01 && hi > 0.01 && hi < 0.015, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (lo, _) = wilson(0, 4000);
        assert_eq!(lo, 0.0);
    }

    #[test]
    fn roles_follow_share_and_spread() {
        assert_eq!(share_role(0.30, 0.33, 1.0), Role::Baseline);
        assert_eq!(share_role(0.30, 0.33, 0.3), Role::Dispatched);
        assert_eq!(share_role(0.001, 0.004, 1.0), Role::Dispatched);
        assert_eq!(share_role(0.01, 0.05, 0.9), Role::Unclear);
    }

    #[test]
    fn witnesses_need_numbers_and_a_clear_majority() {
        assert_eq!(Witness { new_form: 128, old_form: 0 }.reading(), Some(true));
        assert_eq!(Witness { new_form: 0, old_form: 161 }.reading(), Some(false));
        assert_eq!(Witness { new_form: 3, old_form: 0 }.reading(), None);
        assert_eq!(Witness { new_form: 50, old_form: 40 }.reading(), None);
    }

    #[test]
    fn spread_is_one_for_scattered_uses() {
        // 40 uses, one in each of 40 runs of 80 functions: scattered.
        assert!(spread(40, 40, 4000) > 0.9);
        // 40 uses packed in 2 runs: clustered.
        assert!(spread(2, 40, 4000) < 0.1);
    }
}
