//! The API struct and its version, the plugin's attributes, the extension
//! chain: everything a plugin says about itself before a client exists.

use std::mem::{offset_of, size_of};

use pjrt_sys::loader::BINDINGS_VERSION;
use pjrt_sys::{args, history, *};

use super::{check, Check};
use crate::conform::harness::{ensure, fail, named_values, pjrt, CheckError, Ctx, Outcome};

pub fn checks() -> Vec<Check> {
    vec![
        check("api.load", load),
        check("api.version_in_history", version_in_history),
        check("api.struct_size_matches_version", struct_size_matches_version),
        check("api.struct_size_aligned", struct_size_aligned),
        check("api.layout_matches_bindings", layout_matches_bindings),
        check("api.members_set", members_set),
        check("api.members_past_struct_size_refused", members_past_struct_size_refused),
        check("plugin.initialize", initialize),
        check("plugin.attributes", attributes),
        check("plugin.attribute_xla_version", attribute_xla_version),
        check("plugin.attribute_stablehlo_versions", attribute_stablehlo_versions),
        check("extensions.chain", chain),
        check("extensions.unique_types", unique_types),
        check("extensions.types_named", types_named),
        check("extensions.types_match_version", types_match_version),
        check("extensions.struct_sizes_match_version", struct_sizes_match_version),
    ]
}

fn load(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.load().map_err(CheckError::Fail)?;
    let (major, minor) = plugin.api_version();
    Ok(format!(
        "PJRT API {major}.{minor}, PJRT_Api {} bytes (bindings {}.{})",
        plugin.struct_size(),
        BINDINGS_VERSION.0,
        BINDINGS_VERSION.1
    ))
}

fn version_in_history(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    let minor = ctx.minor();
    if minor > history::NEWEST_MINOR {
        return Err(CheckError::Unsupported(format!(
            "PJRT 0.{minor} is newer than the newest header pjrtpkgs knows (0.{}, XLA {:.12}): what it added is not checked",
            history::NEWEST_MINOR,
            history::TIP_COMMIT
        )));
    }
    match history::commit_of(minor) {
        Some(commit) => Ok(format!("PJRT 0.{minor} first appeared in XLA {commit:.12}")),
        None => fail!("PJRT 0.{minor} never appeared on XLA's main line (the history has 0.1 to 0.{})", history::NEWEST_MINOR),
    }
}

fn struct_size_matches_version(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let minor = ctx.minor();
    let known = minor.min(history::NEWEST_MINOR);
    let Some(full) = history::struct_size_at("PJRT_Api", known) else {
        fail!("the history has no PJRT_Api at PJRT 0.{known}");
    };
    // What the header of that version declared (PJRT_Api_STRUCT_SIZE named
    // PJRT_Client_TopologyDescription from 0.40 to 0.56 while members
    // followed it): what a faithful plugin of that version reports.
    let expected = history::declared_size_at("PJRT_Api", known).unwrap_or(full);
    let actual = plugin.struct_size() as u64;
    if actual < expected {
        let missing: Vec<&str> =
            history::fields_at("PJRT_Api", known).iter().filter(|f| f.offset + f.size > actual).map(|f| f.name).collect();
        fail!(
            "the plugin reports PJRT 0.{minor} but its PJRT_Api ends at {actual} bytes; at 0.{known} it has {expected}: missing {}",
            missing.join(", ")
        );
    }
    if expected < full && actual == expected {
        return Ok(format!(
            "{actual} bytes, as PJRT 0.{known}'s header declares it (PJRT_Api_STRUCT_SIZE stops {} bytes short of its last member)",
            full - expected
        ));
    }
    if actual > expected && minor <= history::NEWEST_MINOR {
        let extra = (actual - expected) / size_of::<usize>() as u64;
        return Ok(format!(
            "{actual} bytes, {extra} member(s) more than 0.{minor}'s {expected}: built from a commit between 0.{minor} and 0.{}",
            minor + 1
        ));
    }
    Ok(format!("{actual} bytes, as PJRT 0.{known} has"))
}

