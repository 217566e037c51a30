//! Hypervisor memory: the physical frame allocator every VM's RAM and every
//! page table comes from ([`frame`]), and per-VM stage-2 translation
//! ([`stage2`]).

pub mod frame;
pub mod stage2;
