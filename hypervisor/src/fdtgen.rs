//! The device tree the hypervisor writes for each guest: its RAM, its
//! vCPUs (started with PSCI over `hvc`), the virtual GIC, the architected
//! timer, its emulated PL011, its virtio-mmio disks, its pass-through
//! devices and `/chosen`
//! (bootargs, initrd, stdout-path).
//!
//! The shape follows QEMU's `virt` machine (hw/arm/virt.c) so that stock
//! Linux and our guest kernel read it the same way; addresses come from
//! `shared::layout`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use shared::layout;
use shared::platform::{GicVersion, Region};
use vm_fdt::{Error as FdtError, FdtWriter};

/// What goes into a guest's DTB.
#[derive(Clone, Debug)]
pub struct GuestDtb<'a> {
    /// The VM's name, also given to the guest as `/chosen/el2-hyp,vm-name`.
    pub name: &'a str,
    /// Guest RAM (IPA).
    pub ram: Region,
    pub vcpus: u32,
    pub gic: GicVersion,
    /// `/chosen/bootargs`.
    pub bootargs: &'a str,
    /// Initrd location (IPA), if any.
    pub initrd: Option<Region>,
    /// Whether the VM has the emulated PL011.
    pub console: bool,
    /// Pass-through devices.
    pub passthrough: Vec<GuestDevice>,
    /// How many virtio-mmio transports (disks) the VM has: transport k at
    /// `layout::VIRTIO_BASE + k * VIRTIO_STRIDE`, SPI `VIRTIO_SPI + k`.
    pub virtio: usize,
    /// How many times the VM has been reset (`/chosen/el2-hyp,resets`).
    pub resets: u32,
    /// The shared-memory regions it is a peer of (`shm`).
    pub shm: Vec<GuestShm>,
}

/// A shared-memory region as a peer sees it (docs/devices.md, "Shared
/// memory and doorbell"): an `el2-hyp,shm` node at `shm::ipa(region)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestShm {
    /// Its number in the configuration (the hypercall's x1).
    pub region: usize,
    pub size: u64,
    /// Its name (`label`).
    pub name: String,
    /// This VM's peer number (`el2-hyp,peer-id`, the hypercall's x2 for it).
    pub peer: usize,
    /// Every peer's VM name, by peer number (`el2-hyp,peers`).
    pub peers: Vec<String>,
}

/// A pass-through device as the guest sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestDevice {
    /// Guest-physical base and size of its registers.
    pub base: u64,
    pub size: u64,
    /// `compatible`, from the machine's node for the device; empty gives
    /// `el2-hyp,passthrough` (a device the machine's DTB does not describe).
    pub compatible: Vec<String>,
    /// SPIs as (INTID, GIC binding flags).
    pub interrupts: Vec<(u32, u32)>,
    /// One-cell properties copied from the machine's node (`reg-shift`, ...).
    pub props: Vec<(&'static str, u32)>,
}

impl GuestDevice {
    /// An AMBA PrimeCell (PL011, PL031, ...): Linux's AMBA bus wants its
    /// `apb_pclk` clock.
    fn primecell(&self) -> bool {
        self.compatible.iter().any(|c| c == "arm,primecell")
    }

    /// The node name: the generic part of the first compatible ("pl031"),
    /// as in the machine's DTB.
    fn node_name(&self) -> String {
        let name = self.compatible.first().map_or("passthrough", |c| c.rsplit(',').next().unwrap_or(c));
        format!("{name}@{:x}", self.base)
    }
}

const PHANDLE_GIC: u32 = 1;
const PHANDLE_CLK: u32 = 2;
/// GIC binding: interrupt type cells.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
const IRQ_TYPE_EDGE_RISING: u32 = 1;

fn cells(values: &[u64]) -> Vec<u32> {
    values.iter().flat_map(|v| [(v >> 32) as u32, *v as u32]).collect()
}

