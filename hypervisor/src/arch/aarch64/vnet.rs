//! A VM's virtio-net cards (`[[vm.net]]`, docs/devices.md) and the
//! virtual switches they are plugged into: the glue between the VM's MMIO
//! bus, the pure cores `crate::virtio::net` and `crate::vswitch`, and the
//! other VMs on the same switch.
//!
//! Card k of a VM with d disks is virtio-mmio transport d + k, at
//! `layout::VIRTIO_BASE + (d + k) * VIRTIO_STRIDE` with SPI `VIRTIO_SPI +
//! d + k` (QEMU `virt`'s layout, after the disks). A trapped access goes to
//! [`VirtioNet`] (`devices::Device::Net`) under the card's lock, as a
//! disk's does (`vdisk`).
//!
//! Transmit: a notification of the transmit queue is served on the vCPU
//! that trapped; the frames the card took are copied out of its outbox
//! under its lock, the lock is dropped, the switch takes them under the
//! switches' lock alone (learning, rate limit, backlogs), and then each
//! port that got frames is pumped: its card's lock is taken (never two
//! cards' locks at once, so two VMs sending to each other cannot deadlock,
//! `sync`), frames go from its backlog into its receive queue with its
//! VM's RAM ([`VmRam`]), and its SPI is raised in its VM's vGIC, which
//! kicks or wakes the vCPU it targets ([`Vm::flush_kicks`]).
//!
//! Receive: a notification of the receive queue means "more buffers":
//! the card's backlog is pumped into them.
//!
//! A card's port is up while its driver runs it (DRIVER_OK, no
//! DEVICE_NEEDS_RESET): a card being reset, or of a stopped VM, is down,
//! so the switch forgets its addresses and queues nothing for it; frames
//! to a VM that stopped are dropped. Its VM's reset resets the card under
//! its lock before the RAM is reloaded (`vmm::reset_now`), so no frame is
//! written into the next instance's RAM after that (its driver must set
//! the card up again first).

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::timer;
use super::vdisk::VmRam;
use crate::mmio::bus::{MmioDevice, MmioError};
use crate::switchconf;
use crate::sync::{self, Mutex};
use crate::virtio::mmio::{Effect, Fill, VirtioMmio};
use crate::virtio::net::{self, Net};
use crate::vm::{Vm, vms};
use crate::vswitch::{Limits, PortId, Switch};
use shared::layout;
use shared::platform::{Platform, SwitchSpec};

/// Most batches of transmit chains one trapped access serves (as a disk's,
/// `vdisk`); the rest at the next access.
const BATCHES_PER_ACCESS: usize = 4;

/// Frames taken off a backlog at once, under the switches' lock.
const PUMP_BATCH: usize = 32;

/// One switch of the registry: its name, the core, and which card each
/// port is (VM id, card index).
struct SwitchSlot {
    name: String,
    switch: Switch,
    ports: Vec<(usize, usize)>,
}

/// Every switch, by name, created by the first card plugged in.
static SWITCHES: Mutex<Vec<SwitchSlot>> = Mutex::ranked(sync::SWITCH, Vec::new());

/// The `[[switch]]` tables the configuration gave and which of them were
/// accepted (`switchconf`), set once by [`configure`] before any card is
/// plugged in.
static CONFIG: crate::sync::Once<(Vec<SwitchSpec>, Vec<bool>)> = crate::sync::Once::new();

/// Validates the DTB's `switch@N` tables against its VMs and reports each
/// refused one (its switch then keeps the default limits) and each
/// accepted one. Before any VM is built.
pub fn configure(platform: &Platform) {
    for (node, err) in platform.switch_errors.iter() {
        crate::println!("el2-hyp: switch node {node} refused: {err}");
    }
    let checks = switchconf::validate(&platform.switches, &platform.vms);
    let mut valid = Vec::with_capacity(checks.len());
    for (spec, check) in platform.switches.iter().zip(checks) {
        valid.push(check.is_ok());
        match check {
            Ok(()) => {
                let l = switchconf::SwitchLimits::of(spec);
                crate::println!(
                    "el2-hyp: switch \"{}\": each port at most {} per second, bursts of {}, {} frames queued",
                    spec.name,
                    crate::vmspec::Size(l.rate),
                    crate::vmspec::Size(l.burst),
                    l.backlog
                );
            }
            Err(e) => crate::println!("el2-hyp: {e}: the switch keeps the default limits"),
        }
    }
    CONFIG.call_once(|| (platform.switches.to_vec(), valid));
}

/// The limits of switch `name` ([`configure`]).
fn limits(name: &str) -> Limits {
    let l = match CONFIG.get() {
        Some((specs, valid)) => switchconf::limits(specs, valid, name),
        None => switchconf::SwitchLimits::DEFAULT,
    };
    Limits::of(l)
}

