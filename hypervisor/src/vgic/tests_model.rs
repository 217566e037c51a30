//! Model-based host tests of the vGIC: the distributor's per-interrupt
//! state machine against a reference written from the architecture
//! (IHI 0069H §4.1.2, IHI 0048B §3.2.4), and the list-register allocator
//! against the rule it must follow (IHI 0069H §4.8: the most urgent pending
//! interrupt first; lr.rs: active ones stay, then priority, then INTID).

use super::lr::{decode_intid, decode_state};
use super::*;
use std::vec::Vec;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn enabled_vgic(version: GicVersion, nr_vcpus: usize, nr_spis: usize) -> Vgic {
    let mut g = Vgic::new(version, nr_vcpus, nr_spis).unwrap();
    let ctlr = if version == GicVersion::V3 { 0x13 } else { 0x1 };
    g.mmio_write(0, Frame::Dist, 0, 4, ctlr).unwrap();
    g
}

/// The frame and offset of word `array_base + 4 * (intid / 32)` for an
/// interrupt as vCPU `vcpu` sees it: GICv3 private interrupts live in the
/// redistributor's SGI_base frame (IHI 0069H §12.11), the rest in GICD.
fn word(version: GicVersion, vcpu: usize, intid: u32, array_base: u64) -> (Frame, u64) {
    if version == GicVersion::V3 && intid < 32 {
        (Frame::Redist(vcpu), 0x1_0000 + array_base)
    } else {
        (Frame::Dist, array_base + 4 * u64::from(intid / 32))
    }
}

fn write_bit(g: &mut Vgic, vcpu: usize, intid: u32, array_base: u64) {
    let (frame, offset) = word(g.version(), vcpu, intid, array_base);
    g.mmio_write(vcpu, frame, offset, 4, 1 << (intid % 32)).unwrap();
}

fn read_bit(g: &mut Vgic, vcpu: usize, intid: u32, array_base: u64) -> bool {
    let (frame, offset) = word(g.version(), vcpu, intid, array_base);
    g.mmio_read(vcpu, frame, offset, 4).unwrap() & (1 << (intid % 32)) != 0
}

fn set_trigger(g: &mut Vgic, vcpu: usize, intid: u32, edge: bool) {
    let (frame, offset) = match (g.version(), intid < 32) {
        (GicVersion::V3, true) => (Frame::Redist(vcpu), 0x1_0C00 + 4 * u64::from(intid / 16)),
        _ => (Frame::Dist, 0xC00 + 4 * u64::from(intid / 16)),
    };
    let old = g.mmio_read(vcpu, frame, offset, 4).unwrap();
    let bit = 2 << (2 * (intid % 16));
    let new = if edge { old | bit } else { old & !bit };
    g.mmio_write(vcpu, frame, offset, 4, new).unwrap();
}

fn set_priority(g: &mut Vgic, vcpu: usize, intid: u32, priority: u8) {
    let (frame, base) = match (g.version(), intid < 32) {
        (GicVersion::V3, true) => (Frame::Redist(vcpu), 0x1_0400),
        _ => (Frame::Dist, 0x400),
    };
    g.mmio_write(vcpu, frame, base + u64::from(intid), 1, u64::from(priority)).unwrap();
}

/// The guest, on vCPU `vcpu`, changes the state of `intid` in its list
/// register: `f` maps the state it finds to the state it leaves. Returns
/// the state found (None if the interrupt was not in an LR).
fn guest(g: &mut Vgic, vcpu: usize, intid: u32, f: impl Fn(LrState) -> LrState) -> Option<LrState> {
    let version = g.version();
    let shift = if version == GicVersion::V3 { 62 } else { 28 };
    let plan = g.flush_lrs(vcpu, 4);
    let mut found = None;
    let back: Vec<u64> = plan
        .lrs
        .iter()
        .map(|&lr| {
            if decode_intid(version, lr) != intid {
                return lr;
            }
            let state = decode_state(version, lr);
            found = Some(state);
            let new = match f(state) {
                LrState::Invalid => 0,
                LrState::Pending => 1,
                LrState::Active => 2,
                LrState::PendingActive => 3,
            };
            (lr & !(3 << shift)) | (new << shift)
        })
        .collect();
    g.sync_lrs(vcpu, &back);
    found
}

