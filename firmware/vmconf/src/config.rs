//! The TOML VM configuration (`docs/vm-config.md`), read key by key so that
//! every error names the VM and the field.

use toml::{Table, Value};

/// Which image a `kernel` or `initrd` key names, before it is looked up on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// `"guest-kernel"`: `IMAGES/guest-kernel.bin`.
    GuestKernel,
    /// `"linux"`: the cached Linux `Image` (or `initramfs.cpio.gz` for an initrd).
    Linux,
    /// Any other value: a path, relative to the configuration file.
    Path(String),
}

/// A pass-through device, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub base: u64,
    pub size: u64,
    pub guest_reg: Option<u64>,
    pub interrupts: Vec<u32>,
}

/// A `[[vm.disk]]` table, as written: an image file (relative to the
/// configuration file) that the VM's virtio-blk disk uses in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    pub image: String,
    pub readonly: bool,
}

/// A `[[vm.net]]` table, as written: the switch the VM's virtio-net card
/// is plugged into, and its MAC address if given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    pub switch: String,
    pub mac: Option<[u8; 6]>,
}

/// One `[[vm]]` table, as written (not yet validated against the machine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    pub name: String,
    pub kernel: ImageRef,
    pub initrd: Option<ImageRef>,
    pub cmdline: String,
    pub memory: u64,
    pub ipa_base: u64,
    pub vcpus: u32,
    pub pin: Vec<u32>,
    /// The scheduler weight (0: the default).
    pub weight: u32,
    /// The CPU cap in percent of one physical CPU (0: none).
    pub cap: u32,
    pub console: bool,
    pub passthrough: Vec<Device>,
    /// `[[vm.disk]]` tables, in order: disk k is the guest's k-th virtio disk.
    pub disks: Vec<DiskConfig>,
    /// `[[vm.net]]` tables, in order: card k is the guest's k-th network card.
    pub nets: Vec<NetConfig>,
}

/// A `[[shm]]` table, as written: a shared-memory region and the names
/// of the VMs that share it (docs/vm-config.md, "Shared memory").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmConfig {
    pub name: String,
    pub size: u64,
    pub vms: Vec<String>,
}

/// A `[[switch]]` table, as written: limits of the virtual switch `name`
/// for each of its ports (docs/vm-config.md, "Network cards").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchConfig {
    pub name: String,
    /// Bytes per second.
    pub rate: Option<u64>,
    /// Bytes.
    pub burst: Option<u64>,
    /// Frames.
    pub backlog: Option<u64>,
}

