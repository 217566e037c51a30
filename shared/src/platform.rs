//! What a program learns about its machine from the flattened device tree.
//!
//! Boot ABI (design §4): the hypervisor and the guest kernel take the DTB
//! address in x0 and hard-code no platform address; everything they need is
//! in a [`Platform`], built by [`Platform::from_fdt`]. Fixed-capacity
//! containers keep this usable before any heap exists.
//!
//! Bindings followed: Linux `Documentation/devicetree/bindings/`
//! (`arm/cpus.yaml`, `interrupt-controller/arm,gic*.yaml`,
//! `timer/arm,arch_timer.yaml`, `serial/pl011.yaml`, `serial/8250.yaml`,
//! `serial/snps-dw-apb-uart.yaml`, `arm/psci.yaml`).

use heapless::{String, Vec};

/// Most memory regions kept.
pub const MAX_MEMORY: usize = 8;
/// Most reserved regions kept (`/memreserve/` plus `/reserved-memory`).
pub const MAX_RESERVED: usize = 16;
/// Most CPUs kept.
pub const MAX_CPUS: usize = 8;
/// Most redistributor regions kept (GICv3).
pub const MAX_GICR: usize = 4;

/// A physical address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }
    /// True when the two ranges share a byte.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.base < other.end() && other.base < self.end()
    }
}

/// The register interface of a UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PL011 (`arm,pl011`): QEMU virt.
    Pl011,
    /// 16550-compatible (`ns16550a`, `snps,dw-apb-uart`, `allwinner,sun50i-a64-uart`...),
    /// registers `1 << reg_shift` bytes apart, accessed `reg_io_width` bytes wide.
    Ns16550 { reg_shift: u8, reg_io_width: u8 },
}

/// The console UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    pub kind: UartKind,
    pub region: Region,
    /// Its interrupt, if the node has one.
    pub irq: Option<Irq>,
    /// Baud rate from `stdout-path` options ("serial2:1500000n8"), if given.
    pub baud: Option<u32>,
}

/// Interrupt type, as in the GIC binding's first cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqKind {
    /// Shared peripheral interrupt: INTID = 32 + number.
    Spi,
    /// Private peripheral interrupt: INTID = 16 + number.
    Ppi,
}

/// One interrupt specifier from a GIC-parented node (three cells).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irq {
    pub kind: IrqKind,
    /// The binding's number (not the INTID).
    pub number: u32,
    /// The binding's flags cell (trigger type in bits 0-3).
    pub flags: u32,
}

impl Irq {
    /// The GIC interrupt ID this specifier names.
    pub const fn intid(&self) -> u32 {
        match self.kind {
            IrqKind::Spi => 32 + self.number,
            IrqKind::Ppi => 16 + self.number,
        }
    }
}

/// GIC architecture version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`).
    V2,
    /// GICv3 (`arm,gic-v3`, GIC-500/600).
    V3,
}

/// The interrupt controller and all its register frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gic {
    pub version: GicVersion,
    /// Distributor.
    pub gicd: Region,
    /// Redistributor regions (GICv3 only).
    pub gicr: Vec<Region, MAX_GICR>,
    /// CPU interface (GICv2, or GICv3's legacy interface when present).
    pub gicc: Option<Region>,
    /// Virtual interface control (GICH).
    pub gich: Option<Region>,
    /// Virtual CPU interface (GICV).
    pub gicv: Option<Region>,
    /// The virtualization maintenance interrupt.
    pub maintenance_irq: Option<Irq>,
}

/// The architected generic timer's interrupts (`arm,armv8-timer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub secure_phys: Irq,
    pub phys: Irq,
    pub virt: Irq,
    /// EL2 physical timer; absent on some old DTBs.
    pub hyp_phys: Option<Irq>,
    /// `clock-frequency` override, if present (normally CNTFRQ_EL0 is right).
    pub frequency: Option<u32>,
}

/// How a secondary CPU is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    Psci,
    SpinTable {
        release_addr: u64,
    },
    /// No or unknown `enable-method` (e.g. the boot CPU of a uniprocessor DTB).
    None,
}

/// One `/cpus/cpu@N` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// MPIDR affinity fields as in the `reg` property (Aff3 in bits 32-39).
    pub mpidr: u64,
    pub enable_method: EnableMethod,
}

/// The PSCI conduit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    Smc,
    Hvc,
}

/// Most VMs described in `/chosen/hypervisor`.
pub const MAX_VMS: usize = 8;

/// At most this many `virtio,mmio` transports are kept (QEMU virt has 32).
pub const MAX_VIRTIO_MMIO: usize = 32;