fn struct_size_aligned(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let size = plugin.struct_size();
    let first = offset_of!(PJRT_Api, PJRT_Error_Destroy);
    ensure!(size >= first, "PJRT_Api is {size} bytes, less than its header ({first})");
    ensure!((size - first) % size_of::<usize>() == 0, "PJRT_Api is {size} bytes: {first} plus a non-whole number of function pointers");
    Ok(format!("{} function pointers", (size - first) / size_of::<usize>()))
}

/// Every member the plugin has sits where these bindings put it.
fn layout_matches_bindings(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let minor = ctx.minor().min(history::NEWEST_MINOR);
    let bindings: Vec<&history::FieldRun> = history::fields_at("PJRT_Api", BINDINGS_VERSION.1 as u32);
    let mut moved = Vec::new();
    for member in history::fields_at("PJRT_Api", minor) {
        if member.offset + member.size > plugin.struct_size() as u64 {
            continue;
        }
        match bindings.iter().find(|b| b.offset == member.offset) {
            Some(b) if b.name == member.name || b.since == member.since => {}
            Some(b) => moved.push(format!("{} at offset {} (bindings: {})", member.name, member.offset, b.name)),
            None => {} // newer than the bindings: they never reach it
        }
    }
    ensure!(
        moved.is_empty(),
        "at PJRT 0.{minor} the PJRT_Api layout differs from these bindings' (0.{}): {}",
        BINDINGS_VERSION.1,
        moved.join("; ")
    );
    Ok(format!("every member within {} bytes is where the 0.{} bindings expect it", plugin.struct_size(), BINDINGS_VERSION.1))
}

/// The members every client needs are set; the others may be null (the
/// plugin does not implement them), and are listed.
fn members_set(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let minor = ctx.minor().min(history::NEWEST_MINOR);
    const REQUIRED: &[&str] = &[
        "PJRT_Error_Destroy",
        "PJRT_Error_Message",
        "PJRT_Error_GetCode",
        "PJRT_Plugin_Initialize",
        "PJRT_Event_Destroy",
        "PJRT_Event_Await",
        "PJRT_Client_Create",
        "PJRT_Client_Destroy",
        "PJRT_Client_Compile",
        "PJRT_Client_BufferFromHostBuffer",
        "PJRT_Buffer_Destroy",
        "PJRT_Buffer_ToHostBuffer",
        "PJRT_LoadedExecutable_Execute",
    ];
    let mut null = Vec::new();
    let mut set = 0;
    let api = plugin.api_up_to(plugin.struct_size(), "PJRT_Api")? as *const u8;
    for member in history::fields_at("PJRT_Api", minor) {
        if member.offset < offset_of!(PJRT_Api, PJRT_Error_Destroy) as u64 || member.offset + member.size > plugin.struct_size() as u64 {
            continue;
        }
        // SAFETY: within struct_size; every member past the header is one function pointer.
        let pointer = unsafe { (api.add(member.offset as usize) as *const usize).read_unaligned() };
        if pointer == 0 {
            null.push(member.name);
        } else {
            set += 1;
        }
    }
    let missing: Vec<&str> = null.iter().copied().filter(|n| REQUIRED.contains(n)).collect();
    ensure!(missing.is_empty(), "required members are null: {}", missing.join(", "));
    if null.is_empty() {
        Ok(format!("all {set} members set"))
    } else {
        Ok(format!("{set} set; null (not implemented): {}", null.join(", ")))
    }
}

/// Members the plugin's PJRT_Api does not reach (of the newest header
/// known) are refused by the loader, never read.
fn members_past_struct_size_refused(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let size = plugin.struct_size();
    let beyond: Vec<&history::FieldRun> =
        history::fields_at("PJRT_Api", history::NEWEST_MINOR).into_iter().filter(|f| f.offset + f.size > size as u64).collect();
    let Some(first) = beyond.first() else {
        return Err(CheckError::Skip(format!(
            "the plugin's PJRT_Api ({size} bytes) has every member of PJRT 0.{}, the newest header known",
            history::NEWEST_MINOR
        )));
    };
    for member in &beyond {
        let refused = plugin.api_up_to((member.offset + member.size) as usize, "a PJRT_Api member");
        ensure!(
            matches!(refused, Err(pjrt_sys::loader::Error::Unsupported { .. })),
            "{} lies past the plugin's PJRT_Api but the loader did not refuse it",
            member.name
        );
    }
    Ok(format!("{} member(s) past {size} bytes (from {}, PJRT 0.{}) refused without reading", beyond.len(), first.name, first.since))
}

