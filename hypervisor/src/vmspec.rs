//! Validation of the VMs described in `/chosen/hypervisor` (`docs/vm-config.md`).
//!
//! Pure: no hardware, no `std`. The hypervisor runs [`validate`] on the
//! [`VmSpec`]s the DTB parser produced, and the host tool `vmconf` runs the
//! same code on the VMs it is about to describe, so a bad configuration is
//! caught before boot with the same message.
//!
//! VMs are checked in order. Checks against other VMs (unique name, devices,
//! interrupts, the RAM budget) only count earlier VMs that passed, so a VM
//! that is refused never takes anything away from the ones after it, and
//! the VM that tipped the RAM over is the one reported.

use alloc::vec::Vec;
use core::fmt;

use shared::layout;
use shared::platform::{MAX_VCPUS, Region, VmSpec};

/// Bytes per disk sector (virtio 1.2 §5.2.4): a disk image is whole sectors.
pub const SECTOR: u64 = 512;

/// Granule of guest RAM: VM memory is mapped and accounted in 2 MiB blocks.
pub const RAM_GRANULE: u64 = 2 << 20;
/// Granule of pass-through device registers.
pub const PAGE: u64 = 4 << 10;
/// Longest VM name.
pub const MAX_NAME: usize = 15;
/// First shared peripheral interrupt (SPI) INTID.
pub const SPI_FIRST: u32 = 32;
/// One past the last SPI INTID (1020-1023 are special).
pub const SPI_END: u32 = 1020;

/// A guest-physical window the hypervisor emulates or maps in every VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Short name used in messages ("GICD", "UART", ...).
    pub name: &'static str,
    pub region: Region,
}

/// What the validator needs to know about the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineFacts {
    /// Host RAM (the DTB's `/memory`).
    pub ram: Vec<Region>,
    /// Host memory and devices the hypervisor keeps: its image, heap, the DTB,
    /// `/memreserve/`, the console UART and GIC frames. No VM may get these.
    pub reserved: Vec<Region>,
    /// INTIDs the hypervisor keeps (e.g. its console UART's SPI).
    pub reserved_intids: Vec<u32>,
    /// Number of physical CPUs.
    pub nr_pcpus: u32,
    /// Guest-physical address size (stage-2 input size), in bits.
    pub ipa_bits: u32,
    /// Guest-physical windows every VM has (GIC, UART): no RAM or device may overlap.
    pub windows: Vec<Window>,
}

impl MachineFacts {
    /// Facts with the guest windows of [`layout_windows`] and nothing reserved.
    pub fn new(ram: Vec<Region>, nr_pcpus: u32, ipa_bits: u32) -> Self {
        MachineFacts {
            ram,
            reserved: Vec::new(),
            reserved_intids: Vec::new(),
            nr_pcpus,
            ipa_bits,
            windows: layout_windows(),
        }
    }
}

/// The guest-physical device windows of `shared::layout`, sized for
/// [`MAX_VCPUS`] redistributors.
pub fn layout_windows() -> Vec<Window> {
    let w = |name, base, size| Window { name, region: Region { base, size } };
    alloc::vec![
        w("GICD", layout::GICD_BASE, layout::GICD_SIZE),
        w("GICC", layout::GICC_BASE, layout::GICC_SIZE),
        w("GICR", layout::GICR_BASE, layout::GICR_STRIDE * MAX_VCPUS as u64),
        w("UART", layout::UART_BASE, layout::UART_SIZE),
        w("PVTIME", layout::PVTIME_BASE, layout::PVTIME_SIZE),
        w("VIRTIO", layout::VIRTIO_BASE, layout::VIRTIO_STRIDE * layout::VIRTIO_COUNT),
        w("SHM", layout::SHM_BASE, layout::SHM_STRIDE * layout::SHM_COUNT),
    ]
}

/// The largest scheduler weight a VM may have (Xen's; `vsched`).
pub const MAX_WEIGHT: u32 = 65535;

/// Which part of a VM description is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Name,
    /// RAM size.
    Memory,
    /// Guest-physical RAM base.
    IpaBase,
    Vcpus,
    Affinity,
    /// The scheduler weight.
    Weight,
    /// The scheduler cap.
    Cap,
    Kernel,
    Initrd,
    /// `passthrough[i]` host registers.
    PassthroughReg(usize),
    /// `passthrough[i]` guest-physical base.
    PassthroughGuestReg(usize),
    /// `passthrough[i]` interrupts.
    PassthroughInterrupts(usize),
    /// `disk[i]`'s image.
    Disk(usize),
    /// `net[i]`'s switch.
    NetSwitch(usize),
    /// `net[i]`'s MAC address.
    NetMac(usize),
}

/// One of a VM's images in host memory, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image {
    Kernel,
    Initrd,
    Disk(usize),
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel => f.write_str("kernel"),
            Self::Initrd => f.write_str("initrd"),
            Self::Disk(i) => write!(f, "disk[{i}]"),
        }
    }
}

impl Field {
    /// The device-tree property name (`docs/vm-config.md`).
    pub fn dt_name(&self) -> FieldName {
        FieldName { field: *self, toml: false }
    }
    /// The TOML key name (`docs/vm-config.md`).
    pub fn toml_name(&self) -> FieldName {
        FieldName { field: *self, toml: true }
    }
}

/// A [`Field`] spelled as in the device tree or in the TOML file.
pub struct FieldName {
    field: Field,
    toml: bool,
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.toml;
        match self.field {
            Field::Name => f.write_str(if t { "name" } else { "vm-name" }),
            Field::Memory => f.write_str("memory"),
            Field::IpaBase => f.write_str(if t { "ipa_base" } else { "memory" }),
            Field::Vcpus => f.write_str(if t { "vcpus" } else { "cpus" }),
            Field::Affinity => f.write_str(if t { "pin" } else { "cpu-affinity" }),
            Field::Weight => f.write_str(if t { "weight" } else { "sched-weight" }),
            Field::Cap => f.write_str(if t { "cap" } else { "sched-cap" }),
            Field::Kernel => f.write_str("kernel"),
            Field::Initrd => f.write_str("initrd"),
            Field::PassthroughReg(i) => write!(f, "passthrough[{i}].reg"),
            Field::PassthroughGuestReg(i) => {
                write!(f, "passthrough[{i}].{}", if t { "guest_reg" } else { "guest-reg" })
            }
            Field::PassthroughInterrupts(i) => write!(f, "passthrough[{i}].interrupts"),
            Field::Disk(i) => write!(f, "disk[{i}].{}", if t { "image" } else { "reg" }),
            Field::NetSwitch(i) => write!(f, "net[{i}].switch"),
            Field::NetMac(i) => write!(f, "net[{i}].{}", if t { "mac" } else { "mac-address" }),
        }
    }
}