/// A configuration error: which VM (index and name, when known), which field, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub vm: Option<(usize, Option<String>)>,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((i, name)) = &self.vm {
            write!(f, "vm[{i}]")?;
            if let Some(n) = name {
                write!(f, " {n:?}")?;
            }
            write!(f, ": ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

const VM_KEYS: &[&str] = &[
    "name",
    "kernel",
    "initrd",
    "cmdline",
    "memory",
    "ipa_base",
    "vcpus",
    "pin",
    "weight",
    "cap",
    "console",
    "passthrough",
    "disk",
    "net",
];
const DEVICE_KEYS: &[&str] = &["reg", "guest_reg", "interrupts"];
const DISK_KEYS: &[&str] = &["image", "readonly"];
const NET_KEYS: &[&str] = &["switch", "mac"];
/// Longest command line: `VmSpec::bootargs` holds 255 bytes.
pub const MAX_CMDLINE: usize = 255;

/// Parses a whole configuration file.
pub fn parse(text: &str) -> Result<Vec<VmConfig>, ConfigError> {
    let top: Table = toml::from_str(text).map_err(|e| ConfigError {
        vm: None,
        field: String::new(),
        message: format!("not valid TOML: {}", e.to_string().trim_end()),
    })?;
    let plain = |field: &str, message: String| ConfigError { vm: None, field: field.into(), message };
    if let Some(key) = top.keys().find(|k| !["vm", "shm", "switch"].contains(&k.as_str())) {
        return Err(plain(key, "unknown key (the file holds only [[vm]], [[shm]] and [[switch]] tables)".into()));
    }
    let Some(vms) = top.get("vm") else {
        return Err(plain("", "no [[vm]] table".into()));
    };
    let Some(vms) = vms.as_array() else {
        return Err(plain("vm", "must be an array of tables: write [[vm]]".into()));
    };
    if vms.is_empty() {
        return Err(plain("", "no [[vm]] table".into()));
    }
    if vms.len() > shared::platform::MAX_VMS {
        let message = format!("{} VMs, at most {} allowed", vms.len(), shared::platform::MAX_VMS);
        return Err(plain("vm", message));
    }
    vms.iter().enumerate().map(|(i, v)| parse_vm(i, v)).collect()
}

const SHM_KEYS: &[&str] = &["name", "size", "vms"];

/// The `[[KEY]]` tables of a configuration file (none is fine), each
/// checked to be a table with only `known` keys, at most `max` of them
/// (`noun` counts them in that error): the shapes `[[shm]]` and
/// `[[switch]]` share.
fn top_level_tables(text: &str, key: &str, noun: &str, max: usize, known: &[&str]) -> Result<Vec<Table>, ConfigError> {
    let mut top: Table = toml::from_str(text).map_err(|e| ConfigError {
        vm: None,
        field: String::new(),
        message: format!("not valid TOML: {}", e.to_string().trim_end()),
    })?;
    let err = |field: String, message: String| ConfigError { vm: None, field, message };
    let items = match top.remove(key) {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(v) => return Err(err(key.into(), wrong_type(&format!("an array of tables: write [[{key}]]"), &v))),
    };
    if items.len() > max {
        return Err(err(key.into(), format!("{} {noun}, at most {max} allowed", items.len())));
    }
    let mut out = Vec::new();
    for (i, v) in items.into_iter().enumerate() {
        let Value::Table(t) = v else {
            return Err(err(format!("{key}[{i}]"), wrong_type("a table", &v)));
        };
        if let Some(k) = t.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(err(format!("{key}[{i}].{k}"), format!("unknown key (known: {})", known.join(", "))));
        }
        out.push(t);
    }
    Ok(out)
}

/// The `[[shm]]` tables of a configuration file (none is fine). Their
/// rules against the VMs are `hypervisor::shm::validate`'s; here only the
/// shapes: errors name the region by index (`shm[1].size: ...`).
pub fn parse_shm(text: &str) -> Result<Vec<ShmConfig>, ConfigError> {
    let err = |field: String, message: String| ConfigError { vm: None, field, message };
    let mut out = Vec::new();
    for (i, t) in top_level_tables(text, "shm", "regions", shared::platform::MAX_SHM, SHM_KEYS)?.iter().enumerate() {
        let f = |key: &str| format!("shm[{i}].{key}");
        let name = match t.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(err(f("name"), wrong_type("a string", v))),
            None => return Err(err(f("name"), "missing".into())),
        };
        let size = match t.get("size") {
            Some(Value::Integer(n)) if *n >= 0 => *n as u64,
            Some(Value::String(s)) => {
                parse_size(s).ok_or_else(|| err(f("size"), format!("{s:?} is not a size (use 64K, 1M, ...)")))?
            }
            Some(v) => return Err(err(f("size"), wrong_type("a size like \"64K\"", v))),
            None => return Err(err(f("size"), "missing".into())),
        };
        let vms = match t.get("vms") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(err(f("vms"), wrong_type("an array of VM names", v))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => return Err(err(f("vms"), wrong_type("an array of VM names", v))),
            None => return Err(err(f("vms"), "missing".into())),
        };
        out.push(ShmConfig { name, size, vms });
    }
    Ok(out)
}

const SWITCH_KEYS: &[&str] = &["name", "rate", "burst", "backlog"];

