use super::lr::{LrEntry, decode_intid, decode_state, encode_v2, encode_v3};
use super::sgi::{decode_sgi1r, decode_sgir};
use super::*;
use std::vec;
use std::vec::Vec;

const SGI: u64 = 0x1_0000;

fn v3(nr_vcpus: usize, nr_spis: usize) -> Vgic {
    let mut g = Vgic::new(GicVersion::V3, nr_vcpus, nr_spis).unwrap();
    dw(&mut g, 0x000, 0x13); // ARE_NS | EnableGrp1 | EnableGrp0, as Linux writes
    g
}

fn v2(nr_vcpus: usize, nr_spis: usize) -> Vgic {
    let mut g = Vgic::new(GicVersion::V2, nr_vcpus, nr_spis).unwrap();
    dw(&mut g, 0x000, 0x1);
    g
}

fn dr(g: &mut Vgic, offset: u64) -> u64 {
    g.mmio_read(0, Frame::Dist, offset, 4).unwrap()
}

fn dw(g: &mut Vgic, offset: u64, value: u64) {
    g.mmio_write(0, Frame::Dist, offset, 4, value).unwrap()
}

fn rr(g: &mut Vgic, rd: usize, offset: u64) -> u64 {
    g.mmio_read(rd, Frame::Redist(rd), offset, 4).unwrap()
}

fn rw(g: &mut Vgic, rd: usize, offset: u64, value: u64) {
    g.mmio_write(rd, Frame::Redist(rd), offset, 4, value).unwrap()
}

/// A guest that acknowledges and EOIs everything pending in its LRs.
/// Returns the INTIDs it took, in LR order.
fn run_guest_eoi_all(g: &mut Vgic, vcpu: usize, nr_lrs: usize) -> (Vec<u32>, bool) {
    let plan = g.flush_lrs(vcpu, nr_lrs);
    let version = g.version();
    let mut taken = Vec::new();
    let back: Vec<u64> = plan
        .lrs
        .iter()
        .map(|&lr| {
            if decode_state(version, lr).pending() {
                taken.push(decode_intid(version, lr));
            }
            let state_shift = if version == GicVersion::V3 { 62 } else { 28 };
            lr & !(3 << state_shift)
        })
        .collect();
    g.sync_lrs(vcpu, &back);
    (taken, plan.underflow)
}

// ---- construction ----

#[test]
fn new_checks_its_configuration() {
    assert_eq!(Vgic::new(GicVersion::V3, 0, 32).unwrap_err(), VgicError::BadVcpuCount(0));
    assert_eq!(Vgic::new(GicVersion::V2, 9, 32).unwrap_err(), VgicError::BadVcpuCount(9));
    assert_eq!(Vgic::new(GicVersion::V3, 65, 32).unwrap_err(), VgicError::BadVcpuCount(65));
    assert_eq!(Vgic::new(GicVersion::V3, 1, 961).unwrap_err(), VgicError::BadSpiCount(961));
    assert_eq!(Vgic::new(GicVersion::V3, 1, 33).unwrap().nr_spis(), 64);
    assert_eq!(Vgic::new(GicVersion::V3, 64, 960).unwrap().nr_vcpus(), 64);
}

#[test]
fn reset_state_is_a_new_vgic_of_the_same_shape() {
    for version in [GicVersion::V2, GicVersion::V3] {
        let fresh = Vgic::new(version, 2, 40).unwrap();
        let mut g = fresh.clone();
        dw(&mut g, 0x000, 0x3);
        dw(&mut g, 0x104, 0x2); // GICD_ISENABLER1: SPI 33
        g.set_level(0, 33, true).unwrap();
        assert_ne!(format!("{g:?}"), format!("{fresh:?}"));
        let reset = g.reset_state();
        assert_eq!(format!("{reset:?}"), format!("{fresh:?}"));
        assert_eq!((reset.nr_vcpus(), reset.nr_spis(), reset.version()), (2, 64, version));
    }
}

#[test]
fn frame_from_ipa_follows_the_layout() {
    use shared::layout::{GICD_BASE, GICR_BASE, GICR_STRIDE};
    assert_eq!(Frame::from_ipa(GicVersion::V3, 2, GICD_BASE + 4), Some((Frame::Dist, 4)));
    assert_eq!(
        Frame::from_ipa(GicVersion::V3, 2, GICR_BASE + GICR_STRIDE + 0x1_0100),
        Some((Frame::Redist(1), 0x1_0100))
    );
    assert_eq!(Frame::from_ipa(GicVersion::V3, 2, GICR_BASE + 2 * GICR_STRIDE), None);
    assert_eq!(Frame::from_ipa(GicVersion::V2, 2, GICR_BASE), None);
    assert_eq!(GICR_STRIDE, GICR_FRAME_SIZE);
}

// ---- GICv3 distributor ----

#[test]
fn v3_gicd_id_registers() {
    let mut g = v3(4, 64);
    // ITLinesNumber = 2 (96 INTIDs), CPUNumber = 3, IDbits = 9, No1N.
    assert_eq!(dr(&mut g, 0x004), 2 | (3 << 5) | (9 << 19) | (1 << 25));
    assert_eq!(dr(&mut g, 0x008), 0x43B);
    assert_eq!(dr(&mut g, 0x00C), 0, "TYPER2");
    assert_eq!(dr(&mut g, 0xFFE8) & 0xF0, 0x30, "PIDR2.ArchRev = 3");
    assert_eq!(dr(&mut g, 0xFFF0), 0x0D);
    assert_eq!(dr(&mut g, 0xFFFC), 0xB1);
    // ARE and DS read as one; the enables read back.
    assert_eq!(dr(&mut g, 0x000), 0x53);
    dw(&mut g, 0x000, 0);
    assert_eq!(dr(&mut g, 0x000), 0x50);
    let big = v3(17, 0);
    assert_ne!(big.clone().mmio_read(0, Frame::Dist, 4, 4).unwrap() & (1 << 26), 0, "RSS");
}

