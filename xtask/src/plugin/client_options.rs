//! `--client-option K=V`: PJRT named values passed to `PJRT_Client_Create`,
//! typed as the plugin expects them, and the defaults for GPU plugins.
//!
//! A plugin checks each option's name and type against its own list and
//! refuses the client otherwise, so the type matters. It is taken, in
//! order, from an explicit `K:TYPE=V`, from the options XLA's plugins
//! declare (`kExpectedOptionNameAndTypes` in
//! xla/pjrt/c/pjrt_c_api_gpu_internal.cc and pjrt_c_api_cpu_internal.cc at
//! XLA 70fe66213b73), or from the value's syntax.

use std::ffi::c_char;

use anyhow::{bail, Context, Result};
use pjrt_sys::*;
use serde::Serialize;

/// An option's value, in one of the five PJRT named-value types.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OptionValue {
    Bool(bool),
    Int64(i64),
    Float(f32),
    String(String),
    Int64List(Vec<i64>),
}

impl OptionValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            OptionValue::Bool(_) => "bool",
            OptionValue::Int64(_) => "int64",
            OptionValue::Float(_) => "float",
            OptionValue::String(_) => "string",
            OptionValue::Int64List(_) => "int64_list",
        }
    }
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Bool(v) => write!(f, "{v}"),
            OptionValue::Int64(v) => write!(f, "{v}"),
            OptionValue::Float(v) => write!(f, "{v}"),
            OptionValue::String(v) => write!(f, "{v}"),
            OptionValue::Int64List(v) => write!(f, "{}", v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")),
        }
    }
}

/// Where an option came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `--client-option` on the command line.
    User,
    /// A default of pjrtpkgs for this kind of plugin.
    GpuDefault,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientOption {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub value: OptionValue,
    pub source: Source,
}

impl std::fmt::Display for ClientOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.value)?;
        if self.source == Source::GpuDefault {
            write!(f, " (GPU default)")?;
        }
        Ok(())
    }
}

/// The options XLA's plugins declare, with their types.
const KNOWN: &[(&str, &str)] = &[
    // GPU (CUDA and ROCm) plugins.
    ("platform_name", "string"),
    ("allocator", "string"),
    ("memory_fraction", "float"),
    ("preallocate", "bool"),
    ("collective_memory_size", "int64"),
    ("visible_devices", "int64_list"),
    ("node_id", "int64"),
    ("num_nodes", "int64"),
    ("should_stage_host_to_device_transfers", "bool"),
    ("abort_collectives_on_failure", "bool"),
    ("use_tfrt_gpu_client", "bool"),
    ("enable_mock_nccl", "bool"),
    ("mock_gpu_topology", "string"),
    ("partition_index", "int64"),
    ("max_inflight_computations", "int64"),
    // CPU plugin.
    ("cpu_device_count", "int64"),
    ("asynchronous", "bool"),
    ("process_id", "int64"),
];

const TYPES: &[&str] = &["bool", "int64", "float", "string", "int64_list"];

/// Parses `NAME=VALUE` or `NAME:TYPE=VALUE` (TYPE one of bool, int64,
/// float, string, int64_list), for clap.
pub fn parse(spec: &str) -> Result<ClientOption> {
    let Some((key, value)) = spec.split_once('=') else {
        bail!("`{spec}` is not NAME=VALUE (or NAME:TYPE=VALUE), e.g. preallocate=false or visible_devices:int64_list=0,1");
    };
    let (name, explicit) = match key.split_once(':') {
        Some((name, ty)) => (name.trim(), Some(ty.trim())),
        None => (key.trim(), None),
    };
    if name.is_empty() {
        bail!("`{spec}` has no option name before `=`");
    }
    let known = KNOWN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
    let type_name = match explicit.or(known) {
        Some(t) if TYPES.contains(&t) => t,
        Some(t) => bail!("unknown option type `{t}` in `{spec}`: use one of {}", TYPES.join(", ")),
        None => infer_type(value),
    };
    let value = typed(value.trim(), type_name).with_context(|| {
        let why = if explicit.is_some() {
            "as you typed it"
        } else if known.is_some() {
            "as XLA's plugins declare it"
        } else {
            "from its syntax"
        };
        format!("option `{name}` is a {type_name} ({why}), `{value}` is not")
    })?;
    Ok(ClientOption { name: name.to_string(), type_name: value.type_name(), value, source: Source::User })
}