/// What is wrong with a field. Numbers are printed in hex where they are addresses or sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    NameEmpty,
    NameTooLong(usize),
    NameBadChar(char),
    /// Same name as the earlier VM with this index.
    NameTaken(usize),
    SizeZero,
    /// Size is not a multiple of the given granule.
    SizeNotMultiple {
        size: u64,
        granule: u64,
    },
    /// Base is not aligned to the given granule.
    BaseNotAligned {
        base: u64,
        granule: u64,
    },
    /// The range ends above the guest-physical address space.
    AboveIpaSpace {
        end: u64,
        ipa_bits: u32,
    },
    /// The range overlaps a guest device window.
    OverlapsWindow {
        region: Region,
        window: Window,
    },
    /// Not enough RAM left for this VM, after the earlier VMs.
    NotEnoughRam {
        size: u64,
        left: u64,
    },
    VcpusOutOfRange(u32),
    AffinityLength {
        len: usize,
        vcpus: u32,
    },
    NoSuchCpu {
        cpu: u32,
        nr_pcpus: u32,
    },
    /// A scheduler weight outside 1..=[`MAX_WEIGHT`].
    WeightOutOfRange(u32),
    /// A cap outside 1..=100 × vCPUs percent.
    CapOutOfRange {
        cap: u32,
        vcpus: u32,
    },
    /// A host range lies (partly) outside host RAM.
    OutsideRam(Region),
    /// A host range overlaps memory or a device the hypervisor keeps.
    OverlapsReserved {
        region: Region,
        reserved: Region,
    },
    /// The initrd overlaps the kernel image.
    OverlapsKernel(Region),
    /// A device's host registers overlap host RAM.
    OverlapsRam(Region),
    /// A device's guest range overlaps the VM's own RAM.
    OverlapsGuestRam {
        region: Region,
        ram: Region,
    },
    /// Two devices of one VM at overlapping guest addresses (index of the other device).
    OverlapsDevice {
        region: Region,
        other: usize,
    },
    /// A device's host registers were already given to a VM (index of that VM).
    DeviceTaken {
        region: Region,
        vm: usize,
    },
    /// An INTID that is not an SPI.
    NotSpi(u32),
    /// An INTID the hypervisor keeps.
    IntidReserved(u32),
    /// The INTID of the VM's own emulated UART.
    IntidUart(u32),
    /// An INTID given twice in the same VM.
    IntidRepeated(u32),
    /// base + size does not fit in 64 bits.
    Overflow(Region),
    /// An INTID already routed to a VM (index of that VM).
    IntidTaken {
        intid: u32,
        vm: usize,
    },
    /// The INTID of the VM's own virtio disk `disk`.
    IntidDisk {
        intid: u32,
        disk: usize,
    },
    /// The INTID of the VM's own virtio network card `net`.
    IntidNet {
        intid: u32,
        net: usize,
    },
    /// A switch name that is empty or has a character other than a-z,
    /// 0-9, `-` and `_`.
    SwitchName,
    /// A MAC address that is a group address or all zeros.
    MacNotUnicast([u8; 6]),
    /// A MAC address already on `net` of VM `vm` (this VM's too): on one
    /// switch two cards with one address would steal each other's frames,
    /// so no two cards share one at all.
    MacTaken {
        mac: [u8; 6],
        vm: usize,
        net: usize,
    },
    /// A disk's image shares host memory with another image (`image` of
    /// VM `vm`): the device uses it in place (the guest writes it), so it
    /// must be the only user of its bytes.
    DiskShared {
        region: Region,
        vm: usize,
        image: Image,
    },
}

/// A byte count as a person writes it: `63 MiB`, `4 KiB`, `1000 bytes`
/// (the largest binary unit that divides it).
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n != 0 && n.is_multiple_of(1 << shift) {
                return write!(f, "{} {unit}", n >> shift);
            }
        }
        write!(f, "{n} bytes")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NameEmpty => write!(f, "is empty"),
            Self::NameTooLong(n) => write!(f, "is {n} characters long, at most {MAX_NAME} allowed"),
            Self::NameBadChar(c) => write!(f, "{c:?} is not allowed (use a-z, 0-9, '_', '-')"),
            Self::NameTaken(vm) => write!(f, "is already the name of vm[{vm}]"),
            Self::SizeZero => write!(f, "size is zero"),
            Self::SizeNotMultiple { size, granule } => {
                write!(f, "{} is not a multiple of {}", Size(*size), Size(*granule))
            }
            Self::BaseNotAligned { base, granule } => {
                write!(f, "base {base:#x} is not aligned to {granule:#x}")
            }
            Self::AboveIpaSpace { end, ipa_bits } => {
                write!(f, "ends at {end:#x}, above the {ipa_bits}-bit guest address space")
            }
            Self::OverlapsWindow { region, window } => {
                write!(f, "{} overlaps the guest {} window {}", R(region), window.name, R(&window.region))
            }
            Self::NotEnoughRam { size, left } => {
                write!(f, "{} is more than the {} of RAM left", Size(*size), Size(*left))
            }
            Self::VcpusOutOfRange(n) => write!(f, "{n} is not in 1..={MAX_VCPUS}"),
            Self::AffinityLength { len, vcpus } => {
                write!(f, "has {len} entries for {vcpus} vCPUs")
            }
            Self::NoSuchCpu { cpu, nr_pcpus } => {
                write!(f, "CPU {cpu} does not exist (the machine has {nr_pcpus})")
            }
            Self::WeightOutOfRange(w) => write!(f, "{w} is not in 1..={}", MAX_WEIGHT),
            Self::CapOutOfRange { cap, vcpus } => {
                write!(f, "{cap}% is not in 1..={}% (100% per vCPU)", 100 * vcpus)
            }
            Self::OutsideRam(r) => write!(f, "{} is not inside host RAM", R(r)),
            Self::OverlapsReserved { region, reserved } => {
                write!(f, "{} overlaps {} which the hypervisor keeps", R(region), R(reserved))
            }
            Self::OverlapsKernel(r) => write!(f, "{} overlaps the kernel image", R(r)),
            Self::OverlapsRam(r) => write!(f, "{} overlaps host RAM", R(r)),
            Self::OverlapsGuestRam { region, ram } => {
                write!(f, "{} overlaps the VM's RAM {}", R(region), R(ram))
            }
            Self::OverlapsDevice { region, other } => {
                write!(f, "{} overlaps passthrough[{other}]", R(region))
            }
            Self::DeviceTaken { region, vm } => {
                write!(f, "{} is already given to vm[{vm}]", R(region))
            }
            Self::NotSpi(i) => write!(f, "INTID {i} is not an SPI ({SPI_FIRST}..{SPI_END})"),
            Self::IntidReserved(i) => write!(f, "INTID {i} is kept by the hypervisor"),
            Self::IntidUart(i) => write!(f, "INTID {i} is the VM's emulated UART interrupt"),
            Self::IntidRepeated(i) => write!(f, "INTID {i} is given twice"),
            Self::Overflow(r) => write!(f, "base {:#x} + size {:#x} overflows", r.base, r.size),
            Self::IntidTaken { intid, vm } => {
                write!(f, "INTID {intid} is already routed to vm[{vm}]")
            }
            Self::IntidDisk { intid, disk } => write!(f, "INTID {intid} is the VM's disk[{disk}] interrupt"),
            Self::IntidNet { intid, net } => write!(f, "INTID {intid} is the VM's net[{net}] interrupt"),
            Self::SwitchName => write!(f, "a switch name is 1 to 15 of a-z, 0-9, - and _"),
            Self::MacNotUnicast(m) => write!(f, "{} is not a unicast address", Mac(m)),
            Self::MacTaken { mac, vm, net } => write!(f, "{} is already vm[{vm}]'s net[{net}]", Mac(mac)),
            Self::DiskShared { region, vm, image } => write!(
                f,
                "{} shares host memory with vm[{vm}]'s {image} (a disk image is used in place: \
                 each disk needs host memory of its own)",
                R(region)
            ),
        }
    }
}