/// One interrupt as the architecture describes it (IHI 0069H §4.1.2).
#[derive(Clone, Copy, Debug, Default)]
struct Reference {
    edge: bool,
    enabled: bool,
    line: bool,
    /// Edge latch, or the software pending state of GICD_ISPENDR.
    latch: bool,
    active: bool,
}

impl Reference {
    fn pending(&self) -> bool {
        self.latch || (!self.edge && self.line)
    }
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Line(bool),
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
    Enable(bool),
    /// The guest acknowledges it (ICC_IAR1_EL1 / GICV_IAR).
    Ack,
    /// The guest ends it (EOImode 0: priority drop and deactivation).
    Eoi,
}

impl Event {
    fn random(rng: &mut Rng) -> Event {
        match rng.below(10) {
            0 => Event::Line(true),
            1 => Event::Line(false),
            2 => Event::SetPending,
            3 => Event::ClearPending,
            4 => Event::SetActive,
            5 => Event::ClearActive,
            6 => Event::Enable(rng.below(4) != 0),
            7 | 8 => Event::Ack,
            _ => Event::Eoi,
        }
    }
}

/// Applies `event` to the reference and to the vGIC, then compares what
/// GICD_ISPENDR / GICD_ISACTIVER (or the GICR copies) read.
fn step(g: &mut Vgic, r: &mut Reference, vcpu: usize, intid: u32, event: Event) {
    match event {
        Event::Line(level) => {
            if r.edge && level && !r.line {
                r.latch = true;
            }
            r.line = level;
            g.set_level(vcpu, intid, level).unwrap();
        }
        Event::SetPending => {
            r.latch = true;
            write_bit(g, vcpu, intid, 0x200);
        }
        Event::ClearPending => {
            // A level interrupt whose line is asserted stays pending.
            r.latch = false;
            write_bit(g, vcpu, intid, 0x280);
        }
        Event::SetActive => {
            r.active = true;
            write_bit(g, vcpu, intid, 0x300);
        }
        Event::ClearActive => {
            r.active = false;
            write_bit(g, vcpu, intid, 0x380);
        }
        Event::Enable(on) => {
            r.enabled = on;
            write_bit(g, vcpu, intid, if on { 0x100 } else { 0x180 });
        }
        Event::Ack => {
            // Only a pending, enabled, inactive interrupt is signalled; the
            // acknowledge makes it active and consumes an edge or software
            // pending state; a level line still asserted keeps it pending.
            let deliverable = r.enabled && r.pending() && !r.active;
            let found = guest(g, vcpu, intid, |s| if s == LrState::Pending { LrState::Active } else { s });
            assert_eq!(found == Some(LrState::Pending), deliverable, "{intid} presented as pending: {r:?}");
            if deliverable {
                r.active = true;
                r.latch = false;
            }
        }
        Event::Eoi => {
            let found = guest(g, vcpu, intid, |s| match s {
                LrState::Active => LrState::Invalid,
                LrState::PendingActive => LrState::Pending,
                other => other,
            });
            if r.active {
                assert!(found.is_some_and(|s| s.active()), "{intid}: an active interrupt stays in an LR: {r:?}");
                r.active = false;
            }
        }
    }
    assert_eq!(read_bit(g, vcpu, intid, 0x200), r.pending(), "{intid} pending after {event:?}: {r:?}");
    assert_eq!(read_bit(g, vcpu, intid, 0x300), r.active, "{intid} active after {event:?}: {r:?}");
    assert_eq!(read_bit(g, vcpu, intid, 0x100), r.enabled, "{intid} enabled after {event:?}");
}

