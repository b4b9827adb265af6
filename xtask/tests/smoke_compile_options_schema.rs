//! `smoke` hand-encodes the `CompileOptionsProto` it hands to
//! `PJRT_Client_Compile` (xtask/src/plugin/compile_options.rs). Here those
//! bytes are decoded against the schema protoc compiles from the pinned XLA
//! commit (pins.toml): every field number must exist in its message, be
//! sent with the wire type its declared type uses, and mean what smoke
//! means. A schema change that breaks the hand-written encoding fails here,
//! not in a user's run.
//!
//! Needs `XLA_REPO` holding the pinned commit (see
//! diff_headers_protos_history.rs for the policy when it is unset).

mod support;

use git2::{Oid, Repository};
use xtask::header_diff::proto::{self, FieldType, Label, ProtoModel};

/// A decoded leaf: (path of field names, declared type, value).
type Leaf = (String, String, String);

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than ten bytes".into())
}

/// Decodes `bytes` as `message` by the schema alone: unknown numbers and
/// wire types that disagree with the declared type are errors.
fn decode(model: &ProtoModel, message: &str, bytes: &[u8], path: &str, out: &mut Vec<Leaf>) -> Result<(), String> {
    let m = model.message(message).ok_or_else(|| format!("the schema has no message {message}"))?;
    let mut at = 0;
    while at < bytes.len() {
        let tag = varint(bytes, &mut at)?;
        let (number, wire) = ((tag >> 3) as i32, (tag & 7) as u8);
        let f = m.field_number(number).ok_or_else(|| format!("{message} has no field number {number} (at {path})"))?;
        let name = format!("{path}{}", f.name);
        let packed = f.label == Label::Repeated && wire == 2;
        if f.ty.wire_type() != wire && !packed {
            return Err(format!("{name} is {} (wire type {}), but was sent with wire type {wire}", f.ty, f.ty.wire_type()));
        }
        let value = match wire {
            0 => {
                let v = varint(bytes, &mut at)?;
                match &f.ty {
                    FieldType::Scalar("int64" | "int32") => (v as i64).to_string(),
                    _ => v.to_string(),
                }
            }
            2 => {
                let len = varint(bytes, &mut at)? as usize;
                let body = bytes.get(at..at + len).ok_or("truncated length-delimited field")?;
                at += len;
                if let FieldType::Message(inner) = &f.ty {
                    decode(model, inner, body, &format!("{name}."), out)?;
                    continue;
                }
                String::from_utf8_lossy(body).into_owned()
            }
            1 | 5 => {
                let width = if wire == 1 { 8 } else { 4 };
                let raw = bytes.get(at..at + width).ok_or("truncated fixed-width field")?;
                at += width;
                hex::encode(raw)
            }
            other => return Err(format!("{name}: wire type {other} is not expected in these options")),
        };
        out.push((name, f.ty.to_string(), value));
    }
    Ok(())
}

fn pinned_model() -> Option<ProtoModel> {
    let dir = support::xla_repo()?;
    let repo = Repository::open(&dir).expect("XLA_REPO opens");
    let pins_path = support::project_root().join("pins.toml");
    let pins = xtask::pinfile::Pins::parse(&std::fs::read_to_string(&pins_path).unwrap(), "pins.toml").unwrap();
    let commit = Oid::from_str(&pins.xla.commit).unwrap();
    assert!(repo.find_commit(commit).is_ok(), "the pinned XLA commit {commit} is not in XLA_REPO={}: fetch it", dir.display());
    Some(proto::model_at(&repo, commit).unwrap_or_else(|e| panic!("the schemas of the pinned commit {commit}: {e:#}")))
}

#[test]
fn smoke_compile_options_match_the_pinned_schema() {
    let Some(model) = pinned_model() else { return };
    let bytes = xtask::plugin::compile_options::single_device();
    let mut leaves = Vec::new();
    decode(&model, "xla.CompileOptionsProto", &bytes, "", &mut leaves).unwrap_or_else(|e| panic!("smoke's CompileOptionsProto: {e}"));
    let expected: Vec<Leaf> = [
        ("executable_build_options.device_ordinal", "int64", "-1"),
        ("executable_build_options.num_replicas", "int64", "1"),
        ("executable_build_options.num_partitions", "int64", "1"),
    ]
    .iter()
    .map(|(p, t, v)| (p.to_string(), t.to_string(), v.to_string()))
    .collect();
    assert_eq!(leaves, expected, "smoke's hand-written options no longer say what it means at the pinned commit");
    // The message nests as smoke's comment says: field 3 is the build options.
    let options = model.message("xla.CompileOptionsProto").unwrap();
    assert_eq!(options.field_number(3).unwrap().ty, FieldType::Message("xla.ExecutableBuildOptionsProto".into()));
}

/// The check is not vacuous: a schema that renumbered a field, or bytes
/// sent with the wrong wire type, are caught.
#[test]
fn the_check_catches_renumbered_fields_and_wrong_wire_types() {
    let Some(model) = pinned_model() else { return };
    let bytes = xtask::plugin::compile_options::single_device();

    let mut renumbered = model.clone();
    let build = renumbered.messages.get_mut("xla.ExecutableBuildOptionsProto").unwrap();
    build.fields.iter_mut().find(|f| f.name == "num_replicas").unwrap().number = 1000;
    let err = decode(&renumbered, "xla.CompileOptionsProto", &bytes, "", &mut Vec::new()).unwrap_err();
    assert_eq!(err, "xla.ExecutableBuildOptionsProto has no field number 4 (at executable_build_options.)");

    let mut retyped = model.clone();
    let build = retyped.messages.get_mut("xla.ExecutableBuildOptionsProto").unwrap();
    build.fields.iter_mut().find(|f| f.name == "num_partitions").unwrap().ty = FieldType::Scalar("string");
    let err = decode(&retyped, "xla.CompileOptionsProto", &bytes, "", &mut Vec::new()).unwrap_err();
    assert!(err.starts_with("executable_build_options.num_partitions is string (wire type 2), but was sent with wire type 0"), "{err}");
}
