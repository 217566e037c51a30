//! `Platform::from_fdt` against real DTBs: Debian's board DTBs, QEMU's
//! `virt` dumps and a hand-written `/chosen/hypervisor` tree (see
//! `fixtures/README.md`). Every value asserted was read from the DTB itself
//! (`dtc -I dtb -O dts`), not from a datasheet.

use shared::platform::*;

/// A fixture with the 4-byte alignment the parser requires.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

macro_rules! fixture {
    ($name:literal) => {{
        static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!("fixtures/", $name)));
        &BLOB.0
    }};
}

fn rockpro64() -> &'static [u8] {
    fixture!("rk3399-rockpro64.dtb")
}
fn pinebook_pro() -> &'static [u8] {
    fixture!("rk3399-pinebook-pro.dtb")
}
fn pine64_plus() -> &'static [u8] {
    fixture!("sun50i-a64-pine64-plus.dtb")
}
fn qemu_v3() -> &'static [u8] {
    fixture!("qemu-virt-gicv3.dtb")
}
fn qemu_v2() -> &'static [u8] {
    fixture!("qemu-virt-gicv2.dtb")
}
fn hypervisor_vms() -> &'static [u8] {
    fixture!("hypervisor-vms.dtb")
}

fn region(base: u64, size: u64) -> Region {
    Region { base, size }
}
fn ppi(number: u32, flags: u32) -> Irq {
    Irq { kind: IrqKind::Ppi, number, flags }
}
fn spi(number: u32, flags: u32) -> Irq {
    Irq { kind: IrqKind::Spi, number, flags }
}
fn psci_cpus(mpidrs: &[u64]) -> Vec<Cpu> {
    mpidrs.iter().map(|&mpidr| Cpu { mpidr, enable_method: EnableMethod::Psci }).collect()
}

/// RK3399 (RockPro64 and Pinebook Pro share the SoC part of the tree).
fn assert_rk3399(p: &Platform) {
    assert!(p.virtio_mmio.is_empty());
    // stdout-path = "serial2:1500000n8"; serial2 = "/serial@ff1a0000".
    assert_eq!(
        p.uart,
        Some(Uart {
            kind: UartKind::Ns16550 { reg_shift: 2, reg_io_width: 4 },
            region: region(0xff1a_0000, 0x100),
            irq: Some(spi(100, 4)),
            baud: Some(1_500_000),
        })
    );
    // GIC-500: #interrupt-cells = <4> (PPI partitions), one GICR region for
    // six CPUs, then the GICv2-compatible GICC, GICH, GICV frames.
    let gic = p.gic.as_ref().expect("gic");
    assert_eq!(gic.version, GicVersion::V3);
    assert_eq!(gic.gicd, region(0xfee0_0000, 0x1_0000));
    assert_eq!(gic.gicr.as_slice(), &[region(0xfef0_0000, 0xc_0000)]);
    assert_eq!(gic.gicc, Some(region(0xfff0_0000, 0x1_0000)));
    assert_eq!(gic.gich, Some(region(0xfff1_0000, 0x1_0000)));
    assert_eq!(gic.gicv, Some(region(0xfff2_0000, 0x1_0000)));
    assert_eq!(gic.maintenance_irq, Some(ppi(9, 4)));
    // IRQ_TYPE_LEVEL_LOW (8), no CPU mask on GICv3.
    assert_eq!(
        p.timer,
        Some(Timer {
            secure_phys: ppi(13, 8),
            phys: ppi(14, 8),
            virt: ppi(11, 8),
            hyp_phys: Some(ppi(10, 8)),
            frequency: None,
        })
    );
    assert_eq!(p.timer.unwrap().virt.intid(), 27);
    // /cpus #address-cells = <2>: four A53 (Aff0 0-3), two A72 (Aff1 = 1).
    assert_eq!(p.cpus.as_slice(), psci_cpus(&[0x0, 0x1, 0x2, 0x3, 0x100, 0x101]));
    assert_eq!(p.cpu_index(0x8000_0101), Some(5));
    assert_eq!(p.psci, Some(PsciMethod::Smc));
    // No /memory node and no reservations: U-Boot adds /memory at boot.
    assert!(p.memory.is_empty());
    assert!(p.reserved.is_empty());
    assert_eq!(p.initrd, None);
    assert_eq!(p.bootargs.as_str(), "");
    assert!(p.vms.is_empty() && p.vm_errors.is_empty());
}