#[test]
fn v3_enable_set_clear_arrays() {
    let mut g = v3(1, 64);
    dw(&mut g, 0x104, 0x0000_00F0); // ISENABLER1: SPIs 36..39
    dw(&mut g, 0x104, 0x0000_0100); // adds 40, keeps the others
    assert_eq!(dr(&mut g, 0x104), 0x1F0);
    assert_eq!(dr(&mut g, 0x184), 0x1F0, "ICENABLER reads the same state");
    dw(&mut g, 0x184, 0x0000_0030); // ICENABLER1: clear 36, 37
    assert_eq!(dr(&mut g, 0x104), 0x1C0);
    assert!(g.irq_state(0, 38).unwrap().enabled);
    assert!(!g.irq_state(0, 36).unwrap().enabled);
    // Beyond the implemented SPIs: RAZ/WI.
    dw(&mut g, 0x10C, u32::MAX.into());
    assert_eq!(dr(&mut g, 0x10C), 0);
    // With ARE the SGI/PPI word of GICD is RAZ/WI.
    dw(&mut g, 0x100, u32::MAX.into());
    assert_eq!(dr(&mut g, 0x100), 0);
    assert!(!g.irq_state(0, 20).unwrap().enabled);
}

#[test]
fn v3_pending_and_active_arrays() {
    let mut g = v3(1, 32);
    dw(&mut g, 0x204, 1 << 3); // ISPENDR1: INTID 35
    assert_eq!(dr(&mut g, 0x204), 1 << 3);
    assert!(g.irq_state(0, 35).unwrap().is_pending());
    dw(&mut g, 0x284, 1 << 3);
    assert_eq!(dr(&mut g, 0x204), 0);
    // A level line keeps the interrupt pending through ICPENDR.
    g.set_level(0, 35, true).unwrap();
    dw(&mut g, 0x284, 1 << 3);
    assert_eq!(dr(&mut g, 0x204), 1 << 3);
    dw(&mut g, 0x304, 1 << 4);
    assert_eq!(dr(&mut g, 0x384), 1 << 4);
    dw(&mut g, 0x384, 1 << 4);
    assert_eq!(dr(&mut g, 0x304), 0);
    // IGROUPR takes every bit; IGRPMODR is RAZ/WI.
    dw(&mut g, 0x084, 0xFFFF_0000);
    assert_eq!(dr(&mut g, 0x084), 0xFFFF_0000);
    assert!(!g.irq_state(0, 32).unwrap().group1);
    dw(&mut g, 0xD04, u32::MAX.into());
    assert_eq!(dr(&mut g, 0xD04), 0);
}

#[test]
fn v3_priorities_are_byte_accessible() {
    let mut g = v3(1, 32);
    dw(&mut g, 0x420, 0x4030_2010); // INTIDs 32..35
    assert_eq!(g.mmio_read(0, Frame::Dist, 0x421, 1), Ok(0x20));
    g.mmio_write(0, Frame::Dist, 0x422, 1, 0xA5).unwrap();
    // Five priority bits: the low three are RAZ/WI.
    assert_eq!(dr(&mut g, 0x420), 0x40A0_2010);
    assert_eq!(g.irq_state(0, 34).unwrap().priority, 0xA0);
    assert_eq!(g.mmio_read(0, Frame::Dist, 0x421, 2), Err(MmioError::Unaligned { offset: 0x421, size: 2 }));
    assert_eq!(
        g.mmio_read(0, Frame::Dist, 0x422, 2),
        Err(MmioError::BadSize { offset: 0x422, size: 2 }),
        "halfwords are not allowed"
    );
    // Private priorities live in the GICR when ARE = 1.
    dw(&mut g, 0x400, u32::MAX.into());
    assert_eq!(dr(&mut g, 0x400), 0);
}

#[test]
fn v3_icfgr() {
    let mut g = v3(1, 32);
    assert_eq!(dr(&mut g, 0xC08), 0, "SPIs reset to level");
    dw(&mut g, 0xC08, 0xFFFF_FFFF); // INTIDs 32..47 edge
    assert_eq!(dr(&mut g, 0xC08), 0xAAAA_AAAA, "only Int_config[1] is implemented");
    assert_eq!(g.irq_state(0, 40).unwrap().trigger, Trigger::Edge);
    dw(&mut g, 0xC08, 0x0000_0008); // only 33 stays edge
    assert_eq!(g.irq_state(0, 33).unwrap().trigger, Trigger::Edge);
    assert_eq!(g.irq_state(0, 32).unwrap().trigger, Trigger::Level);
    // SGIs are always edge; PPIs are level and stay so (their Int_config
    // is read-only here, as in KVM: the virtual timer relies on it).
    assert_eq!(rr(&mut g, 0, SGI + 0xC00), 0xAAAA_AAAA);
    rw(&mut g, 0, SGI + 0xC00, 0);
    assert_eq!(rr(&mut g, 0, SGI + 0xC00), 0xAAAA_AAAA);
    assert_eq!(rr(&mut g, 0, SGI + 0xC04), 0);
    rw(&mut g, 0, SGI + 0xC04, 2 << 22); // PPI 27 edge: ignored
    assert_eq!(g.irq_state(0, 27).unwrap().trigger, Trigger::Level);
    assert_eq!(rr(&mut g, 0, SGI + 0xC04), 0);
    let mut g2 = v2(1, 32);
    g2.mmio_write(0, Frame::Dist, 0xC04, 4, u64::from(u32::MAX)).unwrap();
    assert_eq!(g2.irq_state(0, 27).unwrap().trigger, Trigger::Level, "GICv2 PPIs too");
    assert_eq!(g2.mmio_read(0, Frame::Dist, 0xC04, 4), Ok(0));
}