fn state_machine(version: GicVersion, intid: u32, edge: bool, seed: u64) {
    let mut g = enabled_vgic(version, 2, 32);
    let vcpu = if intid < 32 { 1 } else { 0 };
    set_trigger(&mut g, vcpu, intid, edge);
    let mut r = Reference { edge, ..Default::default() };
    step(&mut g, &mut r, vcpu, intid, Event::Enable(true));
    let mut rng = Rng(seed);
    for _ in 0..3000 {
        let event = Event::random(&mut rng);
        step(&mut g, &mut r, vcpu, intid, event);
    }
}

#[test]
fn the_distributor_follows_the_architectural_state_machine() {
    for version in [GicVersion::V3, GicVersion::V2] {
        for (intid, edge) in [(40, true), (40, false), (20, false), (27, false)] {
            state_machine(version, intid, edge, 0x1234_5678 ^ u64::from(intid) ^ u64::from(edge));
        }
    }
    // GICv3 SGIs are edge-triggered like any other edge interrupt.
    state_machine(GicVersion::V3, 5, true, 99);
}

#[test]
fn level_state_machine_by_hand() {
    // IHI 0069H §4.1.2, the level-sensitive walk: assert, acknowledge
    // (pending and active while the line stays up), EOI (pending again),
    // the device deasserts: inactive.
    let mut g = enabled_vgic(GicVersion::V3, 1, 32);
    let mut r = Reference { enabled: false, ..Default::default() };
    let s = |g: &mut Vgic, r: &mut Reference, e| step(g, r, 0, 35, e);
    s(&mut g, &mut r, Event::Enable(true));
    s(&mut g, &mut r, Event::Line(true));
    assert!(r.pending() && !r.active);
    s(&mut g, &mut r, Event::Ack);
    assert!(r.pending() && r.active, "pending and active");
    s(&mut g, &mut r, Event::Eoi);
    assert!(r.pending() && !r.active, "re-asserted after the EOI");
    s(&mut g, &mut r, Event::Ack);
    s(&mut g, &mut r, Event::Line(false));
    assert!(!r.pending() && r.active);
    s(&mut g, &mut r, Event::Eoi);
    assert!(!r.pending() && !r.active);
    // A software pending state on a level interrupt is consumed by the acknowledge.
    s(&mut g, &mut r, Event::SetPending);
    s(&mut g, &mut r, Event::Ack);
    assert!(!r.pending() && r.active);
    s(&mut g, &mut r, Event::Eoi);
    // ICPENDR cannot clear what the line asserts.
    s(&mut g, &mut r, Event::Line(true));
    s(&mut g, &mut r, Event::ClearPending);
    assert!(r.pending());
}

// ---- the list-register allocator ----

/// What the allocator must choose for `vcpu`: every interrupt active on it
/// first, then the deliverable ones; each group by priority, then INTID.
fn expected_plan(g: &Vgic, vcpu: usize) -> Vec<(bool, u8, u32)> {
    let mut all: Vec<(bool, u8, u32)> = Vec::new();
    let pending = g.pending_for(vcpu);
    for intid in 0..(NR_PRIVATE + g.nr_spis()) as u32 {
        let irq = g.irq_state(vcpu, intid).unwrap();
        let active_here = irq.active && !irq.in_lr && usize::from(irq.lr_vcpu) == vcpu;
        let pending_here = pending.contains(&intid);
        if active_here || pending_here {
            all.push((!irq.active, irq.priority, intid));
        }
    }
    all.sort_unstable();
    all
}

