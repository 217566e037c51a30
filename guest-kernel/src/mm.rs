//! Memory management (being written).

pub mod buddy;
pub mod gfp;
pub mod memblock;
pub mod page;
pub mod percpu;
pub mod slab;
pub mod vmalloc;
pub mod zone;