/// The `[[switch]]` tables of a configuration file (none is fine). Their
/// rules against the VMs are `hypervisor::switchconf::validate`'s; here
/// only the shapes: errors name the table by index (`switch[0].rate: ...`).
pub fn parse_switch(text: &str) -> Result<Vec<SwitchConfig>, ConfigError> {
    let err = |field: String, message: String| ConfigError { vm: None, field, message };
    let mut out = Vec::new();
    let tables = top_level_tables(text, "switch", "tables", shared::platform::MAX_SWITCHES, SWITCH_KEYS)?;
    for (i, t) in tables.iter().enumerate() {
        let f = |key: &str| format!("switch[{i}].{key}");
        let name = match t.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(err(f("name"), wrong_type("a switch name", v))),
            None => return Err(err(f("name"), "missing".into())),
        };
        // A number of bytes, or a size with a K/M/G suffix.
        let bytes = |key: &str| -> Result<Option<u64>, ConfigError> {
            match t.get(key) {
                None => Ok(None),
                Some(Value::Integer(n)) if *n >= 0 => Ok(Some(*n as u64)),
                Some(Value::String(s)) => parse_size(s)
                    .map(Some)
                    .ok_or_else(|| err(f(key), format!("{s:?} is not a size (use 256K, 64M, ...)"))),
                Some(v) => Err(err(f(key), wrong_type("a size like \"64M\"", v))),
            }
        };
        let rate = bytes("rate")?;
        let burst = bytes("burst")?;
        let backlog = match t.get("backlog") {
            None => None,
            Some(Value::Integer(n)) if *n >= 0 => Some(*n as u64),
            Some(v) => return Err(err(f("backlog"), wrong_type("a number of frames", v))),
        };
        out.push(SwitchConfig { name, rate, burst, backlog });
    }
    Ok(out)
}

/// Reads the keys of one VM table; errors carry the VM's index and name.
struct VmReader<'a> {
    index: usize,
    name: Option<String>,
    table: &'a Table,
}

impl VmReader<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError { vm: Some((self.index, self.name.clone())), field: field.into(), message: message.into() }
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(key, wrong_type("a string", v))),
        }
    }

    fn required_string(&self, key: &str) -> Result<String, ConfigError> {
        self.string(key)?.ok_or_else(|| self.err(key, "missing"))
    }

    fn int(&self, field: &str, v: &Value, max: u64) -> Result<u64, ConfigError> {
        match v {
            Value::Integer(n) if *n >= 0 && *n as u64 <= max => Ok(*n as u64),
            Value::Integer(n) => Err(self.err(field, format!("{n} is out of range 0..={max:#x}"))),
            v => Err(self.err(field, wrong_type("an integer", v))),
        }
    }

    fn int_list(&self, field: &str, v: &Value, max: u64) -> Result<Vec<u64>, ConfigError> {
        let Value::Array(items) = v else {
            return Err(self.err(field, wrong_type("an array of integers", v)));
        };
        items.iter().map(|x| self.int(field, x, max)).collect()
    }
}