/// Through ctx, which initializes once: later checks must not do it again.
fn initialize(ctx: &mut Ctx) -> Outcome {
    ctx.plugin()?;
    ctx.gate_api("PJRT_Plugin_Initialize", offset_of!(PJRT_Api, PJRT_Plugin_Initialize))?;
    ctx.initialized().map_err(CheckError::Fail)?;
    Ok("ok".into())
}

fn read_attributes(ctx: &mut Ctx) -> Result<serde_json::Map<String, serde_json::Value>, CheckError> {
    ctx.initialize()?;
    let mut a = args!(PJRT_Plugin_Attributes_Args {});
    pjrt!(ctx, PJRT_Plugin_Attributes, &mut a)?;
    named_values(a.attributes, a.num_attributes).map_err(CheckError::Fail)
}

fn attributes(ctx: &mut Ctx) -> Outcome {
    let attributes = read_attributes(ctx)?;
    Ok(if attributes.is_empty() {
        "(none)".into()
    } else {
        attributes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    })
}

fn attribute_xla_version(ctx: &mut Ctx) -> Outcome {
    let attributes = read_attributes(ctx)?;
    match attributes.get("xla_version") {
        Some(v) if v.is_i64() => Ok(v.to_string()),
        Some(v) => fail!("xla_version is {v}, not an int64"),
        None => Err(CheckError::Unsupported("the plugin publishes no xla_version attribute".into())),
    }
}

fn attribute_stablehlo_versions(ctx: &mut Ctx) -> Outcome {
    let attributes = read_attributes(ctx)?;
    let version =
        |name: &str| -> Option<Vec<i64>> { attributes.get(name)?.as_array()?.iter().map(|v| v.as_i64()).collect::<Option<Vec<i64>>>() };
    let (Some(minimum), Some(current)) = (version("stablehlo_minimum_version"), version("stablehlo_current_version")) else {
        return Err(CheckError::Unsupported("the plugin publishes no stablehlo_minimum_version/stablehlo_current_version".into()));
    };
    ensure!(minimum.len() == 3 && current.len() == 3, "versions are not MAJOR.MINOR.PATCH: {minimum:?}, {current:?}");
    ensure!(minimum <= current, "the minimum StableHLO version {minimum:?} is newer than the current one {current:?}");
    let dotted = |v: &[i64]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(".");
    Ok(format!("StableHLO {} to {}", dotted(&minimum), dotted(&current)))
}

fn chain(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let chain = plugin.extension_chain();
    if chain.layout == pjrt_sys::loader::ChainLayout::Private {
        ctx.record(31);
        return Err(CheckError::Unsupported(format!(
            "at PJRT 0.{} the second member of PJRT_Api is `void* priv`, not an extension chain (0.31): not read",
            ctx.minor()
        )));
    }
    if let Some(problem) = &chain.problem {
        fail!("{problem}");
    }
    if chain.elements.is_empty() {
        return Ok("no extensions".into());
    }
    if !chain.layout_sized() {
        return Ok(format!("{} extension(s), chain ends; {}", chain.elements.len(), chain.layout.describe()));
    }
    for e in &chain.elements {
        ensure!(
            e.struct_size >= size_of::<PJRT_Extension_Base>() && e.struct_size < 1 << 16,
            "extension type {} declares struct_size {}",
            e.kind,
            e.struct_size
        );
    }
    Ok(format!("{} extension(s), chain ends", chain.elements.len()))
}

