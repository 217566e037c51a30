//! Hypervisor memory: the physical frame allocator every VM's RAM and every
//! page table comes from ([`frame`]), per-VM stage-2 translation
//! ([`stage2`]), and the early identity map EL2 boots with ([`early_map`]).

pub mod early_map;
pub mod frame;
pub mod stage2;