/// A virtio-mmio transport (Linux `virtio/mmio.yaml`): its register block
/// and its interrupt. Which device sits behind it (if any) is read from
/// the registers, not the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmio {
    pub region: Region,
    /// The interrupt, when its parent is the GIC.
    pub irq: Option<Irq>,
}
/// Most vCPUs in one VM.
pub const MAX_VCPUS: usize = 8;
/// Most pass-through devices per VM.
pub const MAX_PASSTHROUGH: usize = 4;

/// Most virtio-blk disks per VM (`disk@N`), one virtio-mmio transport each.
pub const MAX_DISKS: usize = 4;

/// Most virtio-net cards per VM (`net@N`), one virtio-mmio transport each,
/// after the disks'.
pub const MAX_NETS: usize = crate::layout::VIRTIO_COUNT as usize - MAX_DISKS;

/// Longest switch name, in bytes.
pub const MAX_SWITCH_NAME: usize = 15;

/// A network card given to a VM (`net@N`, see `docs/vm-config.md`): a
/// virtio-net device on the hypervisor's switch `switch`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Net {
    /// `switch`: the name of the virtual switch the card is plugged into.
    pub switch: String<MAX_SWITCH_NAME>,
    /// `mac-address`: the card's Ethernet address (6 bytes).
    pub mac: [u8; 6],
}

/// The MAC address of VM `vm_name`'s network card `index` when the
/// configuration gives none: `52:54:xx:xx:xx:kk`, locally administered
/// and unicast (QEMU's prefix), `xx` a 24-bit FNV-1a hash of the name,
/// `kk` the index. Two VMs whose names hash alike get the same addresses:
/// the validation refuses the second, and `mac` settles it.
pub fn default_mac(vm_name: &str, index: usize) -> [u8; 6] {
    let h = vm_name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let h = (h >> 24) ^ (h & 0xff_ffff);
    [0x52, 0x54, (h >> 16) as u8, (h >> 8) as u8, h as u8, index as u8]
}

/// A disk image given to a VM (`disk@N`, see `docs/vm-config.md`): used in
/// place by the VM's virtio-blk device, so what the guest writes stays in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Disk {
    /// Where the image lies in host-physical memory.
    pub region: Region,
    /// `readonly`: the guest may not write it.
    pub readonly: bool,
}

/// A device given to a VM (`passthrough@N`, see `docs/vm-config.md`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Passthrough {
    /// Host-physical registers.
    pub region: Region,
    /// Guest-physical base (defaults to `region.base`).
    pub guest_base: u64,
    /// Physical INTIDs routed to the VM.
    pub interrupts: Vec<u32, 8>,
}

/// One `/chosen/hypervisor/vm@N` node: a VM as the boot loader described it.
/// Unchecked: `hypervisor::vmspec` validates it against the machine.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VmSpec {
    /// `vm-name`.
    pub name: String<16>,
    /// `memory`: guest-physical RAM base and size.
    pub memory: Region,
    /// `cpus`.
    pub vcpus: u32,
    /// `cpu-affinity`: physical CPU index per vCPU (empty: no pinning).
    pub affinity: Vec<u32, MAX_VCPUS>,
    /// `kernel`: where the image lies in host-physical memory.
    pub kernel: Region,
    /// `initrd`.
    pub initrd: Option<Region>,
    /// `bootargs`.
    pub bootargs: String<256>,
    /// `console` is not "none".
    pub console: bool,
    /// `passthrough@N` children.
    pub passthrough: Vec<Passthrough, MAX_PASSTHROUGH>,
    /// `disk@N` children, in order: disk k is virtio-mmio transport k.
    pub disks: Vec<Disk, MAX_DISKS>,
    /// `net@N` children, in order: card k is virtio-mmio transport
    /// `disks.len() + k`.
    pub nets: Vec<Net, MAX_NETS>,
    /// `sched-weight`: the VM's share of a contended physical CPU relative
    /// to other VMs' (0: absent, the default weight).
    pub weight: u32,
    /// `sched-cap`: at most this percentage of one physical CPU for all
    /// the VM's vCPUs together (0: absent, no cap).
    pub cap: u32,
}

/// Most `[[shm]]` regions (`layout::SHM_COUNT`).
pub const MAX_SHM: usize = crate::layout::SHM_COUNT as usize;
/// Most VMs sharing one region.
pub const MAX_SHM_PEERS: usize = MAX_VMS;
/// Largest shared-memory region (`layout::SHM_STRIDE`).
pub const MAX_SHM_SIZE: u64 = crate::layout::SHM_STRIDE;

