//! `vmconf`: turns a VM configuration (TOML, `docs/vm-config.md`) into the
//! `/chosen/hypervisor` DTS fragment and the QEMU loader arguments (or
//! U-Boot load commands) that put the VM images in host RAM.
//!
//! ```text
//! vmconf --config firmware/qemu-two-vms.toml --images DIR
//!        [--dtb machine.dtb] [--ram-base 0x40000000 --ram-size 1G --cpus 2]
//!        [--ipa-bits 40] [--load-base 0x48000000]
//!        [--out-dts out.dtsi] [--out-qemu-args out.args] [--out-uboot out.cmds]
//!        [--out-uboot-script vms.cmd]
//! ```
//!
//! `--out-uboot-script`: U-Boot script lines that load the images and add the
//! `/chosen/hypervisor` nodes to the working FDT with `fdt mknode`/`fdt set`
//! (inserted into `firmware/uboot/boot.cmd` by `scripts/image`).
//!
//! `--ram-*`/`--cpus` describe the machine, or override what `--dtb` says.
//! Any error: the message on stderr, exit code 2.

extern crate alloc;

mod config;
mod emit;
mod images;

/// The hypervisor's own validator, compiled in here so that the tool and the
/// hypervisor refuse exactly the same VMs. It is pure `core` + `alloc` code
/// that needs only `shared`; including the file (rather than depending on the
/// whole EL2 crate) keeps this host tool independent of the arch code.
#[path = "../../../hypervisor/src/vmspec.rs"]
#[allow(dead_code)]
mod vmspec;

/// The rules of `[[shm]]` regions, from the hypervisor as `vmspec`.
#[path = "../../../hypervisor/src/shm.rs"]
#[allow(dead_code)]
mod shm;

/// The rules of `[[switch]]` tables, from the hypervisor as `vmspec`.
#[path = "../../../hypervisor/src/switchconf.rs"]
#[allow(dead_code)]
mod switchconf;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use shared::platform::{Disk, Passthrough, Platform, Region, VmSpec};

use config::{ConfigError, VmConfig, parse_number, parse_size};
use images::{Dirs, Placer};
use vmspec::MachineFacts;

const USAGE: &str = "usage: vmconf --config FILE [--images DIR] \
[--dtb FILE] [--ram-base ADDR --ram-size SIZE --cpus N] [--ipa-bits N] [--load-base ADDR] \
[--out-dts FILE] [--out-qemu-args FILE] [--out-uboot FILE] [--out-uboot-script FILE] [--allow-invalid]";

/// Default guest-physical address size: what a Cortex-A53 supports.
const DEFAULT_IPA_BITS: u32 = 40;
/// Default distance from the start of RAM to the first image: room for the
/// hypervisor, its early heap and the DTB (QEMU puts it 128 MiB into RAM).
const DEFAULT_LOAD_OFFSET: u64 = 128 << 20;