#[test]
fn v3_irouter() {
    let mut g = v3(4, 32);
    let at = |intid: u64| 0x6000 + 8 * intid;
    g.mmio_write(0, Frame::Dist, at(33), 8, 0xFFFF_FFFF_FFFF_FFFF).unwrap();
    assert_eq!(g.mmio_read(0, Frame::Dist, at(33), 8), Ok(0xFF_00FF_FFFF), "IRM and RES0 bits drop");
    g.mmio_write(0, Frame::Dist, at(33), 4, 2).unwrap();
    g.mmio_write(0, Frame::Dist, at(33) + 4, 4, 0).unwrap();
    assert_eq!(g.mmio_read(0, Frame::Dist, at(33), 8), Ok(2));
    assert_eq!(g.mmio_read(0, Frame::Dist, at(33) + 4, 4), Ok(0));
    // Reserved for INTIDs < 32 and beyond the SPIs.
    g.mmio_write(0, Frame::Dist, at(5), 8, 3).unwrap();
    assert_eq!(g.mmio_read(0, Frame::Dist, at(5), 8), Ok(0));
    assert_eq!(g.mmio_read(0, Frame::Dist, at(64), 8), Ok(0));
    assert!(g.mmio_read(0, Frame::Dist, at(33), 2).is_err());
    assert!(g.mmio_read(0, Frame::Dist, at(33) + 4, 8).is_err(), "unaligned 64-bit");

    // Routing decides the vCPU that gets the SPI, and which is kicked.
    dw(&mut g, 0x104, 1 << 1);
    g.take_kicks();
    g.inject(0, 33).unwrap();
    assert_eq!(g.take_kicks().bits(), 1 << 2);
    assert!(g.pending_for(0).is_empty());
    assert_eq!(g.pending_for(2), vec![33]);
    // An affinity no vCPU has: nobody gets it.
    g.mmio_write(0, Frame::Dist, at(33), 8, 1 << 8).unwrap();
    assert!((0..4).all(|v| !g.has_pending(v)));
}

#[test]
fn v3_bad_accesses_are_errors() {
    let mut g = v3(2, 32);
    let d = Frame::Dist;
    assert_eq!(g.mmio_read(0, d, 0x004, 8), Err(MmioError::Unaligned { offset: 4, size: 8 }));
    assert_eq!(g.mmio_read(0, d, 0x000, 8), Err(MmioError::BadSize { offset: 0, size: 8 }));
    assert_eq!(g.mmio_read(0, d, 0x104, 1), Err(MmioError::BadSize { offset: 0x104, size: 1 }));
    assert_eq!(g.mmio_read(0, d, 0x102, 2), Err(MmioError::BadSize { offset: 0x102, size: 2 }));
    assert_eq!(g.mmio_read(0, d, 0x101, 4), Err(MmioError::Unaligned { offset: 0x101, size: 4 }));
    assert_eq!(g.mmio_read(0, d, 0x10000, 4), Err(MmioError::OutOfRange { offset: 0x10000 }));
    assert_eq!(g.mmio_write(0, d, 0, 3, 0), Err(MmioError::BadSize { offset: 0, size: 3 }));
    assert_eq!(g.mmio_write(0, d, 0, 16, 0), Err(MmioError::BadSize { offset: 0, size: 16 }));
    assert!(g.mmio_read(0, Frame::Redist(2), 0, 4).is_err(), "no third redistributor");
    assert!(g.mmio_read(0, Frame::Redist(usize::MAX), 0, 4).is_err());
    assert!(g.mmio_read(0, Frame::Redist(0), 0x20000, 4).is_err());
    // Unknown offsets are RAZ/WI at any aligned size.
    assert_eq!(g.mmio_read(0, d, 0x5000, 2), Ok(0));
    assert_eq!(g.mmio_write(0, d, 0x5000, 8, u64::MAX), Ok(()));
}

// ---- GICv3 redistributor ----

#[test]
fn gicr_typer_and_ids() {
    let mut g = v3(3, 0);
    for rd in 0..3 {
        let typer = g.mmio_read(0, Frame::Redist(rd), 0x8, 8).unwrap();
        assert_eq!(typer >> 32, rd as u64, "Affinity_Value = Aff0 = index");
        assert_eq!((typer >> 8) & 0xFFFF, rd as u64, "Processor_Number");
        assert_eq!(typer & (1 << 4) != 0, rd == 2, "Last");
        assert_eq!(rr(&mut g, rd, 0x8), typer & 0xFFFF_FFFF);
        assert_eq!(rr(&mut g, rd, 0xC), typer >> 32);
    }
    assert_eq!(rr(&mut g, 0, 0xFFE8) & 0xF0, 0x30);
    assert_eq!(rr(&mut g, 0, 0x4), 0x43B);
    assert_eq!(rr(&mut g, 0, 0x0), 0, "GICR_CTLR: no LPIs");
}

#[test]
fn gicr_waker_handshake() {
    let mut g = v3(2, 0);
    assert_eq!(rr(&mut g, 1, 0x14), 0b110, "asleep out of reset");
    // Linux gic_enable_redist(): clear ProcessorSleep, wait for ChildrenAsleep == 0.
    let waker = rr(&mut g, 1, 0x14);
    rw(&mut g, 1, 0x14, waker & !0b10);
    assert_eq!(rr(&mut g, 1, 0x14) & 0b100, 0);
    assert_eq!(rr(&mut g, 0, 0x14), 0b110, "other redistributors untouched");
    rw(&mut g, 1, 0x14, 0b10);
    assert_eq!(rr(&mut g, 1, 0x14), 0b110);
}

