//! A VM's MMIO bus: the emulated devices a trapped access can reach, each
//! registered once at its guest-physical range (KVM's `kvm_io_bus` and
//! `kvm_io_device_ops`, virt/kvm/kvm_main.c).
//!
//! The bus owns no device state and takes no lock: a device keeps its state
//! in the VM (`C`), under the lock it needs, and the bus hands it the VM,
//! the vCPU that made the access and the offset from the device's base.
//!
//! The bus holds devices of one type `D`: a `Box<dyn MmioDevice<C>>` for
//! any device, or, as the arch layer does, an enum of the VM's devices,
//! which the compiler can inline into the trap fast path (a virtual call
//! there cost 12 to 14 instructions per MMIO read, `scripts/bench`).
//!
//! Ranges never overlap, so an address has at most one device. A small bus
//! is scanned in registration order, so the device registered first (the
//! hottest) costs one comparison: cheaper than a binary search over a
//! handful of ranges. A larger one is searched by base (binary search).

use super::size_mask;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::marker::PhantomData;

pub use crate::vpl011::MmioError;

/// An emulated device on a VM's MMIO bus. `C` is the VM it belongs to
/// (the arch layer's `Vm`; a fake in the host tests): the device finds its
/// state there, as a KVM device finds its own from the `kvm_io_device`.
pub trait MmioDevice<C: ?Sized>: Send + Sync {
    /// A load of `size` bytes (1, 2, 4 or 8) at `offset` from the device's
    /// base by vCPU `vcpu`: the value read, or why the device refuses it
    /// (then it changed nothing).
    fn read(&self, vm: &C, vcpu: usize, offset: u64, size: u8) -> Result<u64, MmioError>;

    /// A store of the low `size` bytes of `value` at `offset` by `vcpu`.
    fn write(&self, vm: &C, vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError>;

    /// Puts the device in its power-on state (a VM reset, PSCI
    /// SYSTEM_RESET), with every vCPU out of the guest.
    fn reset(&self, vm: &C);

    /// The interrupt (GIC INTID) the device drives, if any.
    fn irq(&self) -> Option<u32>;
}

/// Any device, through a virtual call.
impl<C: ?Sized, T: MmioDevice<C> + ?Sized> MmioDevice<C> for Box<T> {
    fn read(&self, vm: &C, vcpu: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
        (**self).read(vm, vcpu, offset, size)
    }
    fn write(&self, vm: &C, vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        (**self).write(vm, vcpu, offset, size, value)
    }
    fn reset(&self, vm: &C) {
        (**self).reset(vm)
    }
    fn irq(&self) -> Option<u32> {
        (**self).irq()
    }
}

/// One registered device and what it is called in reports.
struct Slot<D> {
    name: &'static str,
    device: D,
}

/// The guest-physical range of a registered device: what the search reads,
/// kept apart from the devices so that it is 16 bytes a range.
#[derive(Clone, Copy, Debug)]
struct Range {
    base: u64,
    size: u64,
}

impl Range {
    /// One past the last byte (registration refuses ranges that wrap).
    fn end(&self) -> u64 {
        self.base + self.size
    }

    /// The offset of `addr` from the base, if `addr` lies in the range.
    #[inline(always)]
    fn offset(&self, addr: u64) -> Option<u64> {
        let offset = addr.wrapping_sub(self.base);
        (offset < self.size).then_some(offset)
    }
}

/// Up to this many devices, [`MmioBus::find`] scans the ranges in
/// registration order. Measured in `scripts/bench`'s MMIO rows on the 4
/// devices of a 2-vCPU VM: a binary search cost 10 instructions more than
/// a scan that finds the device first, 8 fewer than one that finds it
/// fourth; hence the hottest device is registered first.
const LINEAR_MAX: usize = 8;

/// Why a device cannot be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The range is empty.
    Empty { name: &'static str },
    /// The range runs past the top of the address space.
    Wraps { name: &'static str, base: u64, size: u64 },
    /// The range overlaps device `other`'s.
    Overlaps { name: &'static str, base: u64, size: u64, other: &'static str },
    /// The device drives an interrupt that device `other` drives already:
    /// two sources on one level-sensitive line would overwrite each other.
    SharedIrq { name: &'static str, intid: u32, other: &'static str },
}

impl core::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Empty { name } => write!(f, "{name}: empty MMIO range"),
            Self::Wraps { name, base, size } => {
                write!(f, "{name}: MMIO range {base:#x} + {size:#x} runs past the top of the address space")
            }
            Self::Overlaps { name, base, size, other } => {
                write!(f, "{name}: MMIO range {base:#x} + {size:#x} overlaps {other}'s")
            }
            Self::SharedIrq { name, intid, other } => {
                write!(f, "{name}: interrupt {intid} is driven by {other} already")
            }
        }
    }
}

