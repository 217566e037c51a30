//! Binary entry: all code lives in the library; on the host this is empty so
//! that `cargo test` and clippy build the workspace.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use guest_kernel as _;

#[cfg(not(target_os = "none"))]
fn main() {}