/// A MAC address printed as `52:54:00:12:34:56`.
struct Mac<'a>(&'a [u8; 6]);

impl fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// A region printed as `[base, end)`.
struct R<'a>(&'a Region);

impl fmt::Display for R<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.0.base, self.0.base.saturating_add(self.0.size))
    }
}

/// Why one VM was refused: which VM, which field, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpecError {
    /// Index of the VM in the list given to [`validate`].
    pub vm: usize,
    /// Its name (may be empty or invalid when `field` is [`Field::Name`]).
    pub name: heapless::String<16>,
    pub field: Field,
    pub problem: Problem,
}

/// `vm "alpha": memory: ...` (or `vm[2]: ...` when the VM has no name).
impl fmt::Display for VmSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "vm[{}]", self.vm)?;
        } else {
            write!(f, "vm {:?}", self.name.as_str())?;
        }
        write!(f, ": {}: {}", self.field.dt_name(), self.problem)
    }
}

/// Checks a VM name: 1..=[`MAX_NAME`] characters from `[a-z0-9_-]`.
pub fn check_name(name: &str) -> Result<(), Problem> {
    if name.is_empty() {
        return Err(Problem::NameEmpty);
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')) {
        return Err(Problem::NameBadChar(c));
    }
    if name.len() > MAX_NAME {
        return Err(Problem::NameTooLong(name.len()));
    }
    Ok(())
}

/// Validates every VM against the machine; one result per VM, in order.
pub fn validate(vms: &[VmSpec], machine: &MachineFacts) -> Vec<Result<(), VmSpecError>> {
    // Host RAM no VM can have: reserved memory and every image (the
    // hypervisor keeps all images pristine, even those of refused VMs).
    let mut used: Vec<Region> = machine.reserved.clone();
    for vm in vms {
        used.push(vm.kernel);
        used.extend(vm.initrd);
        used.extend(vm.disks.iter().map(|d| d.region));
    }
    let mut ram_left = free_ram(&machine.ram, &used);
    let mut accepted: Vec<usize> = Vec::new();
    let mut results = Vec::with_capacity(vms.len());
    for (i, vm) in vms.iter().enumerate() {
        let r = check_vm(i, vms, &accepted, ram_left, machine).map_err(|(field, problem)| VmSpecError {
            vm: i,
            name: vm.name.clone(),
            field,
            problem,
        });
        if r.is_ok() {
            accepted.push(i);
            ram_left -= vm.memory.size;
        }
        results.push(r);
    }
    results
}

/// Indices of the VMs that start: every VM whose result is `Ok`.
pub fn vms_to_start(results: &[Result<(), VmSpecError>]) -> Vec<usize> {
    results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect()
}

/// Bytes of host RAM, counted in whole [`RAM_GRANULE`] blocks, that no `used` region touches.
///
/// By ranges, not block by block: the regions come from the DTB, and one
/// claiming exabytes of RAM must not make the boot count for hours (found
/// by fuzzing, ci/fuzz target `dtb`).
pub fn free_ram(ram: &[Region], used: &[Region]) -> u64 {
    // The blocks each used region touches, merged into disjoint runs.
    let mut taken: Vec<(u64, u64)> = used
        .iter()
        .filter(|u| u.size != 0)
        .map(|u| (u.base & !(RAM_GRANULE - 1), align_up(end_of(u), RAM_GRANULE)))
        .collect();
    taken.sort_unstable();
    let mut runs: Vec<(u64, u64)> = Vec::with_capacity(taken.len());
    for (start, end) in taken {
        match runs.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => runs.push((start, end)),
        }
    }
    let mut free: u64 = 0;
    for r in ram {
        // Whole blocks only: round the start up and the end down.
        let start = align_up(r.base, RAM_GRANULE);
        let end = end_of(r) & !(RAM_GRANULE - 1);
        if start >= end {
            continue;
        }
        let spoilt: u64 = runs.iter().map(|&(s, e)| e.min(end).saturating_sub(s.max(start))).sum();
        free = free.saturating_add(end - start - spoilt);
    }
    free
}

type Check = Result<(), (Field, Problem)>;

fn check_vm(i: usize, vms: &[VmSpec], accepted: &[usize], ram_left: u64, m: &MachineFacts) -> Check {
    let vm = &vms[i];
    check_name(&vm.name).map_err(|p| (Field::Name, p))?;
    if let Some(&other) = accepted.iter().find(|&&j| vms[j].name == vm.name) {
        return Err((Field::Name, Problem::NameTaken(other)));
    }
    check_memory(vm, m)?;
    check_cpus(vm, m)?;
    check_image(&vm.kernel, m).map_err(|p| (Field::Kernel, p))?;
    if let Some(initrd) = &vm.initrd {
        check_image(initrd, m).map_err(|p| (Field::Initrd, p))?;
        if overlaps(initrd, &vm.kernel) {
            return Err((Field::Initrd, Problem::OverlapsKernel(*initrd)));
        }
    }
    for d in 0..vm.passthrough.len() {
        check_device(vm, d, accepted, vms, m)?;
    }
    for d in 0..vm.disks.len() {
        check_disk(i, d, vms, m)?;
    }
    for k in 0..vm.nets.len() {
        check_net(i, k, vms, accepted)?;
    }
    if vm.memory.size > ram_left {
        return Err((Field::Memory, Problem::NotEnoughRam { size: vm.memory.size, left: ram_left }));
    }
    Ok(())
}

fn check_memory(vm: &VmSpec, m: &MachineFacts) -> Check {
    let mem = vm.memory;
    if mem.size == 0 {
        return Err((Field::Memory, Problem::SizeZero));
    }
    if !mem.size.is_multiple_of(RAM_GRANULE) {
        return Err((Field::Memory, Problem::SizeNotMultiple { size: mem.size, granule: RAM_GRANULE }));
    }
    if !mem.base.is_multiple_of(RAM_GRANULE) {
        return Err((Field::IpaBase, Problem::BaseNotAligned { base: mem.base, granule: RAM_GRANULE }));
    }
    check_ipa_range(&mem, m).map_err(|p| (Field::IpaBase, p))
}

/// A guest-physical range must fit the IPA space and miss every device window.
fn check_ipa_range(r: &Region, m: &MachineFacts) -> Result<(), Problem> {
    let Some(end) = r.base.checked_add(r.size) else {
        return Err(Problem::Overflow(*r));
    };
    if m.ipa_bits < 64 && end > 1u64 << m.ipa_bits {
        return Err(Problem::AboveIpaSpace { end, ipa_bits: m.ipa_bits });
    }
    if let Some(w) = m.windows.iter().find(|w| overlaps(&w.region, r)) {
        return Err(Problem::OverlapsWindow { region: *r, window: *w });
    }
    Ok(())
}