#[test]
fn gicr_sgi_frame_is_per_vcpu() {
    let mut g = v3(2, 0);
    rw(&mut g, 1, SGI + 0x100, 0x0000_FFFF); // ISENABLER0 on vCPU 1
    rw(&mut g, 1, SGI + 0x100, 1 << 27);
    assert_eq!(rr(&mut g, 1, SGI + 0x100), 0x0800_FFFF);
    assert_eq!(rr(&mut g, 0, SGI + 0x100), 0);
    rw(&mut g, 1, SGI + 0x180, 0x0000_FF00);
    assert_eq!(rr(&mut g, 1, SGI + 0x100), 0x0800_00FF);
    assert_eq!(rr(&mut g, 1, SGI + 0x080), 0xFFFF_FFFF, "v3 resets to group 1");
    rw(&mut g, 1, SGI + 0x080, 0);
    assert_eq!(rr(&mut g, 1, SGI + 0x080), 0);
    g.mmio_write(1, Frame::Redist(1), SGI + 0x41B, 1, 0x88).unwrap();
    assert_eq!(g.irq_state(1, 27).unwrap().priority, 0x88);
    assert_eq!(rr(&mut g, 1, SGI + 0x418), 0x8800_0000);
    assert_eq!(g.irq_state(0, 27).unwrap().priority, 0);
    rw(&mut g, 1, SGI + 0x200, 1 << 27);
    assert_eq!(rr(&mut g, 1, SGI + 0x200), 1 << 27);
    rw(&mut g, 1, SGI + 0x280, 1 << 27);
    assert_eq!(rr(&mut g, 1, SGI + 0x200), 0);
    // Words beyond ISENABLER0 (extended PPIs) are RAZ/WI.
    rw(&mut g, 1, SGI + 0x104, u32::MAX.into());
    assert_eq!(rr(&mut g, 1, SGI + 0x104), 0);
}

// ---- SGIs ----

#[test]
fn sgi1r_decoding() {
    // INTID 5 to Aff0 {0, 2, 3}.
    let r = decode_sgi1r((5 << 24) | 0b1101, 1, 4);
    assert_eq!((r.intid, r.targets.bits()), (5, 0b1101));
    // Bits naming vCPUs that do not exist are dropped.
    assert_eq!(decode_sgi1r(0xFFFF, 0, 3).targets.bits(), 0b111);
    // Aff1 != 0 names nobody here.
    assert!(decode_sgi1r((1 << 16) | 1, 0, 4).targets.is_empty());
    assert!(decode_sgi1r((1 << 32) | 1, 0, 4).targets.is_empty());
    assert!(decode_sgi1r((1 << 48) | 1, 0, 4).targets.is_empty());
    // RS selects Aff0 16..31.
    assert_eq!(decode_sgi1r((1 << 44) | 0b11, 0, 18).targets.bits(), 0b11 << 16);
    // IRM: everyone but the sender, whatever the list says.
    let r = decode_sgi1r((1 << 40) | (15 << 24) | 0xFFFF, 2, 4);
    assert_eq!((r.intid, r.targets.bits()), (15, 0b1011));
    assert!(decode_sgi1r(1 << 40, 0, 1).targets.is_empty());
}

#[test]
fn send_sgi_makes_sgis_pending_on_targets() {
    let mut g = v3(4, 0);
    for rd in 0..4 {
        rw(&mut g, rd, SGI + 0x100, 0xFFFF);
    }
    g.take_kicks();
    let targets = g.send_sgi(0, (1 << 40) | (3 << 24)).unwrap();
    assert_eq!(targets.bits(), 0b1110);
    assert_eq!(g.take_kicks().bits(), 0b1110);
    assert!(!g.has_pending(0));
    assert_eq!(g.pending_for(3), vec![3]);
    assert_eq!(g.send_sgi(9, 0), Err(VgicError::NoSuchVcpu(9)));
    let mut g2 = v2(2, 0);
    assert_eq!(g2.send_sgi(0, 0), Err(VgicError::WrongVersion));
}

#[test]
fn gicv2_sgir_filters() {
    let list = decode_sgir((0b0110 << 16) | 7, 0, 4).unwrap();
    assert_eq!((list.intid, list.targets.bits()), (7, 0b0110));
    assert_eq!(decode_sgir(0xFF << 16, 0, 3).unwrap().targets.bits(), 0b111);
    assert_eq!(decode_sgir(1 << 24, 1, 4).unwrap().targets.bits(), 0b1101);
    assert_eq!(decode_sgir(2 << 24 | (0xFF << 16), 2, 4).unwrap().targets.bits(), 0b0100);
    assert_eq!(decode_sgir(3 << 24, 0, 4), None);
}

// ---- GICv2 distributor ----

#[test]
fn v2_gicd_id_registers() {
    let mut g = v2(4, 64);
    assert_eq!(dr(&mut g, 0x004), 2 | (3 << 5), "ITLinesNumber, CPUNumber");
    assert_eq!(dr(&mut g, 0xFE8) & 0xF0, 0x20, "PIDR2.ArchRev = 2");
    assert_eq!(dr(&mut g, 0x000), 1);
    assert_eq!(dr(&mut g, 0xFFE8), 0, "no v3 ID block");
    assert_eq!(dr(&mut g, 0x080), 0, "v2 resets to group 0");
}

#[test]
fn v2_banked_private_registers() {
    let mut g = v2(2, 32);
    // SGIs start enabled; PPI 27 is enabled on vCPU 1 only.
    g.mmio_write(1, Frame::Dist, 0x100, 4, 1 << 27).unwrap();
    assert_eq!(g.mmio_read(1, Frame::Dist, 0x100, 4), Ok((1 << 27) | 0xFFFF));
    assert_eq!(g.mmio_read(0, Frame::Dist, 0x100, 4), Ok(0xFFFF));
    g.mmio_write(1, Frame::Dist, 0x41B, 1, 0xA0).unwrap();
    assert_eq!(g.irq_state(1, 27).unwrap().priority, 0xA0);
    assert_eq!(g.irq_state(0, 27).unwrap().priority, 0);
    assert_eq!(g.mmio_read(1, Frame::Dist, 0x418, 4), Ok(0xA000_0000));
}