fn unique_types(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let mut seen = std::collections::BTreeMap::new();
    for e in plugin.extensions() {
        *seen.entry(e.kind).or_insert(0) += 1;
    }
    let twice: Vec<String> = seen.iter().filter(|(_, n)| **n > 1).map(|(k, n)| format!("type {k} x{n}")).collect();
    ensure!(twice.is_empty(), "extension types offered more than once: {}", twice.join(", "));
    Ok(format!("{} distinct type(s)", seen.len()))
}

fn types_named(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let mut unknown = Vec::new();
    let mut named = Vec::new();
    for e in plugin.extensions() {
        match history::enumerator("PJRT_Extension_Type", e.kind as i64) {
            Some(run) => named.push(run.name.trim_start_matches("PJRT_Extension_Type_").to_string()),
            None => unknown.push(e.kind.to_string()),
        }
    }
    if !unknown.is_empty() {
        return Err(CheckError::Unsupported(format!(
            "type(s) {} are newer than PJRT 0.{}, the newest header pjrtpkgs knows; named: {}",
            unknown.join(", "),
            history::NEWEST_MINOR,
            named.join(", ")
        )));
    }
    Ok(if named.is_empty() { "no extensions".into() } else { named.join(", ") })
}

fn types_match_version(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let minor = ctx.minor();
    let mut early = Vec::new();
    for e in plugin.extensions() {
        if let Some(run) = history::enumerator("PJRT_Extension_Type", e.kind as i64) {
            // Before 0.41 the same values were PJRT_Structure_Type's.
            let since = extension_type_since(e.kind).unwrap_or(run.since);
            if since > minor {
                early.push(format!("{} (type {}, PJRT 0.{since})", run.name.trim_start_matches("PJRT_Extension_Type_"), e.kind));
            }
        }
    }
    ensure!(early.is_empty(), "the plugin reports PJRT 0.{minor} but offers extensions that arrived later: {}", early.join(", "));
    Ok(format!("every known extension type predates PJRT 0.{minor}"))
}

/// The first version that had extension type `kind`, under either of its
/// enums' names (`PJRT_Structure_Type` until 0.40, `PJRT_Extension_Type`).
pub fn extension_type_since(kind: PJRT_Extension_Type) -> Option<u32> {
    history::ENUMERATORS
        .iter()
        .filter(|e| (e.enumeration == "PJRT_Extension_Type" || e.enumeration == "PJRT_Structure_Type") && e.value == kind as i64)
        .map(|e| e.since)
        .min()
}

/// The extension struct a type's chain element is, by the headers' naming.
pub fn extension_struct(kind: PJRT_Extension_Type) -> Option<&'static str> {
    let name = history::enumerator("PJRT_Extension_Type", kind as i64)?.name.trim_start_matches("PJRT_Extension_Type_");
    let candidates = [format!("PJRT_{name}_Extension"), format!("PJRT_{name}")];
    candidates.iter().find_map(|c| history::FIELDS.iter().find(|f| f.strukt == c.as_str()).map(|f| f.strukt))
}

fn struct_sizes_match_version(ctx: &mut Ctx) -> Outcome {
    let plugin = ctx.plugin()?;
    let minor = ctx.minor().min(history::NEWEST_MINOR);
    let mut short = Vec::new();
    let mut checked = Vec::new();
    let extensions = plugin.extensions();
    if extensions.iter().any(|e| !e.sized) {
        ctx.record(45);
        return Err(CheckError::Unsupported(format!(
            "at PJRT 0.{minor} extension structs carry no struct_size (PJRT_Extension_Base gained it in 0.45)"
        )));
    }
    for e in extensions {
        let Some(strukt) = extension_struct(e.kind) else { continue };
        let Some(expected) = history::declared_size_at(strukt, minor) else { continue };
        if (e.struct_size as u64) < expected {
            short.push(format!("{strukt} is {} bytes, {expected} at PJRT 0.{minor}", e.struct_size));
        } else {
            checked.push(format!("{strukt} {}", e.struct_size));
        }
    }
    ensure!(short.is_empty(), "extension structs shorter than their version: {}", short.join("; "));
    if checked.is_empty() {
        return Err(CheckError::Skip("no extension whose struct the history knows".into()));
    }
    Ok(checked.join(", "))
}
