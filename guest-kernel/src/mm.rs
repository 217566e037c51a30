//! Memory management (being written).

pub mod buddy;
pub mod gfp;
pub mod page;
pub mod zone;