#[test]
fn v2_itargetsr() {
    let mut g = v2(4, 32);
    // Private rows read as the accessing CPU and ignore writes.
    assert_eq!(g.mmio_read(2, Frame::Dist, 0x800, 4), Ok(0x0404_0404));
    assert_eq!(g.mmio_read(1, Frame::Dist, 0x81F, 1), Ok(0x02));
    g.mmio_write(2, Frame::Dist, 0x800, 4, 0xFFFF_FFFF).unwrap();
    assert_eq!(g.mmio_read(2, Frame::Dist, 0x800, 4), Ok(0x0404_0404));
    // SPI bytes keep the bits of existing CPUs only.
    g.mmio_write(0, Frame::Dist, 0x821, 1, 0xFF).unwrap();
    assert_eq!(g.mmio_read(0, Frame::Dist, 0x820, 4), Ok(0x0101_0F01));
    g.mmio_write(0, Frame::Dist, 0x820, 4, 0x0804_0201).unwrap();
    assert_eq!(g.irq_state(0, 35).unwrap().targets, 0x08);
    // Routing: SPI 34 to CPU 2 only.
    dw(&mut g, 0x104, 1 << 2);
    g.inject(0, 34).unwrap();
    assert_eq!(g.pending_for(2), vec![34]);
    assert!(!g.has_pending(0));
}

#[test]
fn v2_sgis_are_pending_per_source() {
    let mut g = v2(3, 0);
    // vCPU 0 and vCPU 2 each send SGI 1 to vCPU 1.
    g.mmio_write(0, Frame::Dist, 0xF00, 4, (0b010 << 16) | 1).unwrap();
    g.mmio_write(2, Frame::Dist, 0xF00, 4, (0b010 << 16) | 1).unwrap();
    assert_eq!(g.irq_state(1, 1).unwrap().sgi_sources, 0b101);
    assert_eq!(g.mmio_read(1, Frame::Dist, 0xF21, 1), Ok(0b101), "SPENDSGIR byte 1");
    assert_eq!(g.mmio_read(1, Frame::Dist, 0xF10, 4), Ok(0b101 << 8), "CPENDSGIR0");
    // Each source is delivered separately, with its CPUID in the LR.
    let plan = g.flush_lrs(1, 4);
    assert_eq!(plan.lrs.len(), 1);
    assert_eq!((plan.lrs[0] >> 10) & 7, 0, "source vCPU 0 first");
    g.sync_lrs(1, &[plan.lrs[0] & !(3 << 28)]);
    let plan = g.flush_lrs(1, 4);
    assert_eq!((plan.lrs[0] >> 10) & 7, 2);
    g.sync_lrs(1, &[plan.lrs[0] & !(3 << 28)]);
    assert!(!g.has_pending(1));
    // SPENDSGIR / CPENDSGIR set and clear sources directly.
    g.mmio_write(0, Frame::Dist, 0xF20, 4, 0xFF).unwrap();
    assert_eq!(g.irq_state(0, 0).unwrap().sgi_sources, 0b111);
    g.mmio_write(0, Frame::Dist, 0xF10, 1, 0b011).unwrap();
    assert_eq!(g.irq_state(0, 0).unwrap().sgi_sources, 0b100);
    // ISPENDR/ICPENDR do not touch v2 SGIs.
    dw(&mut g, 0x280, 1);
    assert_eq!(g.irq_state(0, 0).unwrap().sgi_sources, 0b100);
}

// ---- list registers ----

#[test]
fn lr_encodings() {
    let entry = LrEntry {
        intid: 27,
        pintid: Some(26),
        priority: 0xA0,
        group1: true,
        state: LrState::Pending,
        eoi_maintenance: false,
        source: 0,
    };
    assert_eq!(encode_v3(&entry), 27 | (26 << 32) | (0xA0 << 48) | (1 << 60) | (1 << 61) | (1 << 62));
    assert_eq!(encode_v2(&entry), 27 | (26 << 10) | (0x14 << 23) | (1 << 28) | (1 << 30) | (1 << 31));
    let soft = LrEntry { pintid: None, eoi_maintenance: true, state: LrState::PendingActive, ..entry };
    assert_eq!(encode_v3(&soft), 27 | (1 << 41) | (0xA0 << 48) | (1 << 60) | (3 << 62));
    assert_eq!(encode_v2(&soft), 27 | (1 << 19) | (0x14 << 23) | (3 << 28) | (1 << 30));
    let sgi = LrEntry { intid: 3, pintid: None, eoi_maintenance: false, source: 5, group1: false, ..entry };
    assert_eq!(encode_v2(&sgi), 3 | (5 << 10) | (0x14 << 23) | (1 << 28));
    assert_eq!(decode_state(GicVersion::V3, encode_v3(&soft)), LrState::PendingActive);
    assert_eq!(decode_state(GicVersion::V2, encode_v2(&sgi)), LrState::Pending);
}