fn infer_type(value: &str) -> &'static str {
    let v = value.trim();
    if v == "true" || v == "false" {
        "bool"
    } else if v.parse::<i64>().is_ok() {
        "int64"
    } else if v.parse::<f32>().is_ok() {
        "float"
    } else if !v.is_empty() && v.trim_matches(['[', ']']).split(',').all(|p| p.trim().parse::<i64>().is_ok()) {
        "int64_list"
    } else {
        "string"
    }
}

fn typed(value: &str, type_name: &str) -> Result<OptionValue> {
    Ok(match type_name {
        "bool" => OptionValue::Bool(match value {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => bail!("expected true or false"),
        }),
        "int64" => OptionValue::Int64(value.parse().context("expected an integer")?),
        "float" => OptionValue::Float(value.parse().context("expected a number")?),
        "string" => OptionValue::String(value.to_string()),
        "int64_list" => {
            let inner = value.trim_start_matches('[').trim_end_matches(']');
            let items: Result<Vec<i64>, _> = inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect();
            OptionValue::Int64List(items.context("expected integers separated by commas")?)
        }
        _ => unreachable!("types are checked by the caller"),
    })
}

/// The options to create a client with: the user's, plus, for a GPU
/// plugin, `preallocate=false` unless the user set `preallocate` (with its
/// default a GPU plugin reserves 75 % of the GPU's memory at client
/// creation; jax users turn it off for the same reason).
pub fn resolve(user: &[ClientOption], gpu: bool) -> Vec<ClientOption> {
    let mut out = user.to_vec();
    if gpu && !user.iter().any(|o| o.name == "preallocate") {
        out.push(ClientOption {
            name: "preallocate".into(),
            type_name: "bool",
            value: OptionValue::Bool(false),
            source: Source::GpuDefault,
        });
    }
    out
}

/// Whether a plugin is a GPU plugin: its pinned backend says so, or it
/// offers the GPU custom-call extension (CUDA and ROCm plugins do, the CPU
/// plugin does not).
pub fn is_gpu(backend: Option<&str>, extensions: &[pjrt_sys::loader::Extension]) -> bool {
    if let Some(backend) = backend {
        return backend.starts_with("cuda") || backend.starts_with("rocm");
    }
    extensions.iter().any(|e| e.kind == PJRT_Extension_Type_Gpu_Custom_Call)
}

/// Options as `PJRT_NamedValue`s, with the storage their pointers point to.
pub struct NamedValues {
    values: Vec<PJRT_NamedValue>,
    _lists: Vec<Vec<i64>>,
    _strings: Vec<String>,
}