#[test]
fn rk3399_rockpro64() {
    let p = Platform::from_fdt(rockpro64()).unwrap();
    assert_eq!(p.model.as_str(), "Pine64 RockPro64 v2.1");
    assert_rk3399(&p);
}

#[test]
fn rk3399_pinebook_pro() {
    let p = Platform::from_fdt(pinebook_pro()).unwrap();
    assert_eq!(p.model.as_str(), "Pine64 Pinebook Pro");
    assert_rk3399(&p);
}

#[test]
fn a64_pine64_plus() {
    let p = Platform::from_fdt(pine64_plus()).unwrap();
    assert_eq!(p.model.as_str(), "Pine64+");
    // stdout-path = "serial0:115200n8"; serial0 = "/soc/serial@1c28000",
    // translated through /soc's empty `ranges`.
    assert_eq!(
        p.uart,
        Some(Uart {
            kind: UartKind::Ns16550 { reg_shift: 2, reg_io_width: 4 },
            region: region(0x01c2_8000, 0x400),
            irq: Some(spi(0, 4)),
            baud: Some(115_200),
        })
    );
    // GIC-400: GICD, GICC (8 KiB), GICH, GICV; flags carry the CPU mask (0xf00).
    assert_eq!(
        p.gic,
        Some(Gic {
            version: GicVersion::V2,
            gicd: region(0x01c8_1000, 0x1000),
            gicr: Default::default(),
            gicc: Some(region(0x01c8_2000, 0x2000)),
            gich: Some(region(0x01c8_4000, 0x2000)),
            gicv: Some(region(0x01c8_6000, 0x2000)),
            maintenance_irq: Some(ppi(9, 0xf04)),
        })
    );
    assert_eq!(
        p.timer,
        Some(Timer {
            secure_phys: ppi(13, 0xf04),
            phys: ppi(14, 0xf04),
            virt: ppi(11, 0xf04),
            hyp_phys: Some(ppi(10, 0xf04)),
            frequency: None,
        })
    );
    assert_eq!(p.cpus.as_slice(), psci_cpus(&[0, 1, 2, 3]));
    assert_eq!(p.psci, Some(PsciMethod::Smc));
    // No /memory node: U-Boot adds it.
    assert!(p.memory.is_empty());
    assert!(p.reserved.is_empty());
    assert!(p.vms.is_empty() && p.vm_errors.is_empty());
}

/// What both QEMU `virt,virtualization=on -m 1G` dumps share.
fn assert_qemu_virt(p: &Platform) {
    assert_eq!(p.model.as_str(), "linux,dummy-virt");
    assert_eq!(p.memory.as_slice(), &[region(0x4000_0000, 0x4000_0000)]);
    assert!(p.reserved.is_empty());
    // stdout-path = "/pl011@9000000", no options.
    assert_eq!(
        p.uart,
        Some(Uart { kind: UartKind::Pl011, region: region(0x0900_0000, 0x1000), irq: Some(spi(1, 4)), baud: None })
    );
    // virtualization=on: QEMU emulates EL3, so PSCI is reached by SMC.
    assert_eq!(p.psci, Some(PsciMethod::Smc));
    assert_eq!(p.initrd, None);
    assert!(p.vms.is_empty() && p.vm_errors.is_empty());
    // 32 virtio-mmio transports of 0x200 bytes from 0xa000000, SPI 16 up,
    // edge-rising (QEMU's hw/arm/virt.c create_virtio_devices).
    assert_eq!(p.virtio_mmio.len(), 32);
    let mut bases: Vec<u64> = p.virtio_mmio.iter().map(|v| v.region.base).collect();
    bases.sort();
    assert_eq!(bases, (0..32).map(|n| 0x0a00_0000 + n * 0x200).collect::<Vec<_>>());
    for v in p.virtio_mmio.iter() {
        let n = ((v.region.base - 0x0a00_0000) / 0x200) as u32;
        assert_eq!(v.region.size, 0x200);
        assert_eq!(v.irq, Some(spi(16 + n, 1)), "transport {n}");
    }
}