#[test]
fn the_allocator_picks_active_then_most_urgent_and_delivers_all_exactly_once() {
    for (version, nr_vcpus) in [(GicVersion::V3, 3), (GicVersion::V2, 3)] {
        for seed in 1..40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut g = enabled_vgic(version, nr_vcpus, 64);
            let vcpu = rng.below(nr_vcpus as u64) as usize;
            let mut made_pending = Vec::new();
            // One active interrupt of low urgency, which keeps its LR.
            let active_one = 32 + 63;
            // SGIs (from several sources), PPIs and SPIs, edge-triggered so
            // that each is delivered once; random priorities with ties.
            for intid in 0..active_one {
                if rng.below(3) != 0 {
                    continue;
                }
                if intid >= 16 {
                    set_trigger(&mut g, vcpu, intid, true);
                }
                set_priority(&mut g, vcpu, intid, (rng.below(6) * 0x20) as u8);
                write_bit(&mut g, vcpu, intid, 0x100);
                match intid {
                    0..16 if version == GicVersion::V2 => {
                        // GICD_SGIR from one or two other vCPUs: one delivery per source.
                        for from in 0..nr_vcpus {
                            if from != vcpu && rng.below(2) == 0 {
                                g.mmio_write(from, Frame::Dist, 0xF00, 4, ((1 << vcpu) << 16) | u64::from(intid))
                                    .unwrap();
                                made_pending.push(intid);
                            }
                        }
                    }
                    0..16 => {
                        g.send_sgi(0, (u64::from(intid) << 24) | (1 << vcpu)).unwrap();
                        made_pending.push(intid);
                    }
                    16..32 => {
                        g.inject(vcpu, intid).unwrap();
                        made_pending.push(intid);
                    }
                    _ => {
                        // Route the SPI to `vcpu`.
                        if version == GicVersion::V3 {
                            g.mmio_write(0, Frame::Dist, 0x6000 + 8 * u64::from(intid), 8, vcpu as u64).unwrap();
                        } else {
                            g.mmio_write(0, Frame::Dist, 0x800 + u64::from(intid), 1, 1 << vcpu).unwrap();
                        }
                        g.inject(vcpu, intid).unwrap();
                        made_pending.push(intid);
                    }
                }
            }
            set_priority(&mut g, vcpu, active_one, 0xF0);
            if version == GicVersion::V3 {
                g.mmio_write(vcpu, Frame::Dist, 0x6000 + 8 * u64::from(active_one), 8, vcpu as u64).unwrap();
            } else {
                g.mmio_write(0, Frame::Dist, 0x800 + u64::from(active_one), 1, 1 << vcpu).unwrap();
            }
            write_bit(&mut g, vcpu, active_one, 0x300);

            let mut delivered: Vec<u32> = Vec::new();
            let mut last_priority = 0u8;
            for _round in 0..200 {
                // At least two: one is held by the active interrupt.
                let nr_lrs = 2 + rng.below(5) as usize;
                let want = expected_plan(&g, vcpu);
                let plan = g.flush_lrs(vcpu, nr_lrs);
                let got: Vec<u32> = plan.lrs.iter().map(|&lr| decode_intid(version, lr)).collect();
                let want_ids: Vec<u32> = want.iter().take(nr_lrs).map(|k| k.2).collect();
                assert_eq!(got, want_ids, "{version:?} seed {seed}: LRs for {nr_lrs} list registers");
                assert_eq!(plan.underflow, want.len() > nr_lrs, "underflow iff some are left over");
                let mut seen = got.clone();
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen.len(), got.len(), "an INTID in two LRs");
                // The guest takes only the most urgent pending one (as the
                // CPU interface would), and EOIs it at once.
                let first_pending = plan.lrs.iter().position(|&lr| decode_state(version, lr) == LrState::Pending);
                let shift = if version == GicVersion::V3 { 62 } else { 28 };
                let back: Vec<u64> = plan
                    .lrs
                    .iter()
                    .enumerate()
                    .map(|(i, &lr)| if Some(i) == first_pending { lr & !(3 << shift) } else { lr })
                    .collect();
                if let Some(i) = first_pending {
                    let intid = got[i];
                    let p = g.irq_state(vcpu, intid).unwrap().priority;
                    assert!(p >= last_priority, "{intid} (priority {p:#x}) after a less urgent one");
                    last_priority = p;
                    delivered.push(intid);
                }
                g.sync_lrs(vcpu, &back);
                if first_pending.is_none() {
                    break;
                }
            }
            made_pending.sort_unstable();
            delivered.sort_unstable();
            assert_eq!(delivered, made_pending, "{version:?} seed {seed}: each delivered exactly once");
            assert!(g.irq_state(vcpu, active_one).unwrap().active, "the active one stays active");
            assert!(!g.has_pending(vcpu));
        }
    }
}