fn parse_vm(index: usize, v: &Value) -> Result<VmConfig, ConfigError> {
    let Value::Table(table) = v else {
        let r = VmReader { index, name: None, table: &Table::new() };
        return Err(r.err("", wrong_type("a table", v)));
    };
    let mut r = VmReader { index, name: None, table };
    let name = r.required_string("name")?;
    if let Err(p) = crate::vmspec::check_name(&name) {
        return Err(r.err("name", p.to_string()));
    }
    r.name = Some(name.clone());
    if let Some(key) = table.keys().find(|k| !VM_KEYS.contains(&k.as_str())) {
        return Err(r.err(key, format!("unknown key (known: {})", VM_KEYS.join(", "))));
    }

    let kernel = image_ref(&r.required_string("kernel")?);
    let initrd = r.string("initrd")?.map(|s| image_ref(&s));
    let cmdline = r.string("cmdline")?.unwrap_or_default();
    if cmdline.len() > MAX_CMDLINE {
        let message = format!("{} bytes long, at most {MAX_CMDLINE} allowed", cmdline.len());
        return Err(r.err("cmdline", message));
    }
    let memory = match table.get("memory") {
        None => return Err(r.err("memory", "missing")),
        // A bare number is bytes; one too small to be a VM's RAM is surely
        // meant in MiB (`memory = 64`), which would silently be 64 bytes.
        Some(Value::Integer(n)) if *n > 0 && (*n as u64) < MIN_MEMORY => {
            return Err(r.err("memory", format!("{n} is {n} bytes; for {n} MiB write memory = \"{n}M\"")));
        }
        Some(Value::Integer(n)) if *n >= 0 => *n as u64,
        Some(Value::String(s)) => {
            let n = parse_size(s).ok_or_else(|| r.err("memory", format!("{s:?} is not a size (use 64M, 1G, ...)")))?;
            if n > 0 && n < MIN_MEMORY && s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(r.err("memory", format!("{s:?} is {n} bytes; for {n} MiB write memory = \"{n}M\"")));
            }
            n
        }
        Some(v) => {
            let message = format!("{} is not a size (use 64M, 1G, ...)", show(v));
            return Err(r.err("memory", message));
        }
    };
    let ipa_base = match table.get("ipa_base") {
        None => shared::layout::RAM_BASE,
        Some(v) => r.int("ipa_base", v, i64::MAX as u64)?,
    };
    let vcpus = match table.get("vcpus") {
        None => 1,
        Some(v) => r.int("vcpus", v, u32::MAX.into())? as u32,
    };
    let pin = match table.get("pin") {
        None => Vec::new(),
        Some(v) => r.int_list("pin", v, u32::MAX.into())?.into_iter().map(|c| c as u32).collect(),
    };
    if pin.len() > shared::platform::MAX_VCPUS {
        let message = format!("{} entries, at most {} allowed", pin.len(), shared::platform::MAX_VCPUS);
        return Err(r.err("pin", message));
    }
    // Ranges are the hypervisor's rules (vmspec), checked with the others.
    let weight = match table.get("weight") {
        None => 0,
        Some(v) => r.int("weight", v, u32::MAX.into())? as u32,
    };
    let cap = match table.get("cap") {
        None => 0,
        Some(v) => r.int("cap", v, u32::MAX.into())? as u32,
    };
    if weight == 0 && table.contains_key("weight") {
        return Err(r.err("weight", "0 is not in 1..=65535"));
    }
    if cap == 0 && table.contains_key("cap") {
        return Err(r.err("cap", "0% is not allowed (leave cap out for no cap)"));
    }
    let console = match r.string("console")?.as_deref() {
        None | Some("pl011") => true,
        Some("none") => false,
        Some(other) => {
            return Err(r.err("console", format!("{other:?} is not \"pl011\" or \"none\"")));
        }
    };
    let passthrough = match table.get("passthrough") {
        None => Vec::new(),
        Some(Value::Array(devs)) => {
            let mut out = Vec::new();
            for (d, dev) in devs.iter().enumerate() {
                out.push(parse_device(&r, d, dev)?);
            }
            out
        }
        Some(v) => {
            let message = wrong_type("an array of tables: write [[vm.passthrough]]", v);
            return Err(r.err("passthrough", message));
        }
    };
    if passthrough.len() > shared::platform::MAX_PASSTHROUGH {
        let message = format!("{} devices, at most {} allowed", passthrough.len(), shared::platform::MAX_PASSTHROUGH);
        return Err(r.err("passthrough", message));
    }
    let disks = match table.get("disk") {
        None => Vec::new(),
        Some(Value::Array(disks)) => {
            let mut out = Vec::new();
            for (d, disk) in disks.iter().enumerate() {
                out.push(parse_disk(&r, d, disk)?);
            }
            out
        }
        Some(v) => return Err(r.err("disk", wrong_type("an array of tables: write [[vm.disk]]", v))),
    };
    if disks.len() > shared::platform::MAX_DISKS {
        let message = format!("{} disks, at most {} allowed", disks.len(), shared::platform::MAX_DISKS);
        return Err(r.err("disk", message));
    }
    let nets = match table.get("net") {
        None => Vec::new(),
        Some(Value::Array(nets)) => {
            let mut out = Vec::new();
            for (k, net) in nets.iter().enumerate() {
                out.push(parse_net(&r, k, net)?);
            }
            out
        }
        Some(v) => return Err(r.err("net", wrong_type("an array of tables: write [[vm.net]]", v))),
    };
    if nets.len() > shared::platform::MAX_NETS {
        let message = format!("{} network cards, at most {} allowed", nets.len(), shared::platform::MAX_NETS);
        return Err(r.err("net", message));
    }
    Ok(VmConfig {
        name,
        kernel,
        initrd,
        cmdline,
        memory,
        ipa_base,
        vcpus,
        pin,
        weight,
        cap,
        console,
        passthrough,
        disks,
        nets,
    })
}

