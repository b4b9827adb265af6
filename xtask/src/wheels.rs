//! PJRT plugins on PyPI: the wheels of a release, verified downloads,
//! wheel file names, what is inside a wheel, and what a wheel's METADATA
//! requires.

pub mod download;
pub mod pypi;
pub mod requirement;
pub mod wheel;

pub use wheel::{platform_tag_fits, wheel_tags};
