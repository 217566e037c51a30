//! Shared memory with other VMs (`el2-hyp,shm` DT nodes, docs/devices.md
//! "Shared memory and doorbell"): the glue of the pure [`crate::shm`].
//!
//! `mmu::init` maps each region as normal memory in the linear map;
//! [`probe`] (a boot-time driver, after the virtio ones) takes each
//! region's doorbell interrupt and starts the demo. The mailbox states
//! are 32-bit atomics in the region; bodies are copied with volatile
//! accesses (another VM writes them).

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use super::mmu::phys_to_virt;
use crate::irq::IrqReturn;
use crate::kernel::{KGuard, Kernel};
use crate::println;
use crate::shm::{self, BODY, EMPTY, FULL, Kind, Message, WRITING};
use shared::hvc::vendor;
use shared::platform::{GuestShm, Platform};

/// One region this VM shares.
pub struct ShmDev {
    /// Its linear-map address.
    va: usize,
    pub name: String,
    /// Its number for SHM_DOORBELL.
    pub index: u32,
    /// This VM's peer number.
    pub peer: usize,
    /// The peers' VM names.
    pub peers: Vec<String>,
    pub intid: Option<u32>,
    size: u64,
}

impl ShmDev {
    /// The region a DT node describes (mapped by `mmu::init`).
    pub fn new(s: &GuestShm) -> Self {
        Self {
            va: phys_to_virt(s.region.base),
            name: String::from(s.name.as_str()),
            index: s.index,
            peer: s.peer as usize,
            peers: s.peers.iter().map(|p| String::from(p.as_str())).collect(),
            intid: s.irq.map(|i| i.intid()),
            size: s.region.size,
        }
    }

    /// Whether the demo's mailboxes fit.
    pub fn has_mailboxes(&self) -> bool {
        self.peer < self.peers.len() && shm::fits(self.size, self.peers.len())
    }

    fn peer_name(&self, p: usize) -> &str {
        self.peers.get(p).map_or("?", String::as_str)
    }

    fn state(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: `offset` is a mailbox inside the region (`has_mailboxes`),
        // 4-byte aligned, mapped normal memory for the kernel's life; every
        // user of the word (here or in another VM) uses atomics.
        unsafe { &*((self.va + offset) as *const AtomicU32) }
    }

    /// Rings peer `to`'s doorbell: the hypervisor's answer (0 or an error).
    pub fn ring(&self, to: usize) -> i64 {
        super::psci::hvc(vendor::SHM_DOORBELL, &[u64::from(self.index), to as u64]) as i64
    }

    /// Puts `m` in the mailbox to peer `to` and rings it; false if that
    /// mailbox still holds our previous message.
    pub fn send(&self, to: usize, m: &Message) -> bool {
        let off = shm::mailbox(to, self.peer, self.peers.len());
        if self.state(off).compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return false;
        }
        for (i, b) in shm::encode(m).iter().enumerate() {
            // SAFETY: inside the claimed mailbox (`off + 4 + i < off + SLOT`).
            unsafe { core::ptr::write_volatile((self.va + off + 4 + i) as *mut u8, *b) };
        }
        self.state(off).store(FULL, Ordering::Release);
        self.ring(to);
        true
    }

    /// Takes the message in the mailbox from peer `from`, if one is there
    /// (Err: the peer wrote nonsense, which is dropped).
    pub fn take(&self, from: usize) -> Option<Result<Message, shm::Bad>> {
        let off = shm::mailbox(self.peer, from, self.peers.len());
        if self.state(off).load(Ordering::Acquire) != FULL {
            return None;
        }
        let mut body = [0u8; BODY];
        for (i, b) in body.iter_mut().enumerate() {
            // SAFETY: inside our mailbox; a volatile read of shared memory.
            *b = unsafe { core::ptr::read_volatile((self.va + off + 4 + i) as *const u8) };
        }
        self.state(off).store(EMPTY, Ordering::Release);
        Some(shm::decode(&body, from))
    }
}

/// The regions, once probed (read by the doorbell interrupt).
static DEVS: spin::Once<Vec<ShmDev>> = spin::Once::new();

/// Finds the regions, takes their doorbells and starts the demo: peer 0
/// says hello to peer 1.
pub fn probe(k: &mut KGuard, platform: &Platform) {
    let devs = DEVS.call_once(|| platform.guest_shm.iter().map(ShmDev::new).collect());
    for (i, d) in devs.iter().enumerate() {
        println!(
            "shm {:?}: peer {} of {} ({}), {} KiB at IPA {:#x}, doorbell INTID {}",
            d.name,
            d.peer,
            d.peers.len(),
            d.peers.join(", "),
            d.size >> 10,
            platform.guest_shm[i].region.base,
            d.intid.unwrap_or(0)
        );
        let Some(intid) = d.intid else { continue };
        if k.irqs.request_irq(intid, doorbell_interrupt, 0, "el2-hyp,shm", i).is_err() {
            println!("shm {:?}: cannot register IRQ {intid}", d.name);
            continue;
        }
        super::irq::configure(intid, 0xa0, true);
    }
    for (i, d) in devs.iter().enumerate() {
        if !d.has_mailboxes() {
            println!("shm {:?}: too small for the demo's mailboxes", d.name);
            continue;
        }
        // Messages that came before we listened.
        serve(i, "at boot");
        if d.peer == 0 {
            // One greeting, to peer 1: a mailbox holds one message, and
            // the others' (a test's pings) are answered in theirs.
            let hello = shm::hello(0, d.peer_name(0));
            if d.send(1, &hello) {
                println!("shm {:?}: said {:?} to peer 1 ({})", d.name, hello.text, d.peer_name(1));
            }
        }
    }
}

/// The doorbell of region `dev` (its index in [`DEVS`]).
fn doorbell_interrupt(_irq: u32, dev: usize, _k: &mut Kernel) -> IrqReturn {
    serve(dev, "doorbell");
    IrqReturn::Handled
}

/// Reads every full mailbox of region `dev` and answers what needs an
/// answer; `how` says how we came to look.
fn serve(dev: usize, how: &str) {
    let Some(d) = DEVS.get().and_then(|d| d.get(dev)) else { return };
    if !d.has_mailboxes() {
        return;
    }
    for from in 0..d.peers.len() {
        match d.take(from) {
            None => {}
            Some(Err(e)) => println!("shm {:?}: {how}: peer {from} wrote nonsense ({e:?})", d.name),
            Some(Ok(m)) => {
                println!("shm {:?}: {how}: peer {from} ({}) says {:?}", d.name, d.peer_name(from), m.text);
                if let Some(a) = shm::answer(&m, d.peer, d.peer_name(d.peer), d.peer_name(from)) {
                    let kind = if a.kind == Kind::Reply { "replied" } else { "acknowledged" };
                    if d.send(from, &a) {
                        println!("shm {:?}: {kind} {:?} to peer {from}", d.name, a.text);
                    }
                }
            }
        }
    }
}