/// A `/chosen/hypervisor/shm@N` node (`docs/vm-config.md`): a region of
/// hypervisor memory shared by the VMs named in `vms`. Unchecked:
/// `hypervisor::vmspec::validate_shms` checks it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ShmSpec {
    /// `shm-name`.
    pub name: String<16>,
    /// `size` in bytes.
    pub size: u64,
    /// `vms`: the names of the VMs that share it; peer k is `vms[k]`.
    pub vms: Vec<String<16>, MAX_SHM_PEERS>,
}

/// Most `[[switch]]` tables (switches with limits of their own).
pub const MAX_SWITCHES: usize = 4;

/// A `/chosen/hypervisor/switch@N` node (`docs/vm-config.md`, "Network
/// cards"): the limits of the virtual switch `name` for each of its
/// ports, where given (the others keep their defaults). Unchecked:
/// `hypervisor::switchconf::validate` checks it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SwitchSpec {
    /// `switch-name`: the name `[[vm.net]] switch` uses.
    pub name: String<MAX_SWITCH_NAME>,
    /// `rate`: bytes per second each port may send.
    pub rate: Option<u64>,
    /// `burst`: bytes each port may send at once.
    pub burst: Option<u64>,
    /// `backlog`: frames each port's queue holds.
    pub backlog: Option<u32>,
}

/// A guest's view of one shared-memory region: an `el2-hyp,shm` node of
/// the DTB the hypervisor wrote for it (docs/devices.md).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GuestShm {
    /// `label`: the region's name.
    pub name: String<16>,
    /// `reg`: where it is mapped (IPA) and its size.
    pub region: Region,
    /// `interrupts`: the doorbell (decoded like any device's).
    pub irq: Option<Irq>,
    /// `el2-hyp,region`: the region number for `SHM_DOORBELL`.
    pub index: u32,
    /// `el2-hyp,peer-id`: this VM's peer number.
    pub peer: u32,
    /// `el2-hyp,peers`: the VM names, by peer number.
    pub peers: Vec<String<16>, MAX_SHM_PEERS>,
}

/// Everything the boot code needs to know about the machine.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Platform {
    /// Root `model` property (or first `compatible`), truncated.
    pub model: String<64>,
    /// `/memory` `reg` ranges, in DTB order; zero-sized ones dropped.
    pub memory: Vec<Region, MAX_MEMORY>,
    /// `/memreserve/` entries and `/reserved-memory` children with `reg`.
    pub reserved: Vec<Region, MAX_RESERVED>,
    /// The console: `/chosen/stdout-path` (through `/aliases`), else the first
    /// enabled UART the parser knows.
    pub uart: Option<Uart>,
    pub gic: Option<Gic>,
    pub timer: Option<Timer>,
    pub cpus: Vec<Cpu, MAX_CPUS>,
    pub psci: Option<PsciMethod>,
    /// `/chosen` `linux,initrd-start` / `linux,initrd-end`.
    pub initrd: Option<Region>,
    /// `/chosen` `bootargs`, truncated to 256 bytes.
    pub bootargs: String<256>,
    /// `/chosen` `el2-hyp,vm-name`: the name our hypervisor gave this VM
    /// (empty on bare metal or under another hypervisor).
    pub vm_name: String<32>,
    /// `/chosen` `el2-hyp,resets`: how many times the hypervisor has reset
    /// this VM (PSCI SYSTEM_RESET) — the one fact that survives a reset.
    pub vm_resets: u32,
    /// `/chosen` `el2-hyp,selftest-lock-before-mmu` (empty): the hypervisor
    /// takes a lock before its MMU is on, to show that its check stops it
    /// (`ci/qemu-tests/tests/boot.rs`). No boot loader sets it.
    pub selftest_lock_before_mmu: bool,
    /// Enabled `virtio,mmio` nodes, in tree order.
    pub virtio_mmio: Vec<VirtioMmio, MAX_VIRTIO_MMIO>,
    /// VMs from `/chosen/hypervisor` (`docs/vm-config.md`). A malformed VM
    /// node does not fail the whole parse: it is recorded in `vm_errors`.
    pub vms: Vec<VmSpec, MAX_VMS>,
    /// VM nodes that could not be read: node name and the error.
    pub vm_errors: Vec<(String<32>, DtbError), MAX_VMS>,
    /// Shared-memory regions from `/chosen/hypervisor/shm@N`, in order
    /// (region i is the i-th node).
    pub shms: Vec<ShmSpec, MAX_SHM>,
    /// `shm@N` nodes that could not be read (or beyond [`MAX_SHM`]).
    pub shm_errors: Vec<(String<32>, DtbError), MAX_SHM>,
    /// `el2-hyp,shm` nodes: the regions this VM shares (a guest's DTB).
    pub guest_shm: Vec<GuestShm, MAX_SHM>,
    /// Switch limits from `/chosen/hypervisor/switch@N`, in order.
    pub switches: Vec<SwitchSpec, MAX_SWITCHES>,
    /// `switch@N` nodes that could not be read (or beyond [`MAX_SWITCHES`]).
    pub switch_errors: Vec<(String<32>, DtbError), MAX_SWITCHES>,
}

