//! `platform::find_device` against the fixtures of `platform.rs` (values
//! read with `dtc -I dtb -O dts`).

use shared::platform::*;

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

macro_rules! fixture {
    ($name:literal) => {{
        static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!("fixtures/", $name)));
        &BLOB.0
    }};
}

#[test]
fn qemu_virt_pl031_by_compatible_and_by_reg() {
    for blob in [fixture!("qemu-virt-gicv3.dtb"), fixture!("qemu-virt-gicv2.dtb")] {
        let by_compat = find_device(blob, DeviceMatch::Compatible("arm,pl031")).unwrap().unwrap();
        assert_eq!(by_compat.region, Region { base: 0x0901_0000, size: 0x1000 });
        let names: Vec<&str> = by_compat.compatible.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["arm,pl031", "arm,primecell"]);
        // SPI 2, level high.
        assert_eq!(by_compat.interrupts.as_slice(), &[0, 2, 4]);
        let by_reg = find_device(blob, DeviceMatch::RegBase(0x0901_0000)).unwrap().unwrap();
        assert_eq!(by_reg, by_compat);
        // The second string of a list matches too; absent things are None.
        assert!(find_device(blob, DeviceMatch::Compatible("arm,primecell")).unwrap().is_some());
        assert_eq!(find_device(blob, DeviceMatch::Compatible("no,such-device")).unwrap(), None);
        assert_eq!(find_device(blob, DeviceMatch::RegBase(0x0901_0004)).unwrap(), None);
    }
}

#[test]
fn board_uart_nested_in_soc_and_disabled() {
    // Pine64+: serial@1c29000 (UART4) under /soc, status "disabled".
    let blob = fixture!("sun50i-a64-pine64-plus.dtb");
    let d = find_device(blob, DeviceMatch::RegBase(0x01c2_9000)).unwrap().unwrap();
    assert_eq!(d.region, Region { base: 0x01c2_9000, size: 0x400 });
    assert_eq!(d.compatible.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["snps,dw-apb-uart"]);
    assert_eq!(d.interrupts.as_slice(), &[0, 4, 4]);
    assert_eq!(d.props.as_slice(), &[("reg-shift", 2), ("reg-io-width", 4)]);
}

#[test]
fn nodes_under_chosen_are_not_devices() {
    // passthrough@9040000 in /chosen/hypervisor has reg 0x9040000 but is a
    // VM description, not the device.
    let blob = fixture!("hypervisor-vms.dtb");
    assert_eq!(find_device(blob, DeviceMatch::RegBase(0x0904_0000)).unwrap(), None);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let junk = Aligned([0xd0u8, 0x0d, 0xfe, 0xed, 0, 0, 0, 8]);
    assert!(find_device(&junk.0, DeviceMatch::RegBase(0)).is_err());
    assert_eq!(find_device(&[], DeviceMatch::RegBase(0)), Err(DtbError::Missing));
}
