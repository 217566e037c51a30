//! `test=shm-hostile`: shared memory and doorbells under abuse
//! (docs/devices.md, "Shared memory and doorbell"), from a VM that shares
//! a region or from one that does not.
//!
//! Every ring of a region the VM does not share, or of a peer that does
//! not exist, must get INVALID_PARAMETERS. A VM without an `el2-hyp,shm`
//! node must also find the regions' window unmapped (its read aborts), a
//! peer the page just past its region. A peer then says hello to every other peer and waits for each reply:
//! the others kept running through the hostile calls.

use crate::arch::aarch64::shm::ShmDev;
use crate::arch::aarch64::{mmu, psci, uaccess};
use crate::println;
use crate::shm::{self, Kind};
use shared::hvc::{PSCI_INVALID_PARAMETERS, vendor};
use shared::platform::{MAX_SHM, Platform};

fn ring(region: u64, peer: u64) -> i64 {
    psci::hvc(vendor::SHM_DOORBELL, &[region, peer]) as i64
}

/// Reads guest-physical `ipa`, which this VM's stage 2 must not map: true
/// if the read aborted. Says which (`what aborted`, or `NOT ISOLATED`).
fn read_aborts(ipa: u64, what: &str) -> bool {
    let Some(va) = mmu::map_probe_page(ipa, false) else {
        println!("hyptest shm-hostile: cannot map IPA {ipa:#x} in stage 1");
        return false;
    };
    match uaccess::probe_read(va) {
        Err(uaccess::Aborted) => {
            println!("hyptest shm-hostile: {what} aborted");
            true
        }
        Ok(v) => {
            println!("hyptest shm-hostile: {what} returned {v:#x}: NOT ISOLATED");
            false
        }
    }
}

/// Runs the test; true if everything answered as it must.
pub fn hostile(platform: &Platform) -> bool {
    let mut ok = true;
    let mut refused = |what: &str, region: u64, peer: u64| {
        let got = ring(region, peer);
        let good = got == PSCI_INVALID_PARAMETERS;
        ok &= good;
        println!(
            "hyptest shm-hostile: ring {what} ({region:#x}, {peer:#x}): {got} {}",
            if good { "refused" } else { "WRONG" }
        );
    };
    refused("a region that does not exist", MAX_SHM as u64, 0);
    refused("a huge region", u64::MAX, u64::MAX);
    let Some(s) = platform.guest_shm.first() else {
        println!("hyptest shm-hostile: no el2-hyp,shm node");
        for region in 0..MAX_SHM as u64 {
            refused("a region of others", region, 0);
            refused("a region of others", region, 1);
        }
        // The first region's page: not in this VM's stage 2.
        return read_aborts(shared::layout::SHM_BASE, "read of the region window") && ok;
    };
    let dev = ShmDev::new(s);
    let peers = dev.peers.len() as u64;
    refused("a peer that does not exist", dev.index.into(), peers);
    refused("a peer with upper bits", dev.index.into(), 1 << 32);
    refused("a region not shared", u64::from(dev.index) + 1, 0);
    // Exactly the region is mapped: the page after it is not.
    ok &= read_aborts(s.region.base + s.region.size, "read past the region's end");
    if !ok || !dev.has_mailboxes() {
        return false;
    }
    // Every other peer must still answer.
    for to in (0..dev.peers.len()).filter(|&p| p != dev.peer) {
        let m = shm::Message {
            from: dev.peer,
            kind: Kind::Hello,
            text: alloc::format!("ping from {}", dev.peers[dev.peer]),
        };
        if !dev.send(to, &m) {
            println!("hyptest shm-hostile: the mailbox to peer {to} is full");
            return false;
        }
    }
    let mut answered = alloc::vec![false; dev.peers.len()];
    answered[dev.peer] = true;
    while !answered.iter().all(|a| *a) {
        for (from, done) in answered.iter_mut().enumerate() {
            if let Some(Ok(m)) = dev.take(from)
                && m.kind == Kind::Reply
            {
                println!("hyptest shm-hostile: peer {from} ({}) answered {:?}", dev.peers[from], m.text);
                *done = true;
            }
        }
        // The others' vCPUs may share this physical CPU.
        psci::hvc(vendor::YIELD, &[]);
    }
    ok
}