#[test]
fn no_list_registers_or_too_many() {
    let mut g = enabled_vgic(GicVersion::V3, 1, 64);
    for intid in 32..(32 + 40) {
        write_bit(&mut g, 0, intid, 0x100);
        write_bit(&mut g, 0, intid, 0x200);
    }
    let plan = g.flush_lrs(0, 0);
    assert!(plan.lrs.is_empty() && plan.underflow, "nothing fits, the rest must follow");
    g.sync_lrs(0, &[]);
    let plan = g.flush_lrs(0, 100);
    assert_eq!(plan.lrs.len(), MAX_LRS, "capped at the architectural maximum");
    assert!(plan.underflow);
}

#[test]
fn a_software_pending_state_survives_an_lr_that_only_showed_the_interrupt_active() {
    // A level, hardware-mapped SPI is active in the guest; the guest sets
    // it pending through GICD_ISPENDR. With HW = 1 an LR cannot be pending
    // and active (IHI 0069H §12.4.6), so the LR shows it active only; the
    // EOI must not consume a pending state the LR never carried.
    let mut g = enabled_vgic(GicVersion::V3, 1, 32);
    g.map_hw(0, 40, Some(40)).unwrap();
    write_bit(&mut g, 0, 40, 0x100);
    g.set_level(0, 40, true).unwrap();
    assert_eq!(guest(&mut g, 0, 40, |_| LrState::Active), Some(LrState::Pending));
    g.set_level(0, 40, false).unwrap();
    write_bit(&mut g, 0, 40, 0x200);
    assert_eq!(guest(&mut g, 0, 40, |_| LrState::Invalid), Some(LrState::Active), "HW: active only");
    assert!(read_bit(&mut g, 0, 40, 0x200), "still pending after the EOI");
    assert_eq!(guest(&mut g, 0, 40, |_| LrState::Active), Some(LrState::Pending), "and delivered again");
}

#[test]
fn an_active_level_interrupt_is_never_shown_pending_too() {
    // The guest acknowledged a level interrupt and the vCPU exited before
    // its handler silenced the device (the line is still high). Shown
    // pending and active, the guest would take the stale pending copy
    // after its EOI although the device had deasserted meanwhile (the
    // virtual timer re-armed by its handler, which causes no exit). So: active only,
    // EOI maintenance requested, resampled at that exit.
    for version in [GicVersion::V3, GicVersion::V2] {
        let mut g = enabled_vgic(version, 1, 32);
        let (shift, eoi_bit) = if version == GicVersion::V3 { (62, 1u64 << 41) } else { (28, 1 << 19) };
        for intid in [33u32, 27] {
            write_bit(&mut g, 0, intid, 0x100);
            g.set_level(0, intid, true).unwrap();
            assert_eq!(guest(&mut g, 0, intid, |_| LrState::Active), Some(LrState::Pending));
            let plan = g.flush_lrs(0, 4);
            assert_eq!(plan.lrs.len(), 1);
            assert_eq!((plan.lrs[0] >> shift) & 3, 2, "{version:?} {intid}: active only");
            assert_ne!(plan.lrs[0] & eoi_bit, 0, "EOI maintenance to resample the line");
            // The handler silences the device, then EOIs.
            g.set_level(0, intid, false).unwrap();
            g.sync_lrs(0, &[plan.lrs[0] & !(3 << shift)]);
            assert!(g.flush_lrs(0, 4).lrs.is_empty(), "not taken again");
            g.sync_lrs(0, &[]);
        }
    }
    // Edge interrupts keep pending-and-active: a second edge is a second interrupt.
    let mut g = enabled_vgic(GicVersion::V3, 1, 32);
    set_trigger(&mut g, 0, 40, true);
    write_bit(&mut g, 0, 40, 0x100);
    g.inject(0, 40).unwrap();
    assert_eq!(guest(&mut g, 0, 40, |_| LrState::Active), Some(LrState::Pending));
    g.inject(0, 40).unwrap();
    assert_eq!(g.flush_lrs(0, 4).lrs[0] >> 62, 3);
}