/// Why an access was not performed; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// No device at the address.
    NoDevice,
    /// Device `device` refused it (a size or offset it does not allow;
    /// which one is the device's business, so the result stays small).
    Refused { device: &'static str },
}

/// The emulated devices `D` of one VM `C`, by guest-physical range.
pub struct MmioBus<C: ?Sized, D = Box<dyn MmioDevice<C>>> {
    /// In registration order; no two overlap.
    ranges: Vec<Range>,
    /// The device of each range, in the same order.
    slots: Vec<Slot<D>>,
    /// Each range's base and index in `ranges`, sorted by base.
    by_base: Vec<(u64, usize)>,
    vm: PhantomData<fn(&C)>,
}

impl<C: ?Sized, D: MmioDevice<C>> Default for MmioBus<C, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: ?Sized, D: MmioDevice<C>> MmioBus<C, D> {
    /// A bus with no device.
    pub const fn new() -> Self {
        Self { ranges: Vec::new(), slots: Vec::new(), by_base: Vec::new(), vm: PhantomData }
    }

    /// Registers `device`, called `name` in reports, at `base..base + size`
    /// (KVM's `kvm_io_bus_register_dev`); register the most used devices
    /// first (see [`LINEAR_MAX`]). Refuses an empty or wrapping
    /// range, one that overlaps a registered device, and an interrupt that
    /// another device drives.
    pub fn register(&mut self, base: u64, size: u64, name: &'static str, device: D) -> Result<(), RegisterError> {
        if size == 0 {
            return Err(RegisterError::Empty { name });
        }
        let Some(end) = base.checked_add(size) else {
            return Err(RegisterError::Wraps { name, base, size });
        };
        if let Some(intid) = device.irq()
            && let Some(other) = self.slots.iter().find(|s| s.device.irq() == Some(intid))
        {
            return Err(RegisterError::SharedIrq { name, intid, other: other.name });
        }
        // The first range by base that ends after `base`: the only one that
        // can overlap, since the ranges are disjoint.
        let at = self.by_base.partition_point(|&(_, i)| self.ranges[i].end() <= base);
        if let Some(&(other_base, other)) = self.by_base.get(at)
            && other_base < end
        {
            return Err(RegisterError::Overlaps { name, base, size, other: self.slots[other].name });
        }
        self.by_base.insert(at, (base, self.ranges.len()));
        self.ranges.push(Range { base, size });
        self.slots.push(Slot { name, device });
        Ok(())
    }

    /// The device at `addr` and the offset of `addr` from its base.
    #[inline]
    pub fn find(&self, addr: u64) -> Option<(&D, &'static str, u64)> {
        let (at, offset) = if self.ranges.len() <= LINEAR_MAX {
            self.ranges.iter().enumerate().find_map(|(i, r)| Some((i, r.offset(addr)?)))?
        } else {
            // The last range starting at or below `addr` is the only candidate.
            let k = self.by_base.partition_point(|&(base, _)| base <= addr).checked_sub(1)?;
            let at = self.by_base[k].1;
            (at, self.ranges.get(at)?.offset(addr)?)
        };
        let slot = self.slots.get(at)?;
        Some((&slot.device, slot.name, offset))
    }

    /// A load of `size` bytes at `addr` by vCPU `vcpu`.
    #[inline]
    pub fn read(&self, vm: &C, vcpu: usize, addr: u64, size: u8) -> Result<u64, AccessError> {
        let (device, name, offset) = self.find(addr).ok_or(AccessError::NoDevice)?;
        device.read(vm, vcpu, offset, size).map_err(|_| AccessError::Refused { device: name })
    }

