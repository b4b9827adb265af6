//! PJRT plugins on PyPI: the wheels of a release, verified downloads,
//! wheel file names and what is inside a wheel.

pub mod download;
pub mod pypi;
pub mod wheel;

pub use wheel::{platform_tag_fits, wheel_tags};