#[derive(Default)]
struct Args {
    config: Option<PathBuf>,
    images: Option<PathBuf>,
    ram_base: Option<u64>,
    ram_size: Option<u64>,
    cpus: Option<u32>,
    dtb: Option<PathBuf>,
    ipa_bits: Option<u32>,
    load_base: Option<u64>,
    out_dts: Option<PathBuf>,
    out_qemu_args: Option<PathBuf>,
    out_uboot: Option<PathBuf>,
    out_uboot_script: Option<PathBuf>,
    /// `--allow-invalid`: emit VMs that fail validation anyway (with the
    /// errors as warnings), so tests can check that the hypervisor itself
    /// refuses them.
    allow_invalid: bool,
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        if flag == "--allow-invalid" {
            a.allow_invalid = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("vmconf: {flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("vmconf: {flag}: {value:?} is not {what}");
        match flag.as_str() {
            "--config" => a.config = Some(value.into()),
            "--images" => a.images = Some(value.into()),
            "--dtb" => a.dtb = Some(value.into()),
            "--out-dts" => a.out_dts = Some(value.into()),
            "--out-qemu-args" => a.out_qemu_args = Some(value.into()),
            "--out-uboot" => a.out_uboot = Some(value.into()),
            "--out-uboot-script" => a.out_uboot_script = Some(value.into()),
            "--ram-base" => a.ram_base = Some(parse_number(&value).ok_or_else(|| bad("an address"))?),
            "--load-base" => a.load_base = Some(parse_number(&value).ok_or_else(|| bad("an address"))?),
            "--ram-size" => a.ram_size = Some(parse_size(&value).ok_or_else(|| bad("a size (use 1G, 512M, ...)"))?),
            "--cpus" => a.cpus = Some(value.parse().map_err(|_| bad("a number"))?),
            "--ipa-bits" => a.ipa_bits = Some(value.parse().map_err(|_| bad("a number"))?),
            _ => return Err(format!("vmconf: unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn run(argv: Vec<String>) -> Result<(), String> {
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let args = parse_args(argv)?;
    let Some(config_path) = args.config.clone() else {
        return Err(format!("vmconf: --config is required\n{USAGE}"));
    };
    let (mut machine, load_base) = machine_facts(&args)?;
    let src = config_path.display().to_string();
    let text = std::fs::read_to_string(&config_path).map_err(|e| format!("{src}: {e}"))?;
    let confs = config::parse(&text).map_err(|e| format!("{src}: {e}"))?;
    let shm_confs = config::parse_shm(&text).map_err(|e| format!("{src}: {e}"))?;
    let switch_confs = config::parse_switch(&text).map_err(|e| format!("{src}: {e}"))?;

    let dirs = Dirs {
        images: args.images.clone(),
        cache: std::env::var_os("EL2_CACHE").map_or_else(|| PathBuf::from(".cache"), PathBuf::from),
        config_dir: config_path.parent().map_or_else(PathBuf::new, Path::to_path_buf),
    };
    let mut placer = Placer::new(load_base);
    let mut specs = Vec::new();
    for (i, conf) in confs.iter().enumerate() {
        let err = |field: &str, message: String| {
            let e = ConfigError { vm: Some((i, Some(conf.name.clone()))), field: field.into(), message };
            format!("{src}: {e}")
        };
        let kernel = images::resolve(&conf.kernel, false, &dirs).map_err(|m| err("kernel", m))?;
        let kernel = placer.place(&kernel).map_err(|m| err("kernel", m))?;
        let initrd = match &conf.initrd {
            None => None,
            Some(r) => {
                let path = images::resolve(r, true, &dirs).map_err(|m| err("initrd", m))?;
                Some(placer.place(&path).map_err(|m| err("initrd", m))?)
            }
        };
        specs.push(vm_spec(conf, kernel, initrd));
    }
    // Disk images after every kernel and initrd, one copy per disk: the
    // device uses its image in place, so a writable one is nobody else's.
    let mut disk_files: Vec<(PathBuf, usize, usize, bool)> = Vec::new();
    for (i, conf) in confs.iter().enumerate() {
        let err = |field: &str, message: String| {
            let e = ConfigError { vm: Some((i, Some(conf.name.clone()))), field: field.into(), message };
            format!("{src}: {e}")
        };
        for (k, d) in conf.disks.iter().enumerate() {
            let field = format!("disk[{k}].image");
            let path =
                images::resolve(&config::ImageRef::Path(d.image.clone()), false, &dirs).map_err(|m| err(&field, m))?;
            let path = path.canonicalize().map_err(|e| err(&field, format!("{}: {e}", path.display())))?;
            let other_disk = disk_files.iter().find(|(p, _, _, ro)| *p == path && (!d.readonly || !ro));
            if let Some((_, j, e, _)) = other_disk {
                let message = format!(
                    "{} is also vm[{j}] {:?}'s disk[{e}]: a writable disk is used in place, so its file \
                     cannot be shared (make every disk on it readonly, or give each a copy)",
                    path.display(),
                    confs[*j].name
                );
                return Err(err(&field, message));
            }
            if !d.readonly && placer.placed.iter().any(|p| p.path == path) {
                let message = format!(
                    "{} is also a kernel or initrd: a writable disk is used in place, so its file cannot be shared",
                    path.display()
                );
                return Err(err(&field, message));
            }
            disk_files.push((path.clone(), i, k, d.readonly));
            let (base, size) = placer.place_copy(&path).map_err(|m| err(&field, m))?;
            let _ = specs[i].disks.push(Disk { region: Region { base, size }, readonly: d.readonly });
        }
        for (k, n) in conf.nets.iter().enumerate() {
            let mac = n.mac.unwrap_or_else(|| shared::platform::default_mac(&conf.name, k));
            let switch =
                heapless::String::try_from(n.switch.as_str()).map_err(|_| err("net.switch", "too long".into()))?;
            let _ = specs[i].nets.push(shared::platform::Net { switch, mac });
        }
    }

    // Images must lie in RAM the hypervisor does not use: the region below
    // --load-base is the hypervisor's (see DEFAULT_LOAD_OFFSET).
    for r in machine.ram.clone() {
        if r.base < load_base {
            let size = load_base.min(r.base.saturating_add(r.size)) - r.base;
            machine.reserved.push(Region { base: r.base, size });
        }
    }
    let results = vmspec::validate(&specs, &machine);
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| {
            let c = ConfigError {
                vm: Some((e.vm, Some(confs[e.vm].name.clone()))),
                field: e.field.toml_name().to_string(),
                message: e.problem.to_string(),
            };
            format!("{src}: {c}")
        })
        .collect();
    let shms = shm_specs(&shm_confs).map_err(|e| format!("{src}: {e}"))?;
    let mut errors = errors;
    errors.extend(shm::validate(&shms, &specs).iter().filter_map(|r| r.as_ref().err()).map(|e| format!("{src}: {e}")));
    let switches = switch_specs(&switch_confs).map_err(|e| format!("{src}: {e}"))?;
    errors.extend(
        switchconf::validate(&switches, &specs).iter().filter_map(|r| r.as_ref().err()).map(|e| format!("{src}: {e}")),
    );
    if !errors.is_empty() {
        if !args.allow_invalid {
            return Err(errors.join("\n"));
        }
        for e in &errors {
            eprintln!("vmconf: warning (--allow-invalid): {e}");
        }
    }

    let name = config_path.file_name().map_or(src.clone(), |n| n.to_string_lossy().into_owned());
    let pairs: Vec<(VmConfig, VmSpec)> = confs.into_iter().zip(specs).collect();
    write_out(&args.out_dts, &emit::dts(&name, &pairs, &shms, &switches))?;
    write_out(&args.out_qemu_args, &emit::qemu_args(&placer.placed))?;
    if args.out_uboot.is_some() {
        let cmds = emit::uboot(&placer.placed).map_err(|m| format!("{src}: {m}"))?;
        write_out(&args.out_uboot, &cmds)?;
    }
    if args.out_uboot_script.is_some() {
        let script =
            emit::uboot_script(&name, &pairs, &shms, &switches, &placer.placed).map_err(|m| format!("{src}: {m}"))?;
        write_out(&args.out_uboot_script, &script)?;
    }
    Ok(())
}

fn write_out(path: &Option<PathBuf>, text: &str) -> Result<(), String> {
    match path {
        None => Ok(()),
        Some(p) => std::fs::write(p, text).map_err(|e| format!("vmconf: {}: {e}", p.display())),
    }
}

/// The machine from `--dtb` and/or `--ram-base/--ram-size/--cpus` (which
/// override the DTB: board DTBs leave `/memory` for U-Boot to fill in); and
/// the load base.
fn machine_facts(args: &Args) -> Result<(MachineFacts, u64), String> {
    let ipa_bits = args.ipa_bits.unwrap_or(DEFAULT_IPA_BITS);
    let mut machine = match &args.dtb {
        Some(path) => {
            let blob = std::fs::read(path).map_err(|e| format!("vmconf: {}: {e}", path.display()))?;
            let platform = Platform::from_fdt(&blob).map_err(|e| format!("vmconf: {}: {e}", path.display()))?;
            facts_from_platform(&platform, ipa_bits)
        }
        None => {
            if args.ram_size.is_none() || args.cpus.is_none() {
                return Err(format!("vmconf: give --dtb, or --ram-size and --cpus\n{USAGE}"));
            }
            MachineFacts::new(Vec::new(), 0, ipa_bits)
        }
    };
    if let Some(size) = args.ram_size {
        let base = args.ram_base.unwrap_or(shared::layout::RAM_BASE);
        machine.ram = vec![Region { base, size }];
    }
    if let Some(cpus) = args.cpus {
        machine.nr_pcpus = cpus;
    }
    let Some(first) = machine.ram.first() else {
        let dtb = args.dtb.as_deref().unwrap_or(Path::new("")).display();
        return Err(format!(
            "vmconf: {dtb}: no /memory size (U-Boot fills it in on boards): give --ram-base and --ram-size"
        ));
    };
    let load_base = args.load_base.unwrap_or(first.base + DEFAULT_LOAD_OFFSET);
    Ok((machine, load_base))
}

/// RAM, CPUs and what the hypervisor keeps (reserved memory, its console UART, the GIC).
fn facts_from_platform(p: &Platform, ipa_bits: u32) -> MachineFacts {
    let mut m = MachineFacts::new(p.memory.to_vec(), p.cpus.len() as u32, ipa_bits);
    m.reserved.extend(p.reserved.iter().copied());
    if let Some(uart) = &p.uart {
        m.reserved.push(uart.region);
        m.reserved_intids.extend(uart.irq.map(|i| i.intid()));
    }
    if let Some(gic) = &p.gic {
        m.reserved.push(gic.gicd);
        m.reserved.extend(gic.gicr.iter().copied());
        m.reserved.extend(gic.gicc.iter().chain(&gic.gich).chain(&gic.gicv).copied());
    }
    m
}

/// The `ShmSpec`s the hypervisor will read back from the DTB; a name
/// that cannot be one (too long to hold) is refused here, the rest by
/// `shm::validate`.
fn shm_specs(confs: &[config::ShmConfig]) -> Result<Vec<shared::platform::ShmSpec>, String> {
    let mut out = Vec::new();
    for (i, c) in confs.iter().enumerate() {
        let err = |field: &str, message: String| format!("shm[{i}].{field}: {message}");
        vmspec::check_name(&c.name).map_err(|p| err("name", p.to_string()))?;
        let mut spec = shared::platform::ShmSpec {
            name: c.name.as_str().try_into().unwrap_or_default(),
            size: c.size,
            vms: heapless::Vec::new(),
        };
        if c.vms.len() > shared::platform::MAX_SHM_PEERS {
            let message = format!("names {} VMs, at most {} allowed", c.vms.len(), shared::platform::MAX_SHM_PEERS);
            return Err(err("vms", message));
        }
        for v in &c.vms {
            let name = heapless::String::try_from(v.as_str())
                .map_err(|_| err("vms", format!("{v:?} is not the name of a VM of this configuration")))?;
            let _ = spec.vms.push(name);
        }
        out.push(spec);
    }
    Ok(out)
}

/// The `SwitchSpec`s the hypervisor will read back from the DTB; what
/// cannot be one (a name too long to hold, a backlog beyond 32 bits) is
/// refused here, the rest by `switchconf::validate`.
fn switch_specs(confs: &[config::SwitchConfig]) -> Result<Vec<shared::platform::SwitchSpec>, String> {
    let mut out = Vec::new();
    for (i, c) in confs.iter().enumerate() {
        let err = |field: &str, message: String| format!("switch[{i}].{field}: {message}");
        let name = heapless::String::try_from(c.name.as_str())
            .map_err(|_| err("name", format!("{:?}: a switch name is 1 to 15 of a-z, 0-9, - and _", c.name)))?;
        let backlog = match c.backlog {
            None => None,
            Some(n) => Some(
                u32::try_from(n)
                    .map_err(|_| err("backlog", format!("{n} frames, at most {} allowed", switchconf::MAX_BACKLOG)))?,
            ),
        };
        out.push(shared::platform::SwitchSpec { name, rate: c.rate, burst: c.burst, backlog });
    }
    Ok(out)
}

/// The `VmSpec` the hypervisor will read back from the DTB. Lengths were
/// checked by `config::parse`, so the fixed-capacity pushes cannot fail.
fn vm_spec(c: &VmConfig, kernel: (u64, u64), initrd: Option<(u64, u64)>) -> VmSpec {
    let region = |(base, size): (u64, u64)| Region { base, size };
    let mut vm = VmSpec {
        name: c.name.as_str().try_into().unwrap_or_default(),
        memory: Region { base: c.ipa_base, size: c.memory },
        vcpus: c.vcpus,
        kernel: region(kernel),
        initrd: initrd.map(region),
        bootargs: c.cmdline.as_str().try_into().unwrap_or_default(),
        console: c.console,
        weight: c.weight,
        cap: c.cap,
        ..Default::default()
    };
    vm.affinity.extend(c.pin.iter().copied());
    for d in &c.passthrough {
        let mut p = Passthrough {
            region: Region { base: d.base, size: d.size },
            guest_base: d.guest_reg.unwrap_or(d.base),
            ..Default::default()
        };
        p.interrupts.extend(d.interrupts.iter().copied());
        let _ = vm.passthrough.push(p);
    }
    vm
}