/// Why a DTB could not be turned into a [`Platform`]. Each names what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbError {
    /// No DTB at all (null pointer or empty slice).
    Missing,
    /// Header magic is not 0xd00dfeed; the value found is given.
    BadMagic(u32),
    /// The header or structure block is malformed (what fdt-rs reported).
    Malformed(&'static str),
    /// A node the boot code cannot do without is absent ("/memory", "/cpus").
    MissingNode(&'static str),
    /// A property is absent or has the wrong size; names node and property.
    BadProperty { node: &'static str, property: &'static str },
}

impl core::fmt::Display for DtbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Missing => write!(f, "no device tree was passed in x0"),
            Self::BadMagic(m) => write!(f, "device tree magic is {m:#010x}, expected 0xd00dfeed"),
            Self::Malformed(why) => write!(f, "device tree is malformed: {why}"),
            Self::MissingNode(n) => write!(f, "device tree has no {n} node"),
            Self::BadProperty { node, property } => {
                write!(f, "device tree node {node}: property {property} is missing or malformed")
            }
        }
    }
}

/// FDT header magic.
pub const FDT_MAGIC: u32 = 0xd00d_feed;

/// Reads the `totalsize` of a DTB from its header, checking the magic.
///
/// # Safety
/// `ptr` must point to at least 8 readable bytes.
// A named exception to the crate's `deny(unsafe_code)`: both kernels' entry
// code must learn a DTB's size from a bare pointer before it can make a
// slice of it; one audited copy of that read for the two of them.
#[allow(unsafe_code)]
pub unsafe fn fdt_total_size(ptr: *const u8) -> Result<usize, DtbError> {
    if ptr.is_null() {
        return Err(DtbError::Missing);
    }
    let mut hdr = [0u8; 8];
    // SAFETY: the caller guarantees 8 readable bytes at `ptr`.
    unsafe { core::ptr::copy_nonoverlapping(ptr, hdr.as_mut_ptr(), 8) };
    let magic = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    if magic != FDT_MAGIC {
        return Err(DtbError::BadMagic(magic));
    }
    Ok(u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize)
}

/// How [`find_device`] picks a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceMatch<'a> {
    /// The first node whose `compatible` list has this string.
    Compatible(&'a str),
    /// The node whose first `reg` entry starts at this CPU physical address.
    RegBase(u64),
}

/// A device node found by [`find_device`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeviceNode {
    /// `compatible`, in order (at most 4 strings of up to 48 bytes).
    pub compatible: Vec<String<48>, 4>,
    /// The first `reg` entry, translated to a CPU physical address.
    pub region: Region,
    /// `interrupts`, as raw cells (with a GIC parent: 3 per interrupt,
    /// type (0 SPI, 1 PPI), number, flags).
    pub interrupts: Vec<u32, 24>,
    /// The one-cell properties of [`DEVICE_U32_PROPS`] the node has, which
    /// a driver needs and a copy of the node can carry (unlike phandles).
    pub props: Vec<(&'static str, u32), 4>,
}

/// One-cell device properties [`find_device`] reports (generic serial
/// and clock bindings).
pub const DEVICE_U32_PROPS: [&str; 4] = ["reg-shift", "reg-io-width", "clock-frequency", "current-speed"];

/// Finds one device node in a DTB blob (outside `/chosen`), by compatible
/// string or by the base of its registers.
pub fn find_device(dtb: &[u8], m: DeviceMatch<'_>) -> Result<Option<DeviceNode>, DtbError> {
    parse::find_device(dtb, m)
}

impl Platform {
    /// Parses a whole DTB blob.
    pub fn from_fdt(dtb: &[u8]) -> Result<Platform, DtbError> {
        parse::parse(dtb)
    }

    /// The boot CPU's entry in [`Platform::cpus`] given its MPIDR (affinity bits only).
    pub fn cpu_index(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & 0xff_00ff_ffff;
        self.cpus.iter().position(|c| c.mpidr == aff)
    }
}

mod parse;