fn check_cpus(vm: &VmSpec, m: &MachineFacts) -> Check {
    if vm.vcpus == 0 || vm.vcpus as usize > MAX_VCPUS {
        return Err((Field::Vcpus, Problem::VcpusOutOfRange(vm.vcpus)));
    }
    // 0 is "absent" (the DTB had no property): the defaults.
    if vm.weight > MAX_WEIGHT {
        return Err((Field::Weight, Problem::WeightOutOfRange(vm.weight)));
    }
    if vm.cap > 100 * vm.vcpus {
        return Err((Field::Cap, Problem::CapOutOfRange { cap: vm.cap, vcpus: vm.vcpus }));
    }
    if vm.affinity.is_empty() {
        return Ok(());
    }
    if vm.affinity.len() != vm.vcpus as usize {
        return Err((Field::Affinity, Problem::AffinityLength { len: vm.affinity.len(), vcpus: vm.vcpus }));
    }
    if let Some(&cpu) = vm.affinity.iter().find(|&&c| c >= m.nr_pcpus) {
        return Err((Field::Affinity, Problem::NoSuchCpu { cpu, nr_pcpus: m.nr_pcpus }));
    }
    Ok(())
}

/// An image must be non-empty, inside one RAM region, and clear of reserved memory.
fn check_image(r: &Region, m: &MachineFacts) -> Result<(), Problem> {
    if r.size == 0 {
        return Err(Problem::SizeZero);
    }
    if !inside_ram(r, &m.ram) {
        return Err(Problem::OutsideRam(*r));
    }
    if let Some(res) = m.reserved.iter().find(|res| overlaps(res, r)) {
        return Err(Problem::OverlapsReserved { region: *r, reserved: *res });
    }
    Ok(())
}

fn inside_ram(r: &Region, ram: &[Region]) -> bool {
    match r.base.checked_add(r.size) {
        Some(end) => ram.iter().any(|m| m.base <= r.base && end <= end_of(m)),
        None => false,
    }
}

fn check_device(vm: &VmSpec, d: usize, accepted: &[usize], vms: &[VmSpec], m: &MachineFacts) -> Check {
    let dev = &vm.passthrough[d];
    let reg = dev.region;
    let f = Field::PassthroughReg(d);
    if reg.size == 0 {
        return Err((f, Problem::SizeZero));
    }
    if !reg.base.is_multiple_of(PAGE) {
        return Err((f, Problem::BaseNotAligned { base: reg.base, granule: PAGE }));
    }
    if !reg.size.is_multiple_of(PAGE) {
        return Err((f, Problem::SizeNotMultiple { size: reg.size, granule: PAGE }));
    }
    if reg.base.checked_add(reg.size).is_none() {
        return Err((f, Problem::Overflow(reg)));
    }
    if m.ram.iter().any(|r| overlaps(r, &reg)) {
        return Err((f, Problem::OverlapsRam(reg)));
    }
    if let Some(res) = m.reserved.iter().find(|res| overlaps(res, &reg)) {
        return Err((f, Problem::OverlapsReserved { region: reg, reserved: *res }));
    }
    for (e, other) in vm.passthrough.iter().enumerate().take(d) {
        if overlaps(&other.region, &reg) {
            return Err((f, Problem::OverlapsDevice { region: reg, other: e }));
        }
    }
    for &j in accepted {
        if vms[j].passthrough.iter().any(|o| overlaps(&o.region, &reg)) {
            return Err((f, Problem::DeviceTaken { region: reg, vm: j }));
        }
    }

    let g = Field::PassthroughGuestReg(d);
    let guest = Region { base: dev.guest_base, size: reg.size };
    if !guest.base.is_multiple_of(PAGE) {
        return Err((g, Problem::BaseNotAligned { base: guest.base, granule: PAGE }));
    }
    check_ipa_range(&guest, m).map_err(|p| (g, p))?;
    if overlaps(&guest, &vm.memory) {
        return Err((g, Problem::OverlapsGuestRam { region: guest, ram: vm.memory }));
    }
    for (e, other) in vm.passthrough.iter().enumerate().take(d) {
        let o = Region { base: other.guest_base, size: other.region.size };
        if overlaps(&o, &guest) {
            return Err((g, Problem::OverlapsDevice { region: guest, other: e }));
        }
    }

    let f = Field::PassthroughInterrupts(d);
    let uart_intid = SPI_FIRST + layout::UART_SPI;
    for (k, &intid) in dev.interrupts.iter().enumerate() {
        if !(SPI_FIRST..SPI_END).contains(&intid) {
            return Err((f, Problem::NotSpi(intid)));
        }
        let in_vm =
            vm.passthrough[..d].iter().any(|o| o.interrupts.contains(&intid)) || dev.interrupts[..k].contains(&intid);
        if in_vm {
            return Err((f, Problem::IntidRepeated(intid)));
        }
        if m.reserved_intids.contains(&intid) {
            return Err((f, Problem::IntidReserved(intid)));
        }
        if vm.console && intid == uart_intid {
            return Err((f, Problem::IntidUart(intid)));
        }
        if let Some(disk) = (0..vm.disks.len()).find(|&k| intid == disk_intid(k)) {
            return Err((f, Problem::IntidDisk { intid, disk }));
        }
        if let Some(net) = (0..vm.nets.len()).find(|&k| intid == disk_intid(vm.disks.len() + k)) {
            return Err((f, Problem::IntidNet { intid, net }));
        }
        if let Some(&j) = accepted.iter().find(|&&j| vms[j].passthrough.iter().any(|o| o.interrupts.contains(&intid))) {
            return Err((f, Problem::IntidTaken { intid, vm: j }));
        }
    }
    Ok(())
}

/// Network card `k` of VM `i`: a valid switch name (any number of VMs
/// may share a switch) and a unicast MAC address no other card of an
/// accepted VM, or an earlier card of this one, has.
fn check_net(i: usize, k: usize, vms: &[VmSpec], accepted: &[usize]) -> Check {
    let net = &vms[i].nets[k];
    let good = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if net.switch.is_empty() || !net.switch.chars().all(good) {
        return Err((Field::NetSwitch(k), Problem::SwitchName));
    }
    let f = Field::NetMac(k);
    if net.mac[0] & 1 != 0 || net.mac == [0; 6] {
        return Err((f, Problem::MacNotUnicast(net.mac)));
    }
    let earlier = accepted.iter().map(|&j| (j, &vms[j].nets[..])).chain([(i, &vms[i].nets[..k])]);
    for (j, nets) in earlier {
        if let Some(e) = nets.iter().position(|o| o.mac == net.mac) {
            return Err((f, Problem::MacTaken { mac: net.mac, vm: j, net: e }));
        }
    }
    Ok(())
}

/// The INTID of disk `k`'s virtio-mmio transport (`layout::VIRTIO_SPI`);
/// also of transport `k` whatever it is (a VM's network cards follow its
/// disks).
pub fn disk_intid(k: usize) -> u32 {
    SPI_FIRST + layout::VIRTIO_SPI + k as u32
}

/// Disk `d` of `vm`: an image (non-empty, in host RAM, clear of reserved
/// memory) of whole sectors that shares no byte with any other image of
/// any VM, refused ones included (their images stay kept too): the device
/// holds it as its own (`vdisk`), and the guest writes it in place.
fn check_disk(i: usize, d: usize, vms: &[VmSpec], m: &MachineFacts) -> Check {
    let disk = vms[i].disks[d];
    let f = Field::Disk(d);
    check_image(&disk.region, m).map_err(|p| (f, p))?;
    if !disk.region.size.is_multiple_of(SECTOR) {
        return Err((f, Problem::SizeNotMultiple { size: disk.region.size, granule: SECTOR }));
    }
    for (j, other) in vms.iter().enumerate() {
        let images = [(Image::Kernel, Some(other.kernel)), (Image::Initrd, other.initrd)]
            .into_iter()
            .chain(other.disks.iter().enumerate().map(|(k, o)| (Image::Disk(k), Some(o.region))));
        for (image, region) in images {
            let itself = j == i && image == Image::Disk(d);
            if let Some(r) = region
                && !itself
                && overlaps(&r, &disk.region)
            {
                return Err((f, Problem::DiskShared { region: disk.region, vm: j, image }));
            }
        }
    }
    Ok(())
}