/// The caller's time for the rate limits, in nanoseconds.
fn now_ns() -> u64 {
    (u128::from(timer::now()) * 1_000_000_000 / u128::from(timer::frequency())) as u64
}

/// One card: its transport and its place on its switch.
struct NetState {
    mmio: VirtioMmio<Net>,
    /// The level the SPI was last driven to in the vGIC.
    line_driven: bool,
    /// A transmit notification not fully served.
    pending: bool,
    /// DEVICE_NEEDS_RESET was reported for this device life.
    reported: bool,
    /// (switch, port), once plugged in ([`plug`]).
    port: Option<(usize, PortId)>,
    /// The port is up in the switch.
    up: bool,
}

/// Network card `index` of a VM, on its MMIO bus.
pub struct VirtioNet {
    index: usize,
    /// Its transport number (after the VM's disks).
    transport: usize,
    switch: String,
    state: Mutex<NetState>,
}

impl VirtioNet {
    /// Card `index` (transport `transport`) described by `net`.
    pub fn new(index: usize, transport: usize, net: &shared::platform::Net) -> Self {
        let state = NetState {
            mmio: VirtioMmio::new(Net::new(net.mac)),
            line_driven: false,
            pending: false,
            reported: false,
            port: None,
            up: false,
        };
        Self { index, transport, switch: String::from(net.switch.as_str()), state: Mutex::ranked(sync::VIRTIO, state) }
    }

    /// The card's transport window (guest-physical base).
    pub fn base(&self) -> u64 {
        layout::VIRTIO_BASE + self.transport as u64 * layout::VIRTIO_STRIDE
    }

    /// The GIC INTID of the card's SPI.
    fn intid(&self) -> u32 {
        32 + layout::VIRTIO_SPI + self.transport as u32
    }

    /// Serves the transmit queue for up to [`BATCHES_PER_ACCESS`] batches;
    /// returns the frames sent.
    fn serve_tx(&self, vm: &Vm, s: &mut NetState) -> Vec<Vec<u8>> {
        let mut ram = VmRam::new(vm);
        let mut frames = Vec::new();
        s.pending = true;
        for _ in 0..BATCHES_PER_ACCESS {
            let more = s.mmio.notify(net::TX, &mut ram).more;
            frames.extend(s.mmio.device_mut().take_outbox());
            if !more {
                s.pending = false;
                break;
            }
        }
        frames
    }

    /// Brings the port up or down to follow the driver (module doc).
    fn follow_driver(&self, s: &mut NetState) {
        let live = s.mmio.can_fill(net::RX) && s.mmio.queue(net::TX).is_some_and(|q| q.ready());
        if live == s.up {
            return;
        }
        s.up = live;
        if let Some((sw, port)) = s.port
            && let Some(slot) = SWITCHES.lock().get_mut(sw)
        {
            slot.switch.set_up(port, live, now_ns());
        }
    }

    /// Moves frames from the card's backlog into its receive queue until
    /// either runs out; frames for a card that cannot take them (not live,
    /// its VM stopped) are dropped.
    fn pump(&self, vm: &Vm, s: &mut NetState) {
        let Some((sw, port)) = s.port else { return };
        let stopped = vm.stopped.load(Ordering::Acquire);
        let mut ram = VmRam::new(vm);
        loop {
            let batch: Vec<Vec<u8>> = {
                let mut switches = SWITCHES.lock();
                let Some(slot) = switches.get_mut(sw) else { return };
                core::iter::from_fn(|| slot.switch.take(port)).take(PUMP_BATCH).collect()
            };
            if batch.is_empty() {
                return;
            }
            if stopped || !s.mmio.can_fill(net::RX) {
                continue; // dropped
            }
            let mut frames = batch.into_iter();
            while let Some(frame) = frames.next() {
                match Net::receive(&mut s.mmio, &mut ram, &frame) {
                    Fill::Filled | Fill::TooShort => {}
                    Fill::NoBuffer => {
                        // Back to the front: delivered when the driver adds buffers.
                        let rest = core::iter::once(frame).chain(frames).collect::<Vec<_>>();
                        if let Some(slot) = SWITCHES.lock().get_mut(sw) {
                            slot.switch.put_back(port, rest.into_iter());
                        }
                        return;
                    }
                    Fill::NotLive | Fill::Broken => break,
                }
            }
        }
    }