#[test]
fn hw_mapped_interrupts_carry_the_physical_intid() {
    let mut g = v3(1, 32);
    g.map_hw(0, 27, Some(27)).unwrap();
    assert_eq!(g.map_hw(0, 3, Some(3)), Err(VgicError::NoSuchIrq(3)));
    assert_eq!(g.map_hw(0, 27, Some(1020)), Err(VgicError::NoSuchIrq(1020)));
    rw(&mut g, 0, SGI + 0x100, 1 << 27);
    g.set_level(0, 27, true).unwrap();
    let plan = g.flush_lrs(0, 4);
    assert_eq!(plan.lrs.len(), 1);
    let lr = plan.lrs[0];
    assert_eq!(lr & 0xFFFF_FFFF, 27);
    assert_eq!((lr >> 32) & 0x1FFF, 27);
    assert_ne!(lr & (1 << 61), 0, "HW");
    assert_eq!(lr & (1 << 41), 0, "no EOI request with HW = 1");
    // Active in the LR: the HW form never uses pending+active.
    g.sync_lrs(0, &[(lr & !(3 << 62)) | (2 << 62)]);
    let plan = g.flush_lrs(0, 4);
    assert_eq!(plan.lrs[0] >> 62, 2);

    let mut g2 = v2(1, 32);
    g2.map_hw(0, 30, Some(30)).unwrap();
    g2.mmio_write(0, Frame::Dist, 0x100, 4, 1 << 30).unwrap();
    g2.inject(0, 30).unwrap();
    let lr = g2.flush_lrs(0, 4).lrs[0];
    assert_eq!(lr & 0x3FF, 30);
    assert_eq!((lr >> 10) & 0x3FF, 30);
    assert_ne!(lr & (1 << 31), 0);
}

#[test]
fn more_pending_than_lrs_are_delivered_in_priority_order_exactly_once() {
    let mut g = v3(1, 64);
    // 40 edge SPIs with scrambled priorities.
    dw(&mut g, 0xC08, 0xAAAA_AAAA);
    dw(&mut g, 0xC0C, 0xAAAA_AAAA);
    dw(&mut g, 0xC10, 0xAAAA_AAAA);
    dw(&mut g, 0xC14, 0xAAAA_AAAA);
    let mut expected = Vec::new();
    for i in 0..40u32 {
        let intid = 32 + i;
        let priority = ((i * 7) % 5) as u8 * 0x20;
        g.mmio_write(0, Frame::Dist, 0x400 + u64::from(intid), 1, priority.into()).unwrap();
        dw(&mut g, 0x100 + 4 * u64::from(intid / 32), 1 << (intid % 32));
        g.inject(0, intid).unwrap();
        expected.push((priority, intid));
    }
    expected.sort();
    let mut delivered = Vec::new();
    let mut rounds = 0;
    loop {
        let (taken, underflow) = run_guest_eoi_all(&mut g, 0, 4);
        if taken.is_empty() {
            assert!(!underflow);
            break;
        }
        assert!(taken.len() <= 4);
        assert_eq!(underflow, delivered.len() + taken.len() < 40);
        delivered.extend(taken);
        rounds += 1;
    }
    assert_eq!(rounds, 10);
    let expected: Vec<u32> = expected.into_iter().map(|(_, intid)| intid).collect();
    assert_eq!(delivered, expected);
}

#[test]
fn an_edge_injected_while_in_an_lr_is_not_lost() {
    let mut g = v3(1, 32);
    dw(&mut g, 0xC08, 0xAAAA_AAAA);
    dw(&mut g, 0x104, 1);
    g.inject(0, 32).unwrap();
    let plan = g.flush_lrs(0, 4);
    // The guest acknowledges it (active), then the device fires again.
    g.inject(0, 32).unwrap();
    let acked = (plan.lrs[0] & !(3 << 62)) | (2 << 62);
    g.sync_lrs(0, &[acked]);
    let plan = g.flush_lrs(0, 4);
    assert_eq!(plan.lrs.len(), 1);
    assert_eq!(plan.lrs[0] >> 62, 3, "pending and active");
    g.sync_lrs(0, &[plan.lrs[0] & !(3 << 62)]);
    assert!(!g.has_pending(0));
    assert!(!g.irq_state(0, 32).unwrap().active);
}

#[test]
fn level_interrupts_repend_until_the_line_drops() {
    let mut g = v3(1, 32);
    dw(&mut g, 0x104, 1 << 1);
    g.set_level(0, 33, true).unwrap();
    for _ in 0..3 {
        let (taken, _) = run_guest_eoi_all(&mut g, 0, 4);
        assert_eq!(taken, vec![33], "re-asserted while the line is high");
    }
    let plan = g.flush_lrs(0, 4);
    assert_ne!(plan.lrs[0] & (1 << 41), 0, "EOI maintenance to resample");
    g.set_level(0, 33, false).unwrap();
    g.sync_lrs(0, &[plan.lrs[0] & !(3 << 62)]);
    let (taken, _) = run_guest_eoi_all(&mut g, 0, 4);
    assert!(taken.is_empty());
    // A line dropped before the guest acknowledged: withdrawn at the next flush.
    g.set_level(0, 33, true).unwrap();
    let plan = g.flush_lrs(0, 4);
    g.set_level(0, 33, false).unwrap();
    g.sync_lrs(0, &plan.lrs);
    assert!(g.flush_lrs(0, 4).lrs.is_empty());
}

#[test]
fn active_interrupts_stay_in_their_lr() {
    let mut g = v3(2, 32);
    dw(&mut g, 0xC08, 0xAAAA_AAAA);
    for intid in 32..40u32 {
        g.mmio_write(0, Frame::Dist, 0x400 + u64::from(intid), 1, 0x80).unwrap();
    }
    dw(&mut g, 0x104, 0xFF);
    // INTID 39 has the lowest urgency but becomes active first.
    g.inject(0, 39).unwrap();
    let plan = g.flush_lrs(0, 2);
    g.sync_lrs(0, &[(plan.lrs[0] & !(3 << 62)) | (2 << 62)]);
    for intid in 32..36 {
        g.inject(0, intid).unwrap();
    }
    // It is now routed elsewhere, but an active SPI stays with its vCPU.
    g.mmio_write(0, Frame::Dist, 0x6000 + 8 * 39, 8, 1).unwrap();
    assert!(g.flush_lrs(1, 2).lrs.is_empty());
    let plan = g.flush_lrs(0, 2);
    assert!(plan.underflow);
    let intids: Vec<u32> = plan.lrs.iter().map(|&lr| lr as u32).collect();
    assert_eq!(intids, vec![39, 32]);
    assert_eq!(plan.lrs[0] >> 62, 2);
}