impl NamedValues {
    pub fn new(options: &[ClientOption]) -> NamedValues {
        let strings: Vec<String> = options.iter().map(|o| o.name.clone()).collect();
        let values_text: Vec<String> =
            options.iter().map(|o| if let OptionValue::String(s) = &o.value { s.clone() } else { String::new() }).collect();
        let lists: Vec<Vec<i64>> =
            options.iter().map(|o| if let OptionValue::Int64List(l) = &o.value { l.clone() } else { Vec::new() }).collect();
        let values = options
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut v = args!(PJRT_NamedValue { name: strings[i].as_ptr() as *const c_char, name_size: strings[i].len() });
                match &o.value {
                    OptionValue::Bool(b) => {
                        v.type_ = PJRT_NamedValue_kBool;
                        v.__bindgen_anon_1.bool_value = *b;
                        v.value_size = 1;
                    }
                    OptionValue::Int64(n) => {
                        v.type_ = PJRT_NamedValue_kInt64;
                        v.__bindgen_anon_1.int64_value = *n;
                        v.value_size = 1;
                    }
                    OptionValue::Float(x) => {
                        v.type_ = PJRT_NamedValue_kFloat;
                        v.__bindgen_anon_1.float_value = *x;
                        v.value_size = 1;
                    }
                    OptionValue::String(_) => {
                        v.type_ = PJRT_NamedValue_kString;
                        v.__bindgen_anon_1.string_value = values_text[i].as_ptr() as *const c_char;
                        v.value_size = values_text[i].len();
                    }
                    OptionValue::Int64List(_) => {
                        v.type_ = PJRT_NamedValue_kInt64List;
                        v.__bindgen_anon_1.int64_array_value = lists[i].as_ptr();
                        v.value_size = lists[i].len();
                    }
                }
                v
            })
            .collect();
        let mut all_strings = strings;
        all_strings.extend(values_text);
        NamedValues { values, _lists: lists, _strings: all_strings }
    }

    pub fn as_ptr(&self) -> *const PJRT_NamedValue {
        if self.values.is_empty() {
            std::ptr::null()
        } else {
            self.values.as_ptr()
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_plugins_declarations_then_the_syntax() {
        assert_eq!(parse("preallocate=false").unwrap().value, OptionValue::Bool(false));
        // memory_fraction is declared a float: "1" is 1.0, not the integer 1.
        assert_eq!(parse("memory_fraction=1").unwrap().value, OptionValue::Float(1.0));
        assert_eq!(parse("visible_devices=0").unwrap().value, OptionValue::Int64List(vec![0]));
        assert_eq!(parse("visible_devices=[0, 2]").unwrap().value, OptionValue::Int64List(vec![0, 2]));
        assert_eq!(parse("cpu_device_count=8").unwrap().value, OptionValue::Int64(8));
        assert_eq!(parse("allocator=platform").unwrap().value, OptionValue::String("platform".into()));
        // Unknown names: from the syntax, or as typed.
        assert_eq!(parse("my_flag=true").unwrap().value, OptionValue::Bool(true));
        assert_eq!(parse("my_size=12").unwrap().value, OptionValue::Int64(12));
        assert_eq!(parse("my_ratio=0.25").unwrap().value, OptionValue::Float(0.25));
        assert_eq!(parse("my_name=abc").unwrap().value, OptionValue::String("abc".into()));
        assert_eq!(parse("my_size:string=12").unwrap().value, OptionValue::String("12".into()));
    }

    #[test]
    fn bad_options_say_what_is_wrong() {
        let e = format!("{:#}", parse("preallocate=maybe").unwrap_err());
        assert!(e.contains("`preallocate` is a bool (as XLA's plugins declare it)"), "{e}");
        let e = format!("{:#}", parse("preallocate").unwrap_err());
        assert!(e.contains("is not NAME=VALUE"), "{e}");
        let e = format!("{:#}", parse("x:double=1").unwrap_err());
        assert!(e.contains("unknown option type `double`"), "{e}");
        assert!(parse("=1").is_err());
    }

    #[test]
    fn gpu_plugins_do_not_preallocate_unless_asked() {
        let resolved = resolve(&[], true);
        assert_eq!(resolved.len(), 1);
        assert_eq!((resolved[0].name.as_str(), &resolved[0].value), ("preallocate", &OptionValue::Bool(false)));
        assert_eq!(resolved[0].source, Source::GpuDefault);
        let user = [parse("preallocate=true").unwrap()];
        assert_eq!(resolve(&user, true), user.to_vec(), "the user's choice wins");
        assert!(resolve(&[], false).is_empty(), "no default for CPU plugins");
    }

    #[test]
    fn named_values_point_at_their_storage() {
        let options = [parse("allocator=platform").unwrap(), parse("visible_devices=1,2").unwrap(), parse("preallocate=false").unwrap()];
        let named = NamedValues::new(&options);
        assert_eq!(named.len(), 3);
        let values = unsafe { std::slice::from_raw_parts(named.as_ptr(), 3) };
        let text = |p: *const c_char, n: usize| unsafe { std::str::from_utf8(std::slice::from_raw_parts(p as *const u8, n)).unwrap() };
        assert_eq!(text(values[0].name, values[0].name_size), "allocator");
        assert_eq!(values[0].type_, PJRT_NamedValue_kString);
        assert_eq!(text(unsafe { values[0].__bindgen_anon_1.string_value }, values[0].value_size), "platform");
        assert_eq!(values[1].type_, PJRT_NamedValue_kInt64List);
        assert_eq!(unsafe { std::slice::from_raw_parts(values[1].__bindgen_anon_1.int64_array_value, values[1].value_size) }, [1, 2]);
        assert_eq!(values[2].type_, PJRT_NamedValue_kBool);
        assert!(!unsafe { values[2].__bindgen_anon_1.bool_value });
        assert!(NamedValues::new(&[]).as_ptr().is_null());
    }
}
