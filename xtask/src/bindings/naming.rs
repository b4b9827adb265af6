//! Stable names for anonymous enums.
//!
//! bindgen names an anonymous enum `_bindgen_ty_N` after its position, so
//! one declaration inserted upstream renumbers every later one and churns
//! the whole file. Each `PJRT_DEFINE_STRUCT_TRAITS(X, ...)` declares such an
//! enum with the single constant `X_STRUCT_SIZE`; we name every anonymous
//! enum after its first constant instead: `<FIRST_CONSTANT>_t`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

const ANON: &str = "_bindgen_ty_";

pub fn name_anonymous_enums(source: &str) -> Result<String> {
    // `pub const NAME: _bindgen_ty_N = ...;` lines, in source order: the
    // first one for each N names it.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for line in source.lines() {
        let Some(rest) = line.trim_start().strip_prefix("pub const ") else { continue };
        let Some((name, ty)) = rest.split_once(':') else { continue };
        let ty = ty.trim_start();
        if let Some(anon) = anonymous_ident_at(ty) {
            names.entry(anon.to_string()).or_insert_with(|| format!("{}_t", name.trim()));
        }
    }
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(i) = rest.find(ANON) {
        let boundary = i == 0 || !is_ident_byte(rest.as_bytes()[i - 1]);
        let ident = anonymous_ident_at(&rest[i..]).filter(|_| boundary);
        out.push_str(&rest[..i]);
        match ident {
            Some(ident) => {
                let Some(name) = names.get(ident) else {
                    bail!("anonymous type `{ident}` has no constant to name it after; extend xtask/src/bindings/naming.rs");
                };
                out.push_str(name);
                rest = &rest[i + ident.len()..];
            }
            None => {
                out.push_str(ANON);
                rest = &rest[i + ANON.len()..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `_bindgen_ty_<digits>` at the start of `s`, if it is a whole identifier.
fn anonymous_ident_at(s: &str) -> Option<&str> {
    let digits = s.strip_prefix(ANON)?;
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    let end = ANON.len() + n;
    (n > 0 && !s.as_bytes().get(end).is_some_and(|&b| is_ident_byte(b))).then(|| &s[..end])
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_after_first_constant_and_survives_renumbering() {
        let before = "pub type _bindgen_ty_1 = u32;\npub const A_STRUCT_SIZE: _bindgen_ty_1 = 8;\n\
                      pub type _bindgen_ty_2 = u32;\npub const B_STRUCT_SIZE: _bindgen_ty_2 = 16;\n";
        // Upstream inserts a declaration before A: every number shifts.
        let after = "pub type _bindgen_ty_1 = u32;\npub const Z_STRUCT_SIZE: _bindgen_ty_1 = 4;\n\
                     pub type _bindgen_ty_2 = u32;\npub const A_STRUCT_SIZE: _bindgen_ty_2 = 8;\n\
                     pub type _bindgen_ty_3 = u32;\npub const B_STRUCT_SIZE: _bindgen_ty_3 = 16;\n";
        let before = name_anonymous_enums(before).unwrap();
        let after = name_anonymous_enums(after).unwrap();
        assert!(!before.contains(ANON) && !after.contains(ANON));
        assert!(after.ends_with(&before), "{before}\n---\n{after}");
        assert!(before.contains("pub type A_STRUCT_SIZE_t = u32;\npub const A_STRUCT_SIZE: A_STRUCT_SIZE_t = 8;"));
    }

    #[test]
    fn leaves_longer_identifiers_alone() {
        let s = "pub const X: _bindgen_ty_1 = 1;\nstruct _bindgen_ty_1x; // __bindgen_ty_1\n";
        let out = name_anonymous_enums(s).unwrap();
        assert_eq!(out, "pub const X: X_t = 1;\nstruct _bindgen_ty_1x; // __bindgen_ty_1\n");
    }

    #[test]
    fn unnamed_anonymous_type_is_an_error() {
        assert!(name_anonymous_enums("pub type _bindgen_ty_7 = u32;\n").is_err());
    }
}