#[test]
fn flush_without_sync_gives_the_same_plan() {
    let mut g = v3(1, 32);
    dw(&mut g, 0x104, 0b111);
    for intid in 32..35 {
        g.set_level(0, intid, true).unwrap();
    }
    dw(&mut g, 0xC08, 0b10);
    g.inject(0, 32).unwrap();
    let first = g.flush_lrs(0, 4);
    let second = g.flush_lrs(0, 4);
    assert_eq!(first, second);
    assert_eq!(first.lrs.len(), 3);
}

#[test]
fn an_spi_sits_in_one_vcpus_lrs_at_a_time() {
    let mut g = v2(2, 32);
    dw(&mut g, 0x820, 0b11); // SPI 32 to CPUs 0 and 1
    dw(&mut g, 0x104, 1);
    g.inject(0, 32).unwrap();
    assert!(g.has_pending(0) && g.has_pending(1));
    assert_eq!(g.flush_lrs(1, 4).lrs.len(), 1);
    assert!(g.flush_lrs(0, 4).lrs.is_empty());
    assert!(!g.has_pending(0));
}

#[test]
fn distributor_and_group_enables_gate_delivery() {
    let mut g = Vgic::new(GicVersion::V3, 1, 32).unwrap();
    dw(&mut g, 0x104, 1);
    g.inject(0, 32).unwrap();
    assert!(!g.has_pending(0), "GICD_CTLR.EnableGrp1 clear");
    assert!(g.take_kicks().is_empty());
    dw(&mut g, 0x000, 0x12);
    assert!(g.has_pending(0));
    assert_eq!(g.take_kicks().bits(), 1);
    dw(&mut g, 0x084, 0); // move to group 0, which is disabled
    assert!(!g.has_pending(0));
    dw(&mut g, 0x000, 0x13);
    let lr = g.flush_lrs(0, 4).lrs[0];
    assert_eq!(lr & (1 << 60), 0, "group 0 in the LR");
}

#[test]
fn host_api_rejects_bad_ids() {
    let mut g = v3(2, 32);
    assert_eq!(g.inject(0, 64), Err(VgicError::NoSuchIrq(64)));
    assert_eq!(g.inject(2, 20), Err(VgicError::NoSuchVcpu(2)));
    assert_eq!(g.set_level(0, u32::MAX, true), Err(VgicError::NoSuchIrq(u32::MAX)));
    assert!(g.inject(7, 40).is_ok(), "SPIs ignore the vCPU");
    assert!(g.flush_lrs(5, 4).lrs.is_empty());
    g.sync_lrs(5, &[1, 2, 3]);
    assert!(g.pending_for(5).is_empty());
    assert!(!g.has_pending(5));
}

// ---- robustness ----

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn check_invariants(g: &Vgic) {
    let cpu_mask = ((1u16 << g.nr_vcpus().min(8)) - 1) as u8;
    for vcpu in 0..g.nr_vcpus() {
        for intid in 0..(32 + g.nr_spis()) as u32 {
            let irq = g.irq_state(vcpu, intid).unwrap();
            assert_eq!(irq.priority & 7, 0);
            assert_eq!(irq.route & !0xFF_00FF_FFFF, 0);
            assert!(usize::from(irq.lr_vcpu) < g.nr_vcpus());
            if intid >= 32 && g.version() == GicVersion::V2 {
                assert_eq!(irq.targets & !cpu_mask, 0);
            }
            if intid < 16 {
                assert_eq!(irq.trigger, Trigger::Edge);
            } else if intid < 32 {
                assert_eq!(irq.trigger, Trigger::Level, "PPIs stay level");
            }
        }
    }
}

/// One random guest access (or LR round trip) on `g`, drawn from `rng`.
fn random_step(g: &mut Vgic, rng: &mut XorShift) {
    let (version, nr_vcpus) = (g.version(), g.nr_vcpus());
    let r = rng.next();
    let vcpu = (r % (nr_vcpus as u64 + 1)) as usize;
    let frame = match (r >> 8) % 3 {
        0 if version == GicVersion::V3 => Frame::Redist((r >> 12) as usize % (nr_vcpus + 1)),
        _ => Frame::Dist,
    };
    // Mostly in the interesting low part, sometimes anywhere.
    let offset = match (r >> 16) % 8 {
        0 => rng.next(),
        1 => 0x6000 + rng.next() % 0x2000,
        2 => 0x1_0000 + rng.next() % 0x1000,
        3 => 0xF000 + rng.next() % 0x1000,
        _ => rng.next() % 0x1000,
    };
    let offset = if (r >> 20) & 3 != 0 { offset & !3 } else { offset };
    let size = [1u8, 2, 4, 8, 4, 4, 0, 3][((r >> 24) % 8) as usize];
    let value = rng.next();
    match (r >> 28) % 10 {
        0..=3 => {
            let _ = g.mmio_write(vcpu, frame, offset, size, value);
        }
        4..=5 => {
            let _ = g.mmio_read(vcpu, frame, offset, size);
        }
        6 => {
            let _ = g.inject(vcpu, (value % 1100) as u32);
            let _ = g.set_level(vcpu, (value >> 16) as u32 % 1100, value & 1 != 0);
        }
        7 => {
            let _ = g.send_sgi(vcpu, value);
        }
        _ => {
            let nr_lrs = (value % 18) as usize;
            let plan = g.flush_lrs(vcpu, nr_lrs);
            assert!(plan.lrs.len() <= nr_lrs.min(MAX_LRS));
            // The guest leaves arbitrary states behind.
            let back: Vec<u64> = plan.lrs.iter().map(|&lr| lr ^ (rng.next() & (0xF << 60))).collect();
            if value & 0x100 != 0 {
                g.sync_lrs(vcpu, &back);
            }
        }
    }
    let _ = g.take_kicks();
}