#[test]
fn qemu_virt_gicv3_smp2() {
    let p = Platform::from_fdt(qemu_v3()).unwrap();
    assert_qemu_virt(&p);
    // QEMU's GICv3 node lists only GICD and one GICR region (the ITS is a child).
    assert_eq!(
        p.gic,
        Some(Gic {
            version: GicVersion::V3,
            gicd: region(0x0800_0000, 0x1_0000),
            gicr: heapless::Vec::from_slice(&[region(0x080a_0000, 0xf6_0000)]).unwrap(),
            gicc: None,
            gich: None,
            gicv: None,
            maintenance_irq: Some(ppi(9, 4)),
        })
    );
    assert_eq!(
        p.timer,
        Some(Timer {
            secure_phys: ppi(13, 4),
            phys: ppi(14, 4),
            virt: ppi(11, 4),
            hyp_phys: Some(ppi(10, 4)),
            frequency: None,
        })
    );
    assert_eq!(p.cpus.as_slice(), psci_cpus(&[0, 1]));
}

#[test]
fn qemu_virt_gicv2_smp4() {
    let p = Platform::from_fdt(qemu_v2()).unwrap();
    assert_qemu_virt(&p);
    assert_eq!(
        p.gic,
        Some(Gic {
            version: GicVersion::V2,
            gicd: region(0x0800_0000, 0x1_0000),
            gicr: Default::default(),
            gicc: Some(region(0x0801_0000, 0x1_0000)),
            gich: Some(region(0x0803_0000, 0x1_0000)),
            gicv: Some(region(0x0804_0000, 0x1_0000)),
            maintenance_irq: Some(ppi(9, 4)),
        })
    );
    // GICv2 PPI flags carry the CPU mask for four CPUs.
    assert_eq!(
        p.timer,
        Some(Timer {
            secure_phys: ppi(13, 0xf04),
            phys: ppi(14, 0xf04),
            virt: ppi(11, 0xf04),
            hyp_phys: Some(ppi(10, 0xf04)),
            frequency: None,
        })
    );
    assert_eq!(p.cpus.as_slice(), psci_cpus(&[0, 1, 2, 3]));
}

#[test]
fn hypervisor_vms_fixture() {
    let p = Platform::from_fdt(hypervisor_vms()).unwrap();
    assert_eq!(p.model.as_str(), "el2-hyp test machine");
    // The zero-sized middle entry of /memory's reg is dropped.
    assert_eq!(p.memory.as_slice(), &[region(0x4000_0000, 0x2000_0000), region(0x1_0000_0000, 0x1000_0000)]);
    // /memreserve/ first, then /reserved-memory children with reg (not the
    // size-only "cma" pool).
    assert_eq!(p.reserved.as_slice(), &[region(0x4800_0000, 0x20_0000), region(0x5e00_0000, 0x10_0000)]);
    assert_eq!(
        p.uart.map(|u| (u.kind, u.region, u.baud)),
        Some((UartKind::Pl011, region(0x0900_0000, 0x1000), Some(115_200)))
    );
    assert_eq!(p.psci, Some(PsciMethod::Hvc));
    assert_eq!(p.initrd, Some(region(0x4400_0000, 0x10_0000)));
    assert_eq!(p.bootargs.as_str(), "console=ttyAMA0 earlycon");
    assert_eq!(
        p.cpus.as_slice(),
        &[
            Cpu { mpidr: 0, enable_method: EnableMethod::Psci },
            Cpu { mpidr: 1, enable_method: EnableMethod::SpinTable { release_addr: 0x4000_00f8 } },
        ]
    );
    assert_eq!(p.timer.and_then(|t| t.frequency), Some(62_500_000));
    let gic = p.gic.unwrap();
    assert_eq!(gic.gicr.as_slice(), &[region(0x080a_0000, 0x10_0000), region(0x081a_0000, 0x10_0000)]);
    assert_eq!(gic.gicc, None);

    assert_eq!(p.vms.len(), 2);
    let alpha = &p.vms[0];
    assert_eq!(alpha.name.as_str(), "alpha");
    assert_eq!(alpha.memory, region(0x4000_0000, 0x400_0000));
    assert_eq!(alpha.vcpus, 2);
    assert_eq!(alpha.affinity.as_slice(), &[0, 1]);
    assert_eq!((alpha.weight, alpha.cap), (512, 150));
    assert_eq!(alpha.kernel, region(0x4800_0000, 0x20_0000));
    assert_eq!(alpha.initrd, Some(region(0x4900_0000, 0x10_0000)));
    assert_eq!(alpha.bootargs.as_str(), "hz=100");
    assert!(alpha.console);
    assert_eq!(alpha.passthrough.len(), 1);
    let pt = &alpha.passthrough[0];
    assert_eq!(pt.region, region(0x0904_0000, 0x1000));
    assert_eq!(pt.guest_base, 0x0905_0000);
    assert_eq!(pt.interrupts.as_slice(), &[40, 41]);

    let beta = &p.vms[1];
    assert_eq!(beta.name.as_str(), "beta");
    assert_eq!(beta.memory, region(0x4000_0000, 0x200_0000));
    assert_eq!(beta.vcpus, 1);
    assert!(beta.affinity.is_empty());
    assert_eq!((beta.weight, beta.cap), (0, 0));
    assert_eq!(beta.kernel, region(0x4a00_0000, 0x10_0000));
    assert_eq!(beta.initrd, None);
    assert_eq!(beta.bootargs.as_str(), "");
    assert!(!beta.console);
    assert!(beta.passthrough.is_empty());

    // vm@2's memory has three cells where four are due; it is reported, the
    // others still parse.
    assert_eq!(p.vm_errors.len(), 1);
    assert_eq!(p.vm_errors[0].0.as_str(), "vm@2");
    assert_eq!(p.vm_errors[0].1, DtbError::BadProperty { node: "/chosen/hypervisor/vm", property: "memory" });
}