fn parse_net(r: &VmReader, k: usize, v: &Value) -> Result<NetConfig, ConfigError> {
    let field = |key: &str| format!("net[{k}].{key}");
    let Value::Table(t) = v else {
        return Err(r.err(&format!("net[{k}]"), wrong_type("a table", v)));
    };
    if let Some(key) = t.keys().find(|k| !NET_KEYS.contains(&k.as_str())) {
        return Err(r.err(&field(key), format!("unknown key (known: {})", NET_KEYS.join(", "))));
    }
    let switch = match t.get("switch") {
        None => return Err(r.err(&field("switch"), "missing")),
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(r.err(&field("switch"), wrong_type("a switch name", v))),
    };
    let max = shared::platform::MAX_SWITCH_NAME;
    let good = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if switch.is_empty() || switch.len() > max || !switch.chars().all(good) {
        let message = format!("{switch:?}: a switch name is 1 to {max} of a-z, 0-9, - and _");
        return Err(r.err(&field("switch"), message));
    }
    let mac = match t.get("mac") {
        None => None,
        Some(Value::String(s)) => Some(parse_mac(s).map_err(|m| r.err(&field("mac"), m))?),
        Some(v) => return Err(r.err(&field("mac"), wrong_type("a MAC address like \"52:54:00:12:34:56\"", v))),
    };
    Ok(NetConfig { switch, mac })
}

/// `"52:54:00:12:34:56"`: six hexadecimal octets, a unicast address
/// (IEEE 802: bit 0 of the first octet clear) that is not all zeros.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{s:?}: expected six hexadecimal octets like \"52:54:00:12:34:56\"");
    let octets: Vec<&str> = s.split(':').collect();
    if octets.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (m, o) in mac.iter_mut().zip(octets) {
        if o.len() != 2 {
            return Err(bad());
        }
        *m = u8::from_str_radix(o, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 != 0 {
        return Err(format!("{s:?} is a multicast address: a card's address is unicast (first octet even)"));
    }
    if mac == [0; 6] {
        return Err(format!("{s:?}: the all-zero address is no card's"));
    }
    Ok(mac)
}

fn parse_disk(r: &VmReader, d: usize, v: &Value) -> Result<DiskConfig, ConfigError> {
    let field = |key: &str| format!("disk[{d}].{key}");
    let Value::Table(t) = v else {
        return Err(r.err(&format!("disk[{d}]"), wrong_type("a table", v)));
    };
    if let Some(key) = t.keys().find(|k| !DISK_KEYS.contains(&k.as_str())) {
        return Err(r.err(&field(key), format!("unknown key (known: {})", DISK_KEYS.join(", "))));
    }
    let image = match t.get("image") {
        None => return Err(r.err(&field("image"), "missing")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(v) => return Err(r.err(&field("image"), wrong_type("a file name", v))),
    };
    let readonly = match t.get("readonly") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(v) => return Err(r.err(&field("readonly"), wrong_type("true or false", v))),
    };
    Ok(DiskConfig { image, readonly })
}

fn parse_device(r: &VmReader, d: usize, v: &Value) -> Result<Device, ConfigError> {
    let field = |key: &str| format!("passthrough[{d}].{key}");
    let Value::Table(t) = v else {
        return Err(r.err(&format!("passthrough[{d}]"), wrong_type("a table", v)));
    };
    if let Some(key) = t.keys().find(|k| !DEVICE_KEYS.contains(&k.as_str())) {
        return Err(r.err(&field(key), format!("unknown key (known: {})", DEVICE_KEYS.join(", "))));
    }
    let Some(reg) = t.get("reg") else {
        return Err(r.err(&field("reg"), "missing"));
    };
    let reg = r.int_list(&field("reg"), reg, i64::MAX as u64)?;
    let [base, size] = reg[..] else {
        return Err(r.err(&field("reg"), format!("has {} numbers, expected [base, size]", reg.len())));
    };
    let guest_reg = match t.get("guest_reg") {
        None => None,
        Some(v) => Some(r.int(&field("guest_reg"), v, i64::MAX as u64)?),
    };
    let interrupts: Vec<u32> = match t.get("interrupts") {
        None => Vec::new(),
        Some(v) => r.int_list(&field("interrupts"), v, u32::MAX.into())?.into_iter().map(|i| i as u32).collect(),
    };
    if interrupts.len() > 8 {
        return Err(r.err(&field("interrupts"), format!("{} interrupts, at most 8 allowed", interrupts.len())));
    }
    Ok(Device { base, size, guest_reg, interrupts })
}

fn image_ref(s: &str) -> ImageRef {
    match s {
        "guest-kernel" => ImageRef::GuestKernel,
        "linux" => ImageRef::Linux,
        path => ImageRef::Path(path.into()),
    }
}

/// The least RAM a bare number of bytes may ask for (one 2 MiB block, the
/// hypervisor's RAM granule); smaller ones are refused with a hint.
const MIN_MEMORY: u64 = 2 << 20;

/// `1234`, `64K`, `64M`, `1G` (binary units, either case) to bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift)
}