const FUZZ_STEPS: usize = 20_000;

/// Random guest accesses on two VMs' vGICs in turn, as the hypervisor
/// interleaves its VMs: neither panics, the invariants hold, and the second
/// VM ends exactly as a replica given the same accesses alone (state shared
/// between vGICs, e.g. a static, would make them differ).
fn fuzz(version: GicVersion, nr_vcpus: usize, nr_spis: usize, seed: u64) {
    let mut rng = XorShift(seed);
    let mut g = Vgic::new(version, nr_vcpus, nr_spis).unwrap();
    let bystander = g.clone();
    let other_seed = seed.rotate_left(17) ^ 0x5555_5555_5555_5555;
    let mut other_rng = XorShift(other_seed);
    let mut other = Vgic::new(version, nr_vcpus, nr_spis).unwrap();
    for step in 0..FUZZ_STEPS {
        random_step(&mut g, &mut rng);
        random_step(&mut other, &mut other_rng);
        if step % 1000 == 0 {
            check_invariants(&g);
            check_invariants(&other);
        }
    }
    for vcpu in 0..nr_vcpus {
        let _ = g.flush_lrs(vcpu, 4);
        g.sync_lrs(vcpu, &[]);
    }
    check_invariants(&g);
    check_invariants(&other);
    assert!((0..nr_vcpus).all(|v| (0..32).all(|i| !g.irq_state(v, i).unwrap().in_lr)));
    let mut alone = Vgic::new(version, nr_vcpus, nr_spis).unwrap();
    let mut alone_rng = XorShift(other_seed);
    for _ in 0..FUZZ_STEPS {
        random_step(&mut alone, &mut alone_rng);
    }
    assert_eq!(format!("{other:?}"), format!("{alone:?}"), "the other VM's vGIC is what it would be alone");
    assert_eq!(format!("{bystander:?}"), format!("{:?}", Vgic::new(version, nr_vcpus, nr_spis).unwrap()));
}

#[test]
fn random_guest_accesses_never_panic_v3() {
    fuzz(GicVersion::V3, 3, 64, 0x9E37_79B9_7F4A_7C15);
    fuzz(GicVersion::V3, 64, 960, 0xDEAD_BEEF_1234_5678);
    fuzz(GicVersion::V3, 1, 0, 42);
}

#[test]
fn random_guest_accesses_never_panic_v2() {
    fuzz(GicVersion::V2, 8, 96, 0x0123_4567_89AB_CDEF);
    fuzz(GicVersion::V2, 1, 0, 7);
}

#[test]
fn vcpu_set_operations() {
    let mut s = VcpuSet::EMPTY;
    s.insert(0);
    s.insert(63);
    s.insert(64);
    assert!(s.contains(63) && !s.contains(64) && !s.contains(1000));
    assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63]);
}

/// A register read borrows the vGIC immutably, so under the run loop's
/// `CountedMutex` it is not a change and the next entry skips the scan of
/// every interrupt (issue 19: the scan made a GICD read cost ~4,500
/// instructions instead of ~500).
#[test]
fn register_reads_are_not_changes() {
    let m = crate::sync::CountedMutex::ranked(crate::sync::VGIC, v3(2, 32));
    let before = m.changes();
    for (frame, offset) in
        [(Frame::Dist, 0x4), (Frame::Dist, 0x100), (Frame::Redist(1), 0x8), (Frame::Redist(0), SGI + 0x200)]
    {
        m.lock().mmio_read(0, frame, offset, 4).unwrap();
    }
    assert_eq!(m.changes(), before, "reads");
    m.lock().mmio_write(0, Frame::Dist, 0x100, 4, 1).unwrap();
    assert_eq!(m.changes(), before + 1, "a write is one");
}

/// The words the fast path reads without the lock are the model's reads,
/// whatever the guest wrote to them and after a reset; every other read
/// is left to the model.
#[test]
fn fixed_regs_are_the_models_reads() {
    for (g, frames) in [
        (v2(3, 64), vec![Frame::Dist, Frame::Redist(0)]),
        (v3(1, 0), vec![Frame::Dist, Frame::Redist(0), Frame::Redist(1)]),
        (v3(20, MAX_SPIS), vec![Frame::Dist, Frame::Redist(0), Frame::Redist(19)]),
    ] {
        let mut g = g;
        for frame in frames {
            let fixed = g.fixed_regs(frame);
            let known = (0..16).step_by(4).filter(|&o| fixed.read(o, 4).is_some()).count();
            let expect = match frame {
                Frame::Dist => 3,
                Frame::Redist(n) if g.version() == GicVersion::V3 && n < g.nr_vcpus() => 4,
                Frame::Redist(_) => 0,
            };
            assert_eq!(known, expect, "{frame:?}");
            for round in 0..3 {
                for offset in 0..0x20 {
                    for size in [1, 2, 4, 8] {
                        if let Some(v) = fixed.read(offset, size) {
                            assert_eq!(g.mmio_read(0, frame, offset, size), Ok(v), "{frame:?} {offset:#x}/{size}");
                            assert!(size == 4 && offset.is_multiple_of(4) && offset < 16);
                        }
                    }
                }
                match round {
                    0 => {
                        for offset in (0..16).step_by(4) {
                            let _ = g.mmio_write(0, frame, offset, 4, u64::from(u32::MAX));
                        }
                    }
                    _ => g = g.reset_state(),
                }
                assert_eq!(g.fixed_regs(frame), fixed, "{frame:?} round {round}");
            }
        }
    }
}