/// Builds the DTB blob.
pub fn build(cfg: &GuestDtb) -> Result<Vec<u8>, FdtError> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_string("model", "el2-hyp virtual machine")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_u32("interrupt-parent", PHANDLE_GIC)?;

    let uart_path = format!("/pl011@{:x}", layout::UART_BASE);
    let chosen = w.begin_node("chosen")?;
    w.property_string("bootargs", cfg.bootargs)?;
    w.property_string("el2-hyp,vm-name", cfg.name)?;
    w.property_u32("el2-hyp,resets", cfg.resets)?;
    if cfg.console {
        w.property_string("stdout-path", &uart_path)?;
    }
    if let Some(rd) = cfg.initrd {
        w.property_u64("linux,initrd-start", rd.base)?;
        w.property_u64("linux,initrd-end", rd.end())?;
    }
    w.end_node(chosen)?;

    let mem = w.begin_node(&format!("memory@{:x}", cfg.ram.base))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u32("reg", &cells(&[cfg.ram.base, cfg.ram.size]))?;
    w.end_node(mem)?;

    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for i in 0..cfg.vcpus {
        let cpu = w.begin_node(&format!("cpu@{i}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "arm,armv8")?;
        w.property_u32("reg", i)?;
        w.property_string("enable-method", "psci")?;
        w.end_node(cpu)?;
    }
    w.end_node(cpus)?;

    let psci = w.begin_node("psci")?;
    w.property_string_list("compatible", alloc::vec![String::from("arm,psci-1.0"), String::from("arm,psci-0.2")])?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;

    // PPI flags: GICv2 bindings also carry a CPU mask in bits [15:8].
    let ppi_flags = match cfg.gic {
        GicVersion::V2 => IRQ_TYPE_LEVEL_HIGH | ((((1u32 << cfg.vcpus.min(8)) - 1) & 0xff) << 8),
        GicVersion::V3 => IRQ_TYPE_LEVEL_HIGH,
    };
    let gic = w.begin_node(&format!("intc@{:x}", layout::GICD_BASE))?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_null("interrupt-controller")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    match cfg.gic {
        GicVersion::V3 => {
            w.property_string("compatible", "arm,gic-v3")?;
            w.property_u32("#redistributor-regions", 1)?;
            let gicr_size = layout::GICR_STRIDE * cfg.vcpus as u64;
            w.property_array_u32("reg", &cells(&[layout::GICD_BASE, layout::GICD_SIZE, layout::GICR_BASE, gicr_size]))?;
        }
        GicVersion::V2 => {
            w.property_string("compatible", "arm,cortex-a15-gic")?;
            w.property_array_u32(
                "reg",
                &cells(&[layout::GICD_BASE, layout::GICD_SIZE, layout::GICC_BASE, layout::GICC_SIZE]),
            )?;
        }
    }
    w.property_u32("phandle", PHANDLE_GIC)?;
    w.end_node(gic)?;

    let timer = w.begin_node("timer")?;
    w.property_string("compatible", "arm,armv8-timer")?;
    let mut irqs = Vec::new();
    for ppi in layout::TIMER_PPIS {
        irqs.extend_from_slice(&[GIC_PPI, ppi, ppi_flags]);
    }
    w.property_array_u32("interrupts", &irqs)?;
    w.property_null("always-on")?;
    w.end_node(timer)?;

    if cfg.console || cfg.passthrough.iter().any(GuestDevice::primecell) {
        let clk = w.begin_node("apb-pclk")?;
        w.property_string("compatible", "fixed-clock")?;
        w.property_u32("#clock-cells", 0)?;
        w.property_u32("clock-frequency", 24_000_000)?;
        w.property_string("clock-output-names", "clk24mhz")?;
        w.property_u32("phandle", PHANDLE_CLK)?;
        w.end_node(clk)?;
    }

    if cfg.console {
        let uart = w.begin_node(&uart_path[1..])?;
        w.property_string_list("compatible", alloc::vec![String::from("arm,pl011"), String::from("arm,primecell")])?;
        w.property_array_u32("reg", &cells(&[layout::UART_BASE, layout::UART_SIZE]))?;
        w.property_array_u32("interrupts", &[GIC_SPI, layout::UART_SPI, IRQ_TYPE_LEVEL_HIGH])?;
        w.property_array_u32("clocks", &[PHANDLE_CLK, PHANDLE_CLK])?;
        w.property_string_list("clock-names", alloc::vec![String::from("uartclk"), String::from("apb_pclk")])?;
        w.end_node(uart)?;
    }

    // As QEMU `virt` describes its transports (create_virtio_devices):
    // lowest address first, so Linux names disk 0 vda.
    for k in 0..cfg.virtio {
        let base = layout::VIRTIO_BASE + k as u64 * layout::VIRTIO_STRIDE;
        let dev = w.begin_node(&format!("virtio_mmio@{base:x}"))?;
        w.property_null("dma-coherent")?;
        w.property_array_u32("interrupts", &[GIC_SPI, layout::VIRTIO_SPI + k as u32, IRQ_TYPE_EDGE_RISING])?;
        w.property_array_u32("reg", &cells(&[base, layout::VIRTIO_STRIDE]))?;
        w.property_string("compatible", "virtio,mmio")?;
        w.end_node(dev)?;
    }

    for s in &cfg.shm {
        let base = crate::shm::ipa(s.region);
        let node = w.begin_node(&format!("shm@{base:x}"))?;
        w.property_string("compatible", "el2-hyp,shm")?;
        w.property_array_u32("reg", &cells(&[base, s.size]))?;
        let spi = crate::shm::intid(s.region) - 32;
        w.property_array_u32("interrupts", &[GIC_SPI, spi, IRQ_TYPE_EDGE_RISING])?;
        w.property_string("label", &s.name)?;
        w.property_u32("el2-hyp,region", s.region as u32)?;
        w.property_u32("el2-hyp,peer-id", s.peer as u32)?;
        w.property_string_list("el2-hyp,peers", s.peers.clone())?;
        w.end_node(node)?;
    }

    for d in &cfg.passthrough {
        let dev = w.begin_node(&d.node_name())?;
        if d.compatible.is_empty() {
            w.property_string("compatible", "el2-hyp,passthrough")?;
        } else {
            w.property_string_list("compatible", d.compatible.clone())?;
        }
        w.property_array_u32("reg", &cells(&[d.base, d.size]))?;
        let mut irqs = Vec::new();
        for &(intid, flags) in &d.interrupts {
            irqs.extend_from_slice(&[GIC_SPI, intid.saturating_sub(32), flags]);
        }
        if !irqs.is_empty() {
            w.property_array_u32("interrupts", &irqs)?;
        }
        for &(name, value) in &d.props {
            w.property_u32(name, value)?;
        }
        if d.primecell() {
            w.property_array_u32("clocks", &[PHANDLE_CLK])?;
            w.property_string("clock-names", "apb_pclk")?;
        }
        w.end_node(dev)?;
    }

    w.end_node(root)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::platform::{Platform, PsciMethod, UartKind};

    fn cfg(gic: GicVersion, vcpus: u32) -> GuestDtb<'static> {
        GuestDtb {
            name: "alpha",
            ram: Region { base: 0x4000_0000, size: 0x400_0000 },
            vcpus,
            gic,
            bootargs: "hz=100",
            initrd: Some(Region { base: 0x4300_0000, size: 0x1000 }),
            console: true,
            passthrough: Vec::new(),
            virtio: 0,
            resets: 2,
            shm: Vec::new(),
        }
    }

    #[test]
    fn guest_dtb_reads_back_with_the_platform_parser() {
        for (gic, n) in [(GicVersion::V3, 2), (GicVersion::V2, 4)] {
            let blob = build(&cfg(gic, n)).unwrap();
            let p = Platform::from_fdt(&blob).unwrap_or_else(|e| panic!("GIC {gic:?}, {n} CPUs: {e}"));
            assert_eq!(p.memory.as_slice(), &[Region { base: 0x4000_0000, size: 0x400_0000 }]);
            assert_eq!(p.cpus.len(), n as usize);
            assert_eq!(p.psci, Some(PsciMethod::Hvc));
            let g = p.gic.unwrap();
            assert_eq!(g.version, gic);
            assert_eq!(g.gicd.base, layout::GICD_BASE);
            let u = p.uart.unwrap();
            assert_eq!(u.kind, UartKind::Pl011);
            assert_eq!(u.region.base, layout::UART_BASE);
            assert_eq!(p.initrd, Some(Region { base: 0x4300_0000, size: 0x1000 }));
            assert_eq!(p.bootargs.as_str(), "hz=100");
            assert_eq!(p.vm_resets, 2);
        }
    }

    #[test]
    fn passthrough_devices_read_back_as_the_machine_described_them() {
        use shared::platform::{DeviceMatch, find_device};
        let mut c = cfg(GicVersion::V3, 1);
        c.console = false;
        c.passthrough = alloc::vec![
            GuestDevice {
                base: 0x0901_0000,
                size: 0x1000,
                compatible: alloc::vec![String::from("arm,pl031"), String::from("arm,primecell")],
                interrupts: alloc::vec![(34, 4)],
                props: Vec::new(),
            },
            GuestDevice {
                base: 0x0a00_0000,
                size: 0x1000,
                compatible: alloc::vec![String::from("snps,dw-apb-uart")],
                interrupts: alloc::vec![(36, 4), (37, 1)],
                props: alloc::vec![("reg-shift", 2), ("reg-io-width", 4)],
            },
            GuestDevice { base: 0x0b00_0000, size: 0x2000, ..Default::default() },
        ];
        let blob = build(&c).unwrap();
        // The guest finds the RTC as it would on the machine itself.
        let rtc = find_device(&blob, DeviceMatch::Compatible("arm,pl031")).unwrap().unwrap();
        assert_eq!(rtc.region, Region { base: 0x0901_0000, size: 0x1000 });
        assert_eq!(rtc.interrupts.as_slice(), &[GIC_SPI, 2, IRQ_TYPE_LEVEL_HIGH]);
        let uart = find_device(&blob, DeviceMatch::RegBase(0x0a00_0000)).unwrap().unwrap();
        assert_eq!(uart.compatible[0].as_str(), "snps,dw-apb-uart");
        assert_eq!(uart.interrupts.as_slice(), &[0, 4, 4, 0, 5, 1]);
        assert_eq!(uart.props.as_slice(), &[("reg-shift", 2), ("reg-io-width", 4)]);
        let anon = find_device(&blob, DeviceMatch::Compatible("el2-hyp,passthrough")).unwrap().unwrap();
        assert_eq!(anon.region, Region { base: 0x0b00_0000, size: 0x2000 });
        assert!(anon.interrupts.is_empty());
        // Without a console the PL031 still gets its apb_pclk (AMBA bus).
        assert!(Platform::from_fdt(&blob).is_ok());
        let text = String::from_utf8_lossy(&blob);
        assert!(text.contains("pl031@9010000") && text.contains("apb-pclk") && text.contains("dw-apb-uart@a000000"));
    }

    #[test]
    fn virtio_transports_are_where_qemu_virt_puts_them() {
        use shared::platform::{DeviceMatch, find_device};
        let mut c = cfg(GicVersion::V3, 1);
        c.virtio = 2;
        let blob = build(&c).unwrap();
        let first = find_device(&blob, DeviceMatch::Compatible("virtio,mmio")).unwrap().unwrap();
        assert_eq!(first.region, Region { base: 0x0a00_0000, size: 0x200 });
        assert_eq!(first.interrupts.as_slice(), &[GIC_SPI, 16, IRQ_TYPE_EDGE_RISING]);
        let second = find_device(&blob, DeviceMatch::RegBase(0x0a00_0200)).unwrap().unwrap();
        assert_eq!(second.interrupts.as_slice(), &[GIC_SPI, 17, IRQ_TYPE_EDGE_RISING]);
        assert!(String::from_utf8_lossy(&blob).contains("dma-coherent"));
        assert!(find_device(&blob, DeviceMatch::RegBase(0x0a00_0400)).unwrap().is_none());
    }

    #[test]
    fn shm_nodes_read_back_with_the_guest_parser() {
        let mut c = cfg(GicVersion::V3, 1);
        c.shm = alloc::vec![GuestShm {
            region: 1,
            size: 0x1_0000,
            name: String::from("ring"),
            peer: 1,
            peers: alloc::vec![String::from("a"), String::from("b")],
        }];
        let blob = build(&c).unwrap();
        let p = Platform::from_fdt(&blob).unwrap();
        assert_eq!(p.guest_shm.len(), 1);
        let s = &p.guest_shm[0];
        assert_eq!(s.region, Region { base: 0x1100_0000, size: 0x1_0000 });
        assert_eq!((s.index, s.peer, s.name.as_str()), (1, 1, "ring"));
        assert_eq!(s.peers.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let irq = s.irq.unwrap();
        assert_eq!((irq.intid(), irq.flags), (57, IRQ_TYPE_EDGE_RISING));
        // Without regions, no node.
        assert!(Platform::from_fdt(&build(&cfg(GicVersion::V3, 1)).unwrap()).unwrap().guest_shm.is_empty());
    }
}