    /// After an access or a delivery: the report of a broken rule (once
    /// per device life) and the SPI driven to the transport's level, as a
    /// disk's (`vdisk`). True if the line changed.
    fn after(&self, vm: &Vm, s: &mut NetState, vcpu: usize) -> bool {
        if let (Some(why), false) = (s.mmio.error(), s.reported) {
            s.reported = true;
            super::vmops::report(
                vm,
                vcpu,
                format_args!("net[{}]: the driver broke a virtio rule ({why:?}): DEVICE_NEEDS_RESET", self.index),
            );
        }
        self.follow_driver(s);
        let level = s.mmio.irq_level();
        if level == s.line_driven {
            return false;
        }
        let _ = vm.vgic.lock().set_level(vcpu, self.intid(), level);
        s.line_driven = level;
        true
    }
}

/// Plugs every card of `vm` (just built, with id `vm.id`) into its
/// switch, creating the switch if it is the first card on it.
pub fn plug(vm: &Vm) {
    for (k, card) in vm.nets.iter().enumerate() {
        let mut s = card.state.lock();
        let mut switches = SWITCHES.lock();
        let sw = match switches.iter().position(|slot| slot.name == card.switch) {
            Some(sw) => sw,
            None => {
                let limits = limits(&card.switch);
                let slot = SwitchSlot { name: card.switch.clone(), switch: Switch::new(limits), ports: Vec::new() };
                switches.push(slot);
                switches.len() - 1
            }
        };
        let slot = &mut switches[sw];
        match slot.switch.add_port() {
            Some(port) => {
                slot.ports.push((vm.id, k));
                s.port = Some((sw, port));
            }
            None => crate::println!("el2-hyp: VM \"{}\": net[{k}]: switch \"{}\" is full", vm.name, card.switch),
        }
    }
}

/// Hands `frames`, sent by the card on port `port` of switch `sw`, to the
/// switch, then pumps each port that got some into its card. No card's
/// lock is held by the caller.
fn deliver(sw: usize, port: PortId, frames: Vec<Vec<u8>>) {
    if frames.is_empty() {
        return;
    }
    let now = now_ns();
    let targets: Vec<(usize, usize)> = {
        let mut switches = SWITCHES.lock();
        let Some(slot) = switches.get_mut(sw) else { return };
        for f in &frames {
            let _ = slot.switch.send(port, f, now);
        }
        (0..slot.ports.len()).filter(|&p| slot.switch.backlog(p) > 0).map(|p| slot.ports[p]).collect()
    };
    for (vm_id, k) in targets {
        let Some(vm) = vms().get(vm_id) else { continue };
        let Some(card) = vm.nets.get(k) else { continue };
        let mut s = card.state.lock();
        card.pump(vm, &mut s);
        let changed = card.after(vm, &mut s, 0);
        drop(s);
        if changed {
            // Not one of that VM's vCPUs: `usize::MAX` as the caller, so
            // that a target on this CPU still gets its turn soon (`kick`).
            vm.flush_kicks(Some(usize::MAX));
        }
    }
}

impl MmioDevice<Vm> for VirtioNet {
    fn read(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
        let mut s = self.state.lock();
        let frames = if s.pending { self.serve_tx(vm, &mut s) } else { Vec::new() };
        let r = s.mmio.read(offset, size);
        let changed = self.after(vm, &mut s, vcpu);
        let port = s.port;
        drop(s);
        if changed {
            vm.flush_kicks(Some(vcpu));
        }
        if let Some((sw, p)) = port {
            deliver(sw, p, frames);
        }
        r
    }

    fn write(&self, vm: &Vm, vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let mut s = self.state.lock();
        let mut frames = if s.pending { self.serve_tx(vm, &mut s) } else { Vec::new() };
        let r = s.mmio.write(offset, size, value);
        match r {
            Ok(Effect::QueueNotify(net::TX)) => frames.extend(self.serve_tx(vm, &mut s)),
            Ok(Effect::QueueNotify(net::RX)) => {
                // More buffers: the port must be up first for a backlog to exist.
                self.follow_driver(&mut s);
                self.pump(vm, &mut s);
            }
            Ok(Effect::Reset) => {
                s.pending = false;
                s.reported = false;
            }
            _ => {}
        }
        let changed = self.after(vm, &mut s, vcpu);
        let port = s.port;
        drop(s);
        if changed {
            vm.flush_kicks(Some(vcpu));
        }
        if let Some((sw, p)) = port {
            deliver(sw, p, frames);
        }
        r.map(|_| ())
    }

    /// The transport back to its reset state (a VM reset, before its RAM
    /// is reloaded): the port goes down, its backlog and addresses go.
    fn reset(&self, vm: &Vm) {
        let mut s = self.state.lock();
        s.mmio.reset();
        s.pending = false;
        s.reported = false;
        self.follow_driver(&mut s);
        let _ = vm.vgic.lock().set_level(0, self.intid(), false);
        s.line_driven = false;
    }

    fn irq(&self) -> Option<u32> {
        Some(self.intid())
    }
}
