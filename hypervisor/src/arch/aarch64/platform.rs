//! What boot found out about the machine, for every other arch module:
//! the parsed DTB ([`PLATFORM`]), where the DTB lies ([`DTB`]) and the
//! physical memory left after boot's reservations ([`FRAMES`]). Set once
//! by `boot.rs`; a leaf of the arch layer's dependency order.

use crate::mm::frame::FrameAllocator;
use crate::sync::{Mutex, Once};
use shared::platform::{Platform, Region};

/// Physical memory, after boot reservations.
pub static FRAMES: Mutex<FrameAllocator> = Mutex::ranked(crate::sync::FRAMES, FrameAllocator::new());

/// What boot learnt about the machine.
pub static PLATFORM: Once<Platform> = Once::new();

/// Where the machine's DTB lies (reserved, identity-mapped RAM), for
/// looking up pass-through devices.
pub static DTB: Once<Region> = Once::new();
