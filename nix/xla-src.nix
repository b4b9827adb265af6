# The pinned XLA source: [xla] commit and hash of pins.toml.
{ fetchFromGitHub, xlaPin }:
let
  # "https://github.com/openxla/xla" -> owner "openxla", repo "xla".
  parts = builtins.match "https://github.com/([^/]+)/([^/]+)" xlaPin.repository;
in
assert parts != null
  || throw "pjrtpkgs: [xla] repository must be a https://github.com/OWNER/REPO URL, got ${xlaPin.repository}";
fetchFromGitHub {
  owner = builtins.elemAt parts 0;
  repo = builtins.elemAt parts 1;
  rev = xlaPin.commit;
  inherit (xlaPin) hash;
}