/// A number as on a command line: decimal or `0x` hex, `_` allowed.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn wrong_type(expected: &str, v: &Value) -> String {
    format!("expected {expected}, found {}", show(v))
}

/// A TOML value, short, for messages.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) => "an array".into(),
        Value::Table(_) => "a table".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_tables_parse_and_name_their_errors() {
        let vm = "[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = \"64M\"\n";
        assert!(parse_switch(vm).unwrap().is_empty());
        let ok = format!(
            "{vm}[[switch]]\nname = \"lan\"\nrate = \"1M\"\nburst = 65536\nbacklog = 64\n[[switch]]\nname = \"b\"\n"
        );
        assert_eq!(
            parse_switch(&ok).unwrap(),
            [
                SwitchConfig { name: "lan".into(), rate: Some(1 << 20), burst: Some(65536), backlog: Some(64) },
                SwitchConfig { name: "b".into(), rate: None, burst: None, backlog: None }
            ]
        );
        assert!(parse(&ok).is_ok(), "a [[switch]] table is not an unknown key");
        let e = |t: &str| parse_switch(&format!("{vm}{t}")).unwrap_err().to_string();
        assert_eq!(e("[[switch]]\nrate = 1\n"), "switch[0].name: missing");
        assert_eq!(
            e("[[switch]]\nname = \"l\"\nrate = \"fast\"\n"),
            "switch[0].rate: \"fast\" is not a size (use 256K, 64M, ...)"
        );
        assert_eq!(
            e("[[switch]]\nname = \"l\"\nburst = -1\n"),
            "switch[0].burst: expected a size like \"64M\", found -1"
        );
        assert_eq!(
            e("[[switch]]\nname = \"l\"\nbacklog = \"64\"\n"),
            "switch[0].backlog: expected a number of frames, found \"64\""
        );
        assert_eq!(
            e("[[switch]]\nname = \"l\"\nmtu = 9000\n"),
            "switch[0].mtu: unknown key (known: name, rate, burst, backlog)"
        );
        assert_eq!(e(&"[[switch]]\nname = \"l\"\n".repeat(5)), "switch: 5 tables, at most 4 allowed");
    }

    #[test]
    fn shm_tables_parse_and_name_their_errors() {
        let vm = "[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = \"64M\"\n";
        assert!(parse_shm(vm).unwrap().is_empty());
        let ok = format!("{vm}[[shm]]\nname = \"ring\"\nsize = \"64K\"\nvms = [\"a\", \"b\"]\n");
        assert_eq!(
            parse_shm(&ok).unwrap(),
            [ShmConfig { name: "ring".into(), size: 0x1_0000, vms: vec!["a".into(), "b".into()] }]
        );
        assert!(parse(&ok).is_ok(), "a [[shm]] table is not an unknown key");
        let e = |t: &str| parse_shm(&format!("{vm}{t}")).unwrap_err().to_string();
        assert_eq!(e("[[shm]]\nname = \"r\"\nvms = [\"a\"]\n"), "shm[0].size: missing");
        assert_eq!(
            e("[[shm]]\nname = \"r\"\nsize = \"x\"\nvms = []\n"),
            "shm[0].size: \"x\" is not a size (use 64K, 1M, ...)"
        );
        assert_eq!(
            e("[[shm]]\nname = \"r\"\nsize = 4096\nvms = [1]\n"),
            "shm[0].vms: expected an array of VM names, found 1"
        );
        assert_eq!(
            e("[[shm]]\nname = \"r\"\nsize = 4096\nvms = []\nirq = 3\n"),
            "shm[0].irq: unknown key (known: name, size, vms)"
        );
        assert_eq!(e(&"[[shm]]\nname = \"r\"\nsize = 4096\nvms = []\n".repeat(5)), "shm: 5 regions, at most 4 allowed");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("123"), Some(123));
        for bad in ["", "M", "64Q", "-1M", "1.5G", "0x10M", "99999999999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x4800_0000"), Some(0x4800_0000));
        assert_eq!(parse_number("1024"), Some(1024));
        assert_eq!(parse_number("0xz"), None);
    }

    #[test]
    fn minimal_vm_gets_defaults() {
        let vms = parse("[[vm]]\nname = \"a\"\nkernel = \"k.bin\"\nmemory = \"64M\"\n").unwrap();
        assert_eq!(
            vms,
            [VmConfig {
                name: "a".into(),
                kernel: ImageRef::Path("k.bin".into()),
                initrd: None,
                cmdline: String::new(),
                memory: 64 << 20,
                ipa_base: 0x4000_0000,
                vcpus: 1,
                pin: vec![],
                weight: 0,
                cap: 0,
                console: true,
                passthrough: vec![],
                disks: vec![],
                nets: vec![],
            }]
        );
    }

    #[test]
    fn errors_name_vm_and_field() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        let vm = "[[vm]]\nname = \"a\"\nkernel = \"guest-kernel\"\nmemory = \"64M\"\n";
        assert_eq!(e(""), "no [[vm]] table");
        assert_eq!(e("x = 1\n"), "x: unknown key (the file holds only [[vm]], [[shm]] and [[switch]] tables)");
        assert_eq!(e("[[vm]]\nkernel = \"k\"\n"), "vm[0]: name: missing");
        assert_eq!(e("[[vm]]\nname = 3\n"), "vm[0]: name: expected a string, found 3");
        assert_eq!(e("[[vm]]\nname = \"A\"\n"), "vm[0]: name: 'A' is not allowed (use a-z, 0-9, '_', '-')");
        assert_eq!(e(&format!("{vm}vcpus = \"2\"\n")), "vm[0] \"a\": vcpus: expected an integer, found \"2\"");
        assert_eq!(e(&format!("{vm}vcpus = -1\n")), "vm[0] \"a\": vcpus: -1 is out of range 0..=0xffffffff");
        assert_eq!(
            e(&format!("{vm}console = \"vga\"\n")),
            "vm[0] \"a\": console: \"vga\" is not \"pl011\" or \"none\""
        );
        assert_eq!(
            e(&format!("{vm}[[vm.passthrough]]\nreg = [1]\n")),
            "vm[0] \"a\": passthrough[0].reg: has 1 numbers, expected [base, size]"
        );
        assert_eq!(
            e(&format!("{vm}[[vm.passthrough]]\nreg = [0x9040000, 0x1000]\nirq = [40]\n")),
            "vm[0] \"a\": passthrough[0].irq: unknown key (known: reg, guest_reg, interrupts)"
        );
        assert_eq!(
            e(&format!("{vm}cmdline = \"{}\"\n", "x".repeat(256))),
            "vm[0] \"a\": cmdline: 256 bytes long, at most 255 allowed"
        );
        assert_eq!(
            e("[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = 1.5\n"),
            "vm[0] \"a\": memory: 1.5 is not a size (use 64M, 1G, ...)"
        );
        assert_eq!(
            e("[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = 64\n"),
            "vm[0] \"a\": memory: 64 is 64 bytes; for 64 MiB write memory = \"64M\""
        );
        assert_eq!(
            e("[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = \"64\"\n"),
            "vm[0] \"a\": memory: \"64\" is 64 bytes; for 64 MiB write memory = \"64M\""
        );
        assert!(e("[[vm]\n").starts_with("not valid TOML: "));
        assert_eq!(e(&format!("{vm}[[vm.disk]]\nreadonly = true\n")), "vm[0] \"a\": disk[0].image: missing");
        assert_eq!(
            e(&format!("{vm}[[vm.disk]]\nimage = \"d.img\"\nreadonly = 1\n")),
            "vm[0] \"a\": disk[0].readonly: expected true or false, found 1"
        );
        assert_eq!(
            e(&format!("{vm}[[vm.disk]]\nimage = \"d.img\"\nsize = 1\n")),
            "vm[0] \"a\": disk[0].size: unknown key (known: image, readonly)"
        );
        assert_eq!(
            e(&format!("{vm}{}", "[[vm.disk]]\nimage = \"d.img\"\n".repeat(5))),
            "vm[0] \"a\": disk: 5 disks, at most 4 allowed"
        );
        assert_eq!(
            e(&format!("{vm}disk = \"d.img\"\n")),
            "vm[0] \"a\": disk: expected an array of tables: write [[vm.disk]], found \"d.img\""
        );
        assert_eq!(e(&format!("{vm}[[vm.net]]\nmac = \"52:54:00:00:00:01\"\n")), "vm[0] \"a\": net[0].switch: missing");
        assert_eq!(
            e(&format!("{vm}[[vm.net]]\nswitch = \"LAN\"\n")),
            "vm[0] \"a\": net[0].switch: \"LAN\": a switch name is 1 to 15 of a-z, 0-9, - and _"
        );
        assert_eq!(
            e(&format!("{vm}[[vm.net]]\nswitch = \"lan\"\nmac = \"01:00:5e:00:00:01\"\n")),
            "vm[0] \"a\": net[0].mac: \"01:00:5e:00:00:01\" is a multicast address: a card's address is unicast (first octet even)"
        );
        assert_eq!(
            e(&format!("{vm}[[vm.net]]\nswitch = \"lan\"\nmac = \"52:54:00:00:01\"\n")),
            "vm[0] \"a\": net[0].mac: \"52:54:00:00:01\": expected six hexadecimal octets like \"52:54:00:12:34:56\""
        );
        assert_eq!(
            e(&format!("{vm}[[vm.net]]\nswitch = \"lan\"\nspeed = 1\n")),
            "vm[0] \"a\": net[0].speed: unknown key (known: switch, mac)"
        );
        assert_eq!(
            e(&format!("{vm}{}", "[[vm.net]]\nswitch = \"lan\"\n".repeat(5))),
            "vm[0] \"a\": net: 5 network cards, at most 4 allowed"
        );
        let c = parse(&format!(
            "{vm}[[vm.net]]\nswitch = \"lan-1\"\nmac = \"52:54:00:AB:cd:0f\"\n[[vm.net]]\nswitch = \"b\"\n"
        ))
        .unwrap();
        assert_eq!(
            c[0].nets,
            [
                NetConfig { switch: "lan-1".into(), mac: Some([0x52, 0x54, 0, 0xab, 0xcd, 0x0f]) },
                NetConfig { switch: "b".into(), mac: None }
            ]
        );
    }
}