/// One past the last byte, saturating (regions come from a DTB and may be nonsense).
fn end_of(r: &Region) -> u64 {
    r.base.saturating_add(r.size)
}

/// True when the ranges share a byte; never overflows.
fn overlaps(a: &Region, b: &Region) -> bool {
    a.size != 0 && b.size != 0 && a.base < end_of(b) && b.base < end_of(a)
}

const fn align_up(x: u64, a: u64) -> u64 {
    match x.checked_add(a - 1) {
        Some(v) => v & !(a - 1),
        None => !(a - 1),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_a_person_writes_them() {
        use super::Size;
        let show = |n| alloc::format!("{}", Size(n));
        assert_eq!(show(0x3f0_0000), "63 MiB");
        assert_eq!(show(2 << 20), "2 MiB");
        assert_eq!(show(1 << 30), "1 GiB");
        assert_eq!(show(4096), "4 KiB");
        assert_eq!(show(1000), "1000 bytes");
        assert_eq!(show(0), "0 bytes");
    }

    use super::*;
    use alloc::string::ToString;
    use shared::platform::{Disk, Net, Passthrough};

    const M: u64 = 1 << 20;
    const RAM: Region = Region { base: 0x4000_0000, size: 1024 * M };
    /// The hypervisor keeps the first 32 MiB of RAM and the host UART.
    const HYP: Region = Region { base: 0x4000_0000, size: 32 * M };
    const HOST_UART: Region = Region { base: 0x0900_0000, size: 0x1000 };

    fn machine() -> MachineFacts {
        let mut m = MachineFacts::new(alloc::vec![RAM], 4, 40);
        m.reserved = alloc::vec![HYP, HOST_UART];
        m.reserved_intids = alloc::vec![33];
        m
    }

    /// A good VM: `mem` MiB at the default IPA base, one vCPU, a kernel in slot `slot`.
    fn vm(name: &str, mem: u64, slot: u64) -> VmSpec {
        VmSpec {
            name: name.try_into().unwrap(),
            memory: Region { base: layout::RAM_BASE, size: mem * M },
            vcpus: 1,
            kernel: Region { base: 0x4800_0000 + slot * 2 * M, size: 0x1234 },
            console: true,
            ..Default::default()
        }
    }

    fn dev(base: u64, size: u64, irqs: &[u32]) -> Passthrough {
        Passthrough {
            region: Region { base, size },
            guest_base: base,
            interrupts: heapless::Vec::from_slice(irqs).unwrap(),
        }
    }

    /// The one error of a single VM validated alone (after `before`, which must pass).
    fn err_after(before: &[VmSpec], v: VmSpec) -> VmSpecError {
        let mut all = before.to_vec();
        all.push(v);
        let r = validate(&all, &machine());
        for (i, x) in r.iter().enumerate().take(before.len()) {
            assert!(x.is_ok(), "vm {i}: {x:?}");
        }
        r.last().unwrap().clone().unwrap_err()
    }

    fn err(v: VmSpec) -> (Field, Problem) {
        let e = err_after(&[], v);
        (e.field, e.problem)
    }

    fn ok(vms: &[VmSpec]) {
        for r in validate(vms, &machine()) {
            assert_eq!(r, Ok(()));
        }
    }

    #[test]
    fn vmspec_two_vms_same_ipa_base_are_fine() {
        ok(&[vm("alpha", 64, 0), vm("beta", 64, 1)]);
    }

    #[test]
    fn vmspec_shared_kernel_image_is_fine() {
        ok(&[vm("alpha", 64, 0), vm("beta", 64, 0)]);
    }

    #[test]
    fn vmspec_name_rules() {
        assert_eq!(check_name(""), Err(Problem::NameEmpty));
        assert_eq!(check_name("Alpha"), Err(Problem::NameBadChar('A')));
        assert_eq!(check_name("a b"), Err(Problem::NameBadChar(' ')));
        assert_eq!(check_name("abcdefghijklmnop"), Err(Problem::NameTooLong(16)));
        assert_eq!(check_name("abcdefghijklmno"), Ok(()));
        assert_eq!(check_name("vm_1-x"), Ok(()));
        assert_eq!(err(vm("", 64, 0)), (Field::Name, Problem::NameEmpty));
        assert_eq!(err(vm("a.b", 64, 0)), (Field::Name, Problem::NameBadChar('.')));
        assert_eq!(err(vm("abcdefghijklmnop", 64, 0)), (Field::Name, Problem::NameTooLong(16)));
    }

    #[test]
    fn vmspec_duplicate_name_refuses_the_later_vm() {
        let e = err_after(&[vm("alpha", 64, 0)], vm("alpha", 64, 1));
        assert_eq!((e.vm, e.field, e.problem), (1, Field::Name, Problem::NameTaken(0)));
    }

    #[test]
    fn vmspec_name_of_a_refused_vm_is_free() {
        let mut bad = vm("alpha", 64, 0);
        bad.vcpus = 0;
        let r = validate(&[bad, vm("alpha", 64, 1)], &machine());
        assert!(r[0].is_err());
        assert_eq!(r[1], Ok(()));
    }

    #[test]
    fn vmspec_memory_size_rules() {
        assert_eq!(err(vm("a", 0, 0)), (Field::Memory, Problem::SizeZero));
        let mut v = vm("a", 64, 0);
        v.memory.size += 4096;
        assert_eq!(err(v), (Field::Memory, Problem::SizeNotMultiple { size: 64 * M + 4096, granule: RAM_GRANULE }));
    }

    #[test]
    fn vmspec_ipa_base_rules() {
        let mut v = vm("a", 64, 0);
        v.memory.base = 0x4010_0000;
        assert_eq!(err(v), (Field::IpaBase, Problem::BaseNotAligned { base: 0x4010_0000, granule: RAM_GRANULE }));
        let mut v = vm("a", 64, 0);
        v.memory.base = (1 << 40) - 32 * M;
        assert_eq!(err(v), (Field::IpaBase, Problem::AboveIpaSpace { end: (1 << 40) + 32 * M, ipa_bits: 40 }));
        let mut v = vm("a", 64, 0);
        v.memory.base = u64::MAX - RAM_GRANULE + 1;
        assert!(matches!(err(v), (Field::IpaBase, Problem::Overflow(_))));
        // Just below the GIC and just above the UART are fine.
        let mut v = vm("a", 64, 0);
        v.memory.base = 0x0800_0000 - 64 * M;
        ok(&[v]);
        let mut v = vm("a", 64, 0);
        v.memory.base = 0x0a00_0000 + RAM_GRANULE;
        ok(&[v]);
    }

    #[test]
    fn vmspec_ram_must_miss_the_device_windows() {
        for (base, window) in
            [(0x0800_0000, "GICD"), (0x0900_0000 - 2 * M, "UART"), (0x0600_0000, "GICD"), (0x0a00_0000, "VIRTIO")]
        {
            let mut v = vm("a", 64, 0);
            v.memory.base = base;
            match err(v) {
                (Field::IpaBase, Problem::OverlapsWindow { window: w, .. }) => {
                    assert_eq!(w.name, window)
                }
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn vmspec_ram_budget_refuses_the_vm_that_tips_it_over() {
        // 1 GiB - 32 MiB reserved - one 2 MiB kernel block = 990 MiB left.
        let r = validate(&[vm("a", 600, 0), vm("b", 400, 0), vm("c", 390, 0)], &machine());
        assert_eq!(r[0], Ok(()));
        assert_eq!(r[2], Ok(()));
        let e = r[1].clone().unwrap_err();
        assert_eq!((e.vm, e.field), (1, Field::Memory));
        assert_eq!(e.problem, Problem::NotEnoughRam { size: 400 * M, left: 390 * M });
        assert_eq!(e.to_string(), r#"vm "b": memory: 400 MiB is more than the 390 MiB of RAM left"#);
        assert_eq!(vms_to_start(&r), [0, 2]);
    }

    #[test]
    fn vmspec_ram_budget_exact_fit() {
        ok(&[vm("a", 990, 0)]);
        assert!(matches!(err(vm("a", 992, 0)).1, Problem::NotEnoughRam { left, .. } if left == 990 * M));
    }

    #[test]
    fn vmspec_free_ram_counts_whole_blocks() {
        let ram = [Region { base: 0x4000_0000, size: 16 * M }];
        assert_eq!(free_ram(&ram, &[]), 16 * M);
        // One byte used spoils one block; a range across a boundary spoils two.
        assert_eq!(free_ram(&ram, &[Region { base: 0x4000_0000, size: 1 }]), 14 * M);
        assert_eq!(free_ram(&ram, &[Region { base: 0x401f_f000, size: 0x2000 }]), 12 * M);
        // Unaligned RAM edges do not count.
        let ram = [Region { base: 0x4010_0000, size: 4 * M }];
        assert_eq!(free_ram(&ram, &[]), 2 * M);
        // Several regions add up; zero-sized used regions are ignored.
        let ram = [Region { base: 0, size: 4 * M }, Region { base: 1 << 32, size: 2 * M }];
        assert_eq!(free_ram(&ram, &[Region { base: 0, size: 0 }]), 6 * M);
        // Overlapping and nested used regions spoil each block once.
        let ram = [Region { base: 0x4000_0000, size: 16 * M }];
        let used = [
            Region { base: 0x4000_0000, size: 3 * M },
            Region { base: 0x4010_0000, size: 1 },
            Region { base: 0x40e0_0000, size: 1 << 40 },
        ];
        assert_eq!(free_ram(&ram, &used), 16 * M - 4 * M - 2 * M);
    }

    /// Found by fuzzing (ci/fuzz, target `dtb`): free RAM was counted one
    /// 2 MiB block at a time, so a DTB `/memory` node claiming exabytes
    /// (any u64 size) made validation, and the boot, run for hours.
    #[test]
    fn vmspec_free_ram_of_absurd_regions_is_quick() {
        let ram = [Region { base: 0, size: u64::MAX }, Region { base: u64::MAX - M, size: u64::MAX }];
        let used = [Region { base: 1 << 62, size: 1 << 62 }, Region { base: 3, size: u64::MAX }];
        assert_eq!(free_ram(&ram, &used[..1]), !(RAM_GRANULE - 1) - (1 << 62));
        assert_eq!(free_ram(&ram, &used), 0);
        let huge = [Region { base: 0, size: u64::MAX }, Region { base: 0, size: u64::MAX }];
        assert_eq!(free_ram(&huge, &[]), u64::MAX, "saturates");
    }

    #[test]
    fn vmspec_vcpu_rules() {
        let mut v = vm("a", 64, 0);
        v.vcpus = 0;
        assert_eq!(err(v), (Field::Vcpus, Problem::VcpusOutOfRange(0)));
        let mut v = vm("a", 64, 0);
        v.vcpus = MAX_VCPUS as u32 + 1;
        assert_eq!(err(v), (Field::Vcpus, Problem::VcpusOutOfRange(9)));
        let mut v = vm("a", 64, 0);
        v.vcpus = 8; // more vCPUs than pCPUs is allowed (they are scheduled)
        ok(&[v]);
    }

    #[test]
    fn vmspec_affinity_rules() {
        let mut v = vm("a", 64, 0);
        v.vcpus = 2;
        v.affinity = heapless::Vec::from_slice(&[0]).unwrap();
        assert_eq!(err(v), (Field::Affinity, Problem::AffinityLength { len: 1, vcpus: 2 }));
        let mut v = vm("a", 64, 0);
        v.vcpus = 2;
        v.affinity = heapless::Vec::from_slice(&[3, 4]).unwrap();
        assert_eq!(err(v), (Field::Affinity, Problem::NoSuchCpu { cpu: 4, nr_pcpus: 4 }));
        let mut v = vm("a", 64, 0);
        v.weight = MAX_WEIGHT + 1;
        assert_eq!(err(v), (Field::Weight, Problem::WeightOutOfRange(MAX_WEIGHT + 1)));
        let mut v = vm("a", 64, 0);
        v.vcpus = 2;
        v.cap = 201;
        assert_eq!(err(v.clone()), (Field::Cap, Problem::CapOutOfRange { cap: 201, vcpus: 2 }));
        v.cap = 200;
        v.weight = 1;
        ok(&[v]);
        let mut v = vm("a", 64, 0);
        v.vcpus = 2;
        v.affinity = heapless::Vec::from_slice(&[3, 3]).unwrap();
        ok(&[v]);
    }

    #[test]
    fn vmspec_kernel_rules() {
        let mut v = vm("a", 64, 0);
        v.kernel.size = 0;
        assert_eq!(err(v), (Field::Kernel, Problem::SizeZero));
        let mut v = vm("a", 64, 0);
        v.kernel.base = 0x8000_0000 - 0x1000;
        assert!(matches!(err(v), (Field::Kernel, Problem::OutsideRam(_))));
        let mut v = vm("a", 64, 0);
        v.kernel.base = u64::MAX;
        assert!(matches!(err(v), (Field::Kernel, Problem::OutsideRam(_))));
        let mut v = vm("a", 64, 0);
        v.kernel.base = 0x4100_0000;
        assert_eq!(
            err(v),
            (
                Field::Kernel,
                Problem::OverlapsReserved { region: Region { base: 0x4100_0000, size: 0x1234 }, reserved: HYP }
            )
        );
    }

    #[test]
    fn vmspec_initrd_rules() {
        let mut v = vm("a", 64, 0);
        v.initrd = Some(Region { base: 0x4820_0000, size: 0x10_0000 });
        ok(&[v]);
        let mut v = vm("a", 64, 0);
        v.initrd = Some(Region { base: 0x4800_1000, size: 0x1000 });
        assert!(matches!(err(v), (Field::Initrd, Problem::OverlapsKernel(_))));
        let mut v = vm("a", 64, 0);
        v.initrd = Some(Region { base: 0x1000, size: 0x1000 });
        assert!(matches!(err(v), (Field::Initrd, Problem::OutsideRam(_))));
        let mut v = vm("a", 64, 0);
        v.initrd = Some(Region { base: 0x4820_0000, size: 0 });
        assert_eq!(err(v), (Field::Initrd, Problem::SizeZero));
    }

    #[test]
    fn vmspec_images_count_against_the_ram_budget() {
        let mut v = vm("a", 990, 0);
        v.initrd = Some(Region { base: 0x4820_0000, size: 0x10_0000 });
        assert!(matches!(err(v).1, Problem::NotEnoughRam { left, .. } if left == 988 * M));
    }

    fn with_dev(name: &str, slot: u64, d: Passthrough) -> VmSpec {
        let mut v = vm(name, 64, slot);
        v.passthrough.push(d).unwrap();
        v
    }

    #[test]
    fn vmspec_passthrough_is_fine() {
        let mut v = with_dev("a", 0, dev(0x0904_0000, 0x1000, &[40, 41]));
        v.passthrough.push(dev(0x0a10_0000, 0x2000, &[42])).unwrap();
        ok(&[v, with_dev("b", 1, dev(0x0905_0000, 0x1000, &[43]))]);
    }

    #[test]
    fn vmspec_passthrough_reg_rules() {
        let f = Field::PassthroughReg(0);
        assert_eq!(err(with_dev("a", 0, dev(0x0904_0000, 0, &[]))), (f, Problem::SizeZero));
        assert_eq!(
            err(with_dev("a", 0, dev(0x0904_0800, 0x1000, &[]))),
            (f, Problem::BaseNotAligned { base: 0x0904_0800, granule: PAGE })
        );
        assert_eq!(
            err(with_dev("a", 0, dev(0x0904_0000, 0x800, &[]))),
            (f, Problem::SizeNotMultiple { size: 0x800, granule: PAGE })
        );
        assert!(matches!(err(with_dev("a", 0, dev(0x6000_0000, 0x1000, &[]))), (_, Problem::OverlapsRam(_))));
        assert!(matches!(
            err(with_dev("a", 0, dev(0x0900_0000, 0x1000, &[]))),
            (_, Problem::OverlapsReserved { reserved: HOST_UART, .. })
        ));
        assert!(matches!(err(with_dev("a", 0, dev(0xffff_ffff_ffff_f000, 0x2000, &[]))), (_, Problem::Overflow(_))));
        let mut v = with_dev("a", 0, dev(0x0904_0000, 0x2000, &[]));
        v.passthrough.push(dev(0x0904_1000, 0x1000, &[])).unwrap();
        assert!(matches!(err(v), (Field::PassthroughReg(1), Problem::OverlapsDevice { other: 0, .. })));
    }

    #[test]
    fn vmspec_passthrough_reg_given_twice_refuses_the_later_vm() {
        let first = with_dev("a", 0, dev(0x0904_0000, 0x1000, &[]));
        let e = err_after(&[first], with_dev("b", 1, dev(0x0904_0000, 0x1000, &[])));
        assert!(matches!(e.problem, Problem::DeviceTaken { vm: 0, .. }), "{e:?}");
        // A refused VM does not hold its device.
        let mut refused = with_dev("a", 0, dev(0x0904_0000, 0x1000, &[]));
        refused.vcpus = 0;
        let r = validate(&[refused, with_dev("b", 1, dev(0x0904_0000, 0x1000, &[]))], &machine());
        assert_eq!(vms_to_start(&r), [1]);
    }

    #[test]
    fn vmspec_passthrough_guest_reg_rules() {
        let g = Field::PassthroughGuestReg(0);
        let mut d = dev(0x0904_0000, 0x1000, &[]);
        d.guest_base = 0x4000_0000;
        assert!(matches!(err(with_dev("a", 0, d)), (f, Problem::OverlapsGuestRam { .. }) if f == g));
        let mut d = dev(0x0904_0000, 0x1000, &[]);
        d.guest_base = 0x0800_0000;
        assert!(
            matches!(err(with_dev("a", 0, d)), (_, Problem::OverlapsWindow { window, .. }) if window.name == "GICD")
        );
        let mut d = dev(0x0904_0000, 0x1000, &[]);
        d.guest_base = 0x0904_0800;
        assert!(matches!(err(with_dev("a", 0, d)), (_, Problem::BaseNotAligned { .. })));
        let mut d = dev(0x0904_0000, 0x1000, &[]);
        d.guest_base = 1 << 40;
        assert!(matches!(err(with_dev("a", 0, d)), (_, Problem::AboveIpaSpace { .. })));
        let mut v = with_dev("a", 0, dev(0x0904_0000, 0x1000, &[]));
        let mut d = dev(0x0905_0000, 0x1000, &[]);
        d.guest_base = 0x0904_0000;
        v.passthrough.push(d).unwrap();
        assert!(matches!(err(v), (Field::PassthroughGuestReg(1), Problem::OverlapsDevice { other: 0, .. })));
    }

    #[test]
    fn vmspec_passthrough_interrupt_rules() {
        let f = Field::PassthroughInterrupts(0);
        let d = |irqs: &[u32]| with_dev("a", 0, dev(0x0904_0000, 0x1000, irqs));
        assert_eq!(err(d(&[31])), (f, Problem::NotSpi(31)));
        assert_eq!(err(d(&[1020])), (f, Problem::NotSpi(1020)));
        assert_eq!(err(d(&[40, 40])), (f, Problem::IntidRepeated(40)));
        ok(&[d(&[32, 1019])]);
        let mut m = machine();
        m.reserved_intids = alloc::vec![40];
        let r = validate(&[d(&[40])], &m);
        assert_eq!(r[0].clone().unwrap_err().problem, Problem::IntidReserved(40));
        // INTID 33 is the emulated UART's, unless the VM has no console.
        let mut m = machine();
        m.reserved_intids.clear();
        assert_eq!(validate(&[d(&[33])], &m)[0].clone().unwrap_err().problem, Problem::IntidUart(33));
        let mut v = d(&[33]);
        v.console = false;
        assert_eq!(validate(&[v], &m)[0], Ok(()));
    }

    #[test]
    fn vmspec_interrupt_claimed_twice_refuses_the_later_vm() {
        let a = with_dev("a", 0, dev(0x0904_0000, 0x1000, &[40]));
        let e = err_after(&[a], with_dev("b", 1, dev(0x0905_0000, 0x1000, &[40])));
        assert_eq!((e.field, e.problem), (Field::PassthroughInterrupts(0), Problem::IntidTaken { intid: 40, vm: 0 }));
        let mut v = with_dev("a", 0, dev(0x0904_0000, 0x1000, &[40]));
        v.passthrough.push(dev(0x0905_0000, 0x1000, &[40])).unwrap();
        assert_eq!(err(v), (Field::PassthroughInterrupts(1), Problem::IntidRepeated(40)));
    }

    fn disk(base: u64, size: u64, readonly: bool) -> Disk {
        Disk { region: Region { base, size }, readonly }
    }

    fn with_disks(name: &str, slot: u64, disks: &[Disk]) -> VmSpec {
        let mut v = vm(name, 64, slot);
        v.disks = heapless::Vec::from_slice(disks).unwrap();
        v
    }

    fn with_nets(name: &str, slot: u64, nets: &[(&str, [u8; 6])]) -> VmSpec {
        let mut v = vm(name, 64, slot);
        for (switch, mac) in nets {
            v.nets.push(Net { switch: (*switch).try_into().unwrap(), mac: *mac }).unwrap();
        }
        v
    }

    #[test]
    fn vmspec_net_rules() {
        let (a, b) = ([0x52, 0x54, 0, 0, 0, 1], [0x52, 0x54, 0, 0, 0, 2]);
        ok(&[with_nets("a", 0, &[("lan", a)]), with_nets("b", 1, &[("lan", b)])]);
        assert_eq!(err(with_nets("a", 0, &[("LAN", a)])), (Field::NetSwitch(0), Problem::SwitchName));
        assert_eq!(err(with_nets("a", 0, &[("", a)])), (Field::NetSwitch(0), Problem::SwitchName));
        let multicast = [0x01, 0, 0x5e, 0, 0, 1];
        assert_eq!(
            err(with_nets("a", 0, &[("lan", multicast)])),
            (Field::NetMac(0), Problem::MacNotUnicast(multicast))
        );
        assert_eq!(err(with_nets("a", 0, &[("lan", [0; 6])])), (Field::NetMac(0), Problem::MacNotUnicast([0; 6])));
        assert_eq!(
            err(with_nets("a", 0, &[("lan", a), ("wan", a)])),
            (Field::NetMac(1), Problem::MacTaken { mac: a, vm: 0, net: 0 })
        );
        let e = err_after(&[with_nets("a", 0, &[("x", b), ("lan", a)])], with_nets("b", 1, &[("lan", a)]));
        assert_eq!((e.field, e.problem.clone()), (Field::NetMac(0), Problem::MacTaken { mac: a, vm: 0, net: 1 }));
        assert!(e.to_string().contains("52:54:00:00:00:01 is already vm[0]'s net[1]"), "{e}");
        // A passthrough device may not take a card's SPI (after the disks').
        let mut v = with_nets("a", 0, &[("lan", a)]);
        v.disks.push(disk(0x4900_0000, 512, false)).unwrap();
        v.passthrough.push(dev(0x0904_0000, 0x1000, &[49])).unwrap();
        assert_eq!(err(v), (Field::PassthroughInterrupts(0), Problem::IntidNet { intid: 49, net: 0 }));
    }

    #[test]
    fn vmspec_disk_image_rules() {
        ok(&[with_disks("a", 0, &[disk(0x4900_0000, 0x10_0000, false), disk(0x4920_0000, 512, true)])]);
        let f = Field::Disk(0);
        assert_eq!(err(with_disks("a", 0, &[disk(0x4900_0000, 0, false)])), (f, Problem::SizeZero));
        assert_eq!(
            err(with_disks("a", 0, &[disk(0x4900_0000, 1000, true)])),
            (f, Problem::SizeNotMultiple { size: 1000, granule: SECTOR })
        );
        assert!(matches!(err(with_disks("a", 0, &[disk(0x1000, 0x1000, false)])), (_, Problem::OutsideRam(_))));
        assert!(matches!(
            err(with_disks("a", 0, &[disk(0x4000_0000, 0x1000, false)])),
            (_, Problem::OverlapsReserved { reserved: HYP, .. })
        ));
    }

    #[test]
    fn vmspec_a_disk_image_is_nobody_elses() {
        let d = disk(0x4900_0000, 0x10_0000, false);
        let ro = disk(0x4900_0000, 0x10_0000, true);
        // Two disks of one VM on one image, read-only or not.
        let e = err_after(&[], with_disks("a", 0, &[ro, d]));
        assert_eq!(e.field, Field::Disk(0));
        assert_eq!(e.problem, Problem::DiskShared { region: d.region, vm: 0, image: Image::Disk(1) });
        assert_eq!(
            e.to_string(),
            "vm \"a\": disk[0].reg: [0x49000000, 0x49100000) shares host memory with vm[0]'s disk[1] \
             (a disk image is used in place: each disk needs host memory of its own)"
        );
        assert_eq!(e.field.toml_name().to_string(), "disk[0].image");
        assert!(matches!(err(with_disks("a", 0, &[ro, ro])), (Field::Disk(0), Problem::DiskShared { .. })));
        // Two VMs: the one that comes first is refused as well (its image
        // would be the other's too), and so is the one after it.
        let r = validate(&[with_disks("a", 0, &[d]), with_disks("b", 1, &[d])], &machine());
        assert!(matches!(r[0].clone().unwrap_err().problem, Problem::DiskShared { vm: 1, .. }));
        assert!(matches!(r[1].clone().unwrap_err().problem, Problem::DiskShared { vm: 0, .. }));
        // Over a kernel image (slot 0 is at 0x4800_0000), read-only too.
        let region = Region { base: 0x4800_0000, size: 0x20_0000 };
        let e = err_after(&[], with_disks("a", 0, &[Disk { region, readonly: true }]));
        assert_eq!(e.problem, Problem::DiskShared { region, vm: 0, image: Image::Kernel });
    }

    #[test]
    fn vmspec_disk_interrupts_and_window_are_the_vms() {
        let mut v = with_disks("a", 0, &[disk(0x4900_0000, 512, false), disk(0x4920_0000, 512, false)]);
        v.passthrough.push(dev(0x0904_0000, 0x1000, &[49])).unwrap();
        assert_eq!(err(v), (Field::PassthroughInterrupts(0), Problem::IntidDisk { intid: 49, disk: 1 }));
        // Without a second disk, INTID 49 is free for a device.
        let mut v = with_disks("a", 0, &[disk(0x4900_0000, 512, false)]);
        v.passthrough.push(dev(0x0904_0000, 0x1000, &[49])).unwrap();
        ok(&[v]);
        let mut d = dev(0x0904_0000, 0x1000, &[]);
        d.guest_base = 0x0a00_0000;
        assert!(
            matches!(err(with_dev("a", 0, d)), (_, Problem::OverlapsWindow { window, .. }) if window.name == "VIRTIO")
        );
    }

    #[test]
    fn vmspec_messages_name_vm_and_field() {
        let mut v = vm("", 64, 0);
        v.vcpus = 3;
        let r = validate(&[vm("alpha", 64, 0), v], &machine());
        assert_eq!(r[1].clone().unwrap_err().to_string(), "vm[1]: vm-name: is empty");
        let mut v = vm("alpha", 64, 0);
        v.vcpus = 2;
        v.affinity = heapless::Vec::from_slice(&[0]).unwrap();
        let e = err_after(&[], v);
        assert_eq!(e.to_string(), r#"vm "alpha": cpu-affinity: has 1 entries for 2 vCPUs"#);
        assert_eq!(e.field.toml_name().to_string(), "pin");
        let mut d = dev(0x0904_0000, 0x1000, &[]);
        d.guest_base = 0x4000_0000;
        let e = err_after(&[], with_dev("beta", 0, d));
        assert_eq!(
            e.to_string(),
            r#"vm "beta": passthrough[0].guest-reg: [0x40000000, 0x40001000) overlaps the VM's RAM [0x40000000, 0x44000000)"#
        );
        assert_eq!(e.field.toml_name().to_string(), "passthrough[0].guest_reg");
    }

    #[test]
    fn vmspec_vms_to_start_keeps_the_valid_ones() {
        let bad = Err(VmSpecError {
            vm: 1,
            name: "x".try_into().unwrap(),
            field: Field::Vcpus,
            problem: Problem::VcpusOutOfRange(0),
        });
        assert_eq!(vms_to_start(&[Ok(()), bad.clone(), Ok(())]), [0, 2]);
        assert!(vms_to_start(&[bad]).is_empty());
        assert!(vms_to_start(&[]).is_empty());
    }
}