    /// A store of the low `size` bytes of `value` at `addr` by vCPU `vcpu`
    /// (the device sees `value` masked to `size`).
    #[inline]
    pub fn write(&self, vm: &C, vcpu: usize, addr: u64, size: u8, value: u64) -> Result<(), AccessError> {
        let (device, name, offset) = self.find(addr).ok_or(AccessError::NoDevice)?;
        device.write(vm, vcpu, offset, size, value & size_mask(size)).map_err(|_| AccessError::Refused { device: name })
    }

    /// Resets every device, in address order.
    pub fn reset(&self, vm: &C) {
        for &(_, i) in self.by_base.iter() {
            self.slots[i].device.reset(vm);
        }
    }

    /// The registered devices in address order: name, base, size.
    pub fn devices(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        self.by_base.iter().map(|&(base, i)| (self.slots[i].name, base, self.ranges[i].size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::sync::Mutex;

    /// One access as a device saw it: device, vCPU, offset, size, the
    /// value of a store.
    type Seen = (&'static str, usize, u64, u8, Option<u64>);

    /// The fake VM: a log of what each device saw.
    #[derive(Default)]
    struct FakeVm {
        log: Mutex<Vec<Seen>>,
        resets: Mutex<Vec<&'static str>>,
    }

    /// A device that logs every access and reads back its offset plus a
    /// tag, refusing 8-byte accesses.
    struct Logger {
        name: &'static str,
        tag: u64,
        irq: Option<u32>,
    }

    impl MmioDevice<FakeVm> for Logger {
        fn read(&self, vm: &FakeVm, vcpu: usize, offset: u64, size: u8) -> Result<u64, MmioError> {
            vm.log.lock().unwrap().push((self.name, vcpu, offset, size, None));
            if size == 8 {
                return Err(MmioError::BadSize { offset, size });
            }
            Ok(self.tag + offset)
        }
        fn write(&self, vm: &FakeVm, vcpu: usize, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
            vm.log.lock().unwrap().push((self.name, vcpu, offset, size, Some(value)));
            if size == 8 {
                return Err(MmioError::BadSize { offset, size });
            }
            Ok(())
        }
        fn reset(&self, vm: &FakeVm) {
            vm.resets.lock().unwrap().push(self.name);
        }
        fn irq(&self) -> Option<u32> {
            self.irq
        }
    }

    fn logger(name: &'static str, tag: u64) -> Box<dyn MmioDevice<FakeVm>> {
        Box::new(Logger { name, tag, irq: None })
    }

    /// Three devices registered out of order, with a hole between the
    /// second and the third: 0x1000..0x2000, 0x2000..0x2100, 0x9000..0xa000.
    fn bus() -> MmioBus<FakeVm> {
        let mut b = MmioBus::new();
        b.register(0x9000, 0x1000, "c", logger("c", 0xc000_0000)).unwrap();
        b.register(0x1000, 0x1000, "a", logger("a", 0xa000_0000)).unwrap();
        b.register(0x2000, 0x100, "b", logger("b", 0xb000_0000)).unwrap();
        b
    }

    #[test]
    fn dispatches_by_range_with_offsets_from_the_base() {
        let (b, vm) = (bus(), FakeVm::default());
        assert_eq!(b.read(&vm, 0, 0x1234, 4), Ok(0xa000_0234));
        assert_eq!(b.read(&vm, 1, 0x2010, 2), Ok(0xb000_0010));
        assert_eq!(b.read(&vm, 2, 0x9ff8, 1), Ok(0xc000_0ff8));
        let log = vm.log.lock().unwrap().clone();
        assert_eq!(log, [("a", 0, 0x234, 4, None), ("b", 1, 0x10, 2, None), ("c", 2, 0xff8, 1, None)]);
        let names: Vec<_> = b.devices().map(|(n, _, _)| n).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn edges_of_ranges() {
        let (b, vm) = (bus(), FakeVm::default());
        // First and last byte of each device; the byte after "b" is a hole.
        assert_eq!(b.read(&vm, 0, 0x1000, 1), Ok(0xa000_0000));
        assert_eq!(b.read(&vm, 0, 0x1fff, 1), Ok(0xa000_0fff));
        assert_eq!(b.read(&vm, 0, 0x2000, 1), Ok(0xb000_0000));
        assert_eq!(b.read(&vm, 0, 0x20ff, 1), Ok(0xb000_00ff));
        assert_eq!(b.read(&vm, 0, 0x2100, 1), Err(AccessError::NoDevice));
        assert_eq!(b.read(&vm, 0, 0x8fff, 1), Err(AccessError::NoDevice));
        assert_eq!(b.read(&vm, 0, 0x9000, 1), Ok(0xc000_0000));
        assert_eq!(b.read(&vm, 0, 0xa000, 1), Err(AccessError::NoDevice));
        assert_eq!(b.read(&vm, 0, 0xfff, 1), Err(AccessError::NoDevice));
        assert_eq!(b.read(&vm, 0, 0, 1), Err(AccessError::NoDevice));
        assert_eq!(b.read(&vm, 0, u64::MAX, 1), Err(AccessError::NoDevice));
    }

    #[test]
    fn an_access_to_no_device_reaches_none() {
        let vm = FakeVm::default();
        let empty = MmioBus::<FakeVm>::new();
        assert_eq!(empty.read(&vm, 0, 0x1000, 4), Err(AccessError::NoDevice));
        assert_eq!(bus().write(&vm, 0, 0x5000, 4, 1), Err(AccessError::NoDevice));
        assert!(vm.log.lock().unwrap().is_empty());
    }

    #[test]
    fn sizes_and_values_pass_through_and_refusals_name_the_device() {
        let (b, vm) = (bus(), FakeVm::default());
        for size in [1u8, 2, 4] {
            assert_eq!(b.write(&vm, 3, 0x2004, size, 0x1122_3344_5566_7788), Ok(()));
        }
        assert_eq!(b.write(&vm, 3, 0x2008, 8, u64::MAX), Err(AccessError::Refused { device: "b" }));
        assert_eq!(b.read(&vm, 0, 0x1000, 8), Err(AccessError::Refused { device: "a" }));
        let log = vm.log.lock().unwrap().clone();
        assert_eq!(
            log,
            [
                ("b", 3, 4, 1, Some(0x88)),
                ("b", 3, 4, 2, Some(0x7788)),
                ("b", 3, 4, 4, Some(0x5566_7788)),
                ("b", 3, 8, 8, Some(u64::MAX)),
                ("a", 0, 0, 8, None),
            ]
        );
    }

    #[test]
    fn overlapping_empty_and_wrapping_ranges_are_refused() {
        let mut b = bus();
        let refused = |b: &mut MmioBus<FakeVm>, base, size| b.register(base, size, "x", logger("x", 0)).unwrap_err();
        // Inside, across either edge, covering a whole device.
        for (base, size, other) in
            [(0x1800, 0x10, "a"), (0xfff, 2, "a"), (0x20ff, 0x100, "b"), (0x8000, 0x3000, "c"), (0, u64::MAX, "a")]
        {
            assert_eq!(refused(&mut b, base, size), RegisterError::Overlaps { name: "x", base, size, other });
        }
        assert_eq!(refused(&mut b, 0x5000, 0), RegisterError::Empty { name: "x" });
        assert_eq!(
            refused(&mut b, u64::MAX - 0xff, 0x200),
            RegisterError::Wraps { name: "x", base: u64::MAX - 0xff, size: 0x200 }
        );
        let e = refused(&mut b, 0x1f00, 0x200);
        assert_eq!(e.to_string(), "x: MMIO range 0x1f00 + 0x200 overlaps a's");
        // Nothing refused was registered; the holes, touching both
        // neighbours, still take a device.
        assert_eq!(b.devices().count(), 3);
        b.register(0x2100, 0x6f00, "hole", logger("hole", 0)).unwrap();
        b.register(0, 0x1000, "low", logger("low", 0)).unwrap();
        b.register(0xa000, u64::MAX - 0xa000 + 1 - 1, "top", logger("top", 0)).unwrap();
        let vm = FakeVm::default();
        assert_eq!(b.read(&vm, 0, 0x8fff, 4), Ok(0x6eff));
        assert_eq!(b.read(&vm, 0, 0xfff, 4), Ok(0xfff));
        let names: Vec<_> = b.devices().map(|(n, _, _)| n).collect();
        assert_eq!(names, ["low", "a", "b", "hole", "c", "top"]);
    }

    /// Past [`LINEAR_MAX`] devices the search is a binary one: every
    /// edge of 40 devices with holes between some, against a plain scan.
    #[test]
    fn a_large_bus_finds_the_same_devices() {
        let mut b = MmioBus::new();
        let mut expect = Vec::new();
        // Registered from the top down; every third leaves a hole after it.
        let mut base = 0x10_0000u64;
        let mut ranges = Vec::new();
        for i in 0..40 {
            let size = 0x100 * (i % 5 + 1);
            ranges.push((base, size, i));
            base += size + if i % 3 == 0 { 0x80 } else { 0 };
        }
        for &(base, size, i) in ranges.iter().rev() {
            b.register(base, size, "dev", logger("dev", i << 32)).unwrap();
            expect.push((base, size, i));
        }
        assert!(b.devices().count() > LINEAR_MAX);
        let vm = FakeVm::default();
        let scan =
            |addr: u64| expect.iter().find(|(b, s, _)| addr >= *b && addr - b < *s).map(|e| (e.2 << 32) + addr - e.0);
        for &(base, size, _) in ranges.iter() {
            for addr in [base - 1, base, base + 1, base + size - 1, base + size, base + size + 0x7f] {
                assert_eq!(b.read(&vm, 0, addr, 1).ok(), scan(addr), "{addr:#x}");
            }
        }
        assert_eq!(b.read(&vm, 0, 0, 1), Err(AccessError::NoDevice));
    }

    #[test]
    fn one_interrupt_line_has_one_device() {
        let mut b = bus();
        b.register(0x3000, 0x10, "uart", Box::new(Logger { name: "uart", tag: 0, irq: Some(33) })).unwrap();
        let e = b.register(0x4000, 0x10, "rtc", Box::new(Logger { name: "rtc", tag: 0, irq: Some(33) }));
        assert_eq!(e, Err(RegisterError::SharedIrq { name: "rtc", intid: 33, other: "uart" }));
        b.register(0x4000, 0x10, "rtc", Box::new(Logger { name: "rtc", tag: 0, irq: Some(34) })).unwrap();
    }

    #[test]
    fn reset_reaches_every_device_in_address_order() {
        let (b, vm) = (bus(), FakeVm::default());
        b.reset(&vm);
        assert_eq!(*vm.resets.lock().unwrap(), ["a", "b", "c"]);
    }

    /// A device with no state of its own: what it reads, writes and resets
    /// lives in the VM the bus hands it.
    #[test]
    fn devices_find_their_state_in_the_vm() {
        struct Counter;
        struct Vm {
            count: RefCell<u64>,
        }
        impl MmioDevice<Vm> for Counter {
            fn read(&self, vm: &Vm, _: usize, _: u64, _: u8) -> Result<u64, MmioError> {
                Ok(*vm.count.borrow())
            }
            fn write(&self, vm: &Vm, _: usize, _: u64, _: u8, value: u64) -> Result<(), MmioError> {
                *vm.count.borrow_mut() += value;
                Ok(())
            }
            fn reset(&self, vm: &Vm) {
                *vm.count.borrow_mut() = 0;
            }
            fn irq(&self) -> Option<u32> {
                None
            }
        }
        let mut b = MmioBus::new();
        b.register(0x100, 4, "counter", Box::new(Counter)).unwrap();
        let vm = Vm { count: RefCell::new(0) };
        b.write(&vm, 0, 0x100, 4, 5).unwrap();
        b.write(&vm, 0, 0x100, 4, 2).unwrap();
        assert_eq!(b.read(&vm, 0, 0x100, 4), Ok(7));
        b.reset(&vm);
        assert_eq!(b.read(&vm, 0, 0x100, 4), Ok(0));
    }
}