/// A tiny xorshift64 PRNG, so the fuzz run repeats exactly.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Words that make interesting lengths, offsets and tokens.
const INTERESTING: [u32; 12] =
    [0, 1, 2, 3, 4, 9, 0x7fff_ffff, 0x8000_0000, 0xffff_fff0, 0xffff_fffc, 0xffff_ffff, 0x28];

/// Mutates and truncates valid DTBs many times: `from_fdt` must return
/// (Ok or Err) every time, never panic or read out of bounds.
/// `DTB_FUZZ_ROUNDS=N` runs longer.
#[test]
fn fuzz_mutated_dtbs_never_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut oks = 0;
    let mut buf = Box::new(Aligned([0u8; 70 * 1024]));
    let seeds = [qemu_v3(), qemu_v2(), hypervisor_vms(), pine64_plus()];
    let rounds = std::env::var("DTB_FUZZ_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(6000);
    for round in 0..rounds {
        let seed = seeds[round % seeds.len()];
        // The A64 tree is big: give it fewer rounds.
        if seed.len() > 16 * 1024 && round % 8 != 3 {
            continue;
        }
        let mut len = seed.len();
        buf.0[..len].copy_from_slice(seed);
        let b = &mut buf.0;
        for _ in 0..1 + rng.below(4) {
            match rng.below(6) {
                // Flip a few random bits anywhere.
                0 => {
                    let at = rng.below(len);
                    b[at] ^= 1 << rng.below(8);
                }
                // Overwrite an aligned word with an interesting value.
                1 => {
                    let at = rng.below(len / 4) * 4;
                    let w = INTERESTING[rng.below(INTERESTING.len())];
                    b[at..at + 4].copy_from_slice(&w.to_be_bytes());
                }
                // Damage a header field.
                2 => {
                    let at = 4 + rng.below(9) * 4;
                    let w = INTERESTING[rng.below(INTERESTING.len())] ^ (rng.next() as u32 & 0xff);
                    b[at..at + 4].copy_from_slice(&w.to_be_bytes());
                }
                // Truncate, keeping the header's totalsize.
                3 => len = rng.below(len + 1),
                // Truncate and make totalsize agree, to reach the structure walk.
                4 => {
                    len = 40 + rng.below(len.saturating_sub(40) + 1);
                    b[4..8].copy_from_slice(&(len as u32).to_be_bytes());
                }
                // Random byte somewhere in the first 64 KiB of structure.
                _ => {
                    let at = rng.below(len);
                    b[at] = rng.next() as u8;
                }
            }
        }
        if Platform::from_fdt(&b[..len.min(b.len())]).is_ok() {
            oks += 1;
        }
    }
    // Some mutations are harmless; most are caught. Either way, no panic.
    assert!(oks > 0);
}

#[test]
fn truncations_are_errors() {
    let dtb = qemu_v3();
    for len in (0..dtb.len()).step_by(7) {
        assert!(Platform::from_fdt(&dtb[..len]).is_err(), "length {len}");
    }
    assert_eq!(Platform::from_fdt(&[]), Err(DtbError::Missing));
}
