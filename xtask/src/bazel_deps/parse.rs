//! Reading the hash Nix reports when a fixed-output derivation does not
//! match its declared hash.

use crate::hashing::NarHash;

/// The hash Nix computed for a fixed-output derivation whose declared hash
/// was wrong, as SRI (`sha256-…=`), from Nix's error output; `None` when the
/// text holds no hash mismatch.
///
/// Understands the messages of Nix ≥ 2.4 and Lix (`specified: …` / `got: …`,
/// SRI), of Nix 2.3 and older (`wanted: sha256:…` / `got: sha256:…`, nix32),
/// with or without ANSI colours and CI timestamp prefixes. When several
/// derivations mismatch, the first one's hash is returned.
pub fn parse_hash_mismatch(stderr: &str) -> Option<String> {
    let text = strip_ansi(stderr);
    let start = text.find("hash mismatch in fixed-output derivation")?;
    let rest = &text[start..];
    let got = rest.find("got:")?;
    let token = rest[got + "got:".len()..].split_whitespace().next()?;
    normalise(token)
}

/// `sha256-<base64>` is kept; `sha256:<nix32>` and `sha256:<hex>` are
/// converted to SRI.
fn normalise(token: &str) -> Option<String> {
    NarHash::parse_typed(token).ok().map(|hash| hash.to_sri())
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Messages as Nix printed them (public CI logs and issue reports).
    const NIX_2_8: &str = "building '/nix/store/7rrkymz5hbax4kh9zb96fxzi4ykhjspn-f.drv'...\n\
error: hash mismatch in fixed-output derivation '/nix/store/7rrkymz5hbax4kh9zb96fxzi4ykhjspn-f.drv':\n\
         specified: sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
            got:    sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=\n";
    const CI_TIMESTAMPS: &str = "2026-09-07T13:11:02.5087484Z error: hash mismatch in fixed-output derivation '/nix/store/ghbb18gfh6pl8vqf1fzqrfcsjk4ikh8z-pad-0.15.0-go-modules.drv':\n\
2026-09-07T13:11:02.5093617Z          specified: sha256-8L7gH7Yy5+Fig3wK2SPLYSJjcY9nF/jumQ7PATJ3RIE=\n\
2026-09-07T13:11:02.5094211Z             got:    sha256-2hHhUx/J9CgDGU4fE5EE2Y/h6nRTA5vZ7GzuQ2oajkk=\n";
    const NIX_2_3: &str = "hash mismatch in fixed-output derivation '/nix/store/0jd2s12864n6qkgxviwqgg9glrw3mrk4-source':\n\
  wanted: sha256:0000000000000000000000000000000000000000000000000000\n\
  got:\tsha256:0z7mc1l0qhimhsq9sxhf4a3w1i2rn9k75zqc8yj1i62aa6p7nq03\n";
    // Lix keeps Nix's wording and colours the field names.
    const LIX_COLOURED: &str = "\u{1b}[31;1merror:\u{1b}[0m hash mismatch in fixed-output derivation '\u{1b}[35;1m/nix/store/mrk2n5gkcwdqsy3y826dj84prd0bmry7-cloudflare-caddy-v2.8.4-go-modules.drv\u{1b}[0m':\n\
         specified: \u{1b}[35;1msha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\u{1b}[0m\n\
            got:    \u{1b}[35;1msha256-8CpaXbWjngZqk3XHp8OKpJVz+V2iPRbW4lCSxfzXXIs=\u{1b}[0m\n";

    #[test]
    fn reads_modern_nix() {
        assert_eq!(parse_hash_mismatch(NIX_2_8).as_deref(), Some("sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM="));
        assert_eq!(parse_hash_mismatch(CI_TIMESTAMPS).as_deref(), Some("sha256-2hHhUx/J9CgDGU4fE5EE2Y/h6nRTA5vZ7GzuQ2oajkk="));
    }

    #[test]
    fn reads_coloured_output() {
        assert_eq!(parse_hash_mismatch(LIX_COLOURED).as_deref(), Some("sha256-8CpaXbWjngZqk3XHp8OKpJVz+V2iPRbW4lCSxfzXXIs="));
    }

    #[test]
    fn converts_nix32_of_old_nix() {
        let sri = parse_hash_mismatch(NIX_2_3).unwrap();
        assert!(sri.starts_with("sha256-") && sri.len() == 51, "{sri}");
    }

    #[test]
    fn no_mismatch_no_hash() {
        assert_eq!(parse_hash_mismatch(""), None);
        assert_eq!(parse_hash_mismatch("error: builder for '/nix/store/x.drv' failed with exit code 1"), None);
        assert_eq!(parse_hash_mismatch("error: hash mismatch in fixed-output derivation 'x':\n got: nonsense"), None);
    }
}
