//! DTB → [`Platform`], on `fdt-rs`'s token iterator.
//!
//! Follows the Devicetree Specification v0.4 (§2.3 standard properties,
//! §2.3.8 `ranges`, §3 base nodes, §5 flattened format) and the Linux
//! bindings listed in `platform.rs`; `/chosen/hypervisor` follows
//! `docs/vm-config.md`.
//!
//! The input may be hostile. Every offset, length and sum is checked before
//! use and nothing here panics. `fdt-rs` 0.4 trusts its input more than we
//! may (it reads tokens with unchecked aligned loads, debug-asserts that a
//! token lies inside the blob, and unwraps while iterating the reservation
//! block), so the header is validated here first, the reservation block is
//! read here, and the cursor never lets `fdt-rs` step outside the structure
//! block. The blob must be 4-byte aligned (the boot protocol gives 8).
//!
//! Choices where the bindings leave room:
//! - GIC `interrupts` are decoded with 3 cells, or 4 where GICv3's fourth
//!   cell names a PPI partition (RK3399 uses 4 everywhere).
//! - `passthrough@N` `reg`/`guest-reg` use the VM node's `#address-cells` /
//!   `#size-cells` when it has them, else the hypervisor node's: the example
//!   in `docs/vm-config.md` gives the VM node none but writes 2+2 cells.
//!   Its `interrupts` are plain INTIDs, not GIC specifiers.
//! - Capacity: memory regions, CPUs and GICR regions past the `MAX_*` limits
//!   are left unused (safe); a reservation that does not fit is an error.

// `usize::is_multiple_of` is newer than the workspace's rust-version (1.85).
#![allow(clippy::manual_is_multiple_of)]

use core::str::from_utf8;

use fdt_rs::base::DevTree;
use fdt_rs::base::iters::DevTreeParseIter;
use fdt_rs::base::parse::ParsedTok;
use fdt_rs::error::DevTreeError;
use fdt_rs::prelude::FallibleIterator;

use super::*;

/// Deepest node nesting followed; real trees stay below 10.
const MAX_DEPTH: usize = 16;
/// Size of the v17 FDT header (spec §5.2).
const HEADER_SIZE: usize = 40;
/// `FDT_END` (spec §5.4.1).
const FDT_END: u32 = 9;

/// Parses a whole DTB blob into a [`Platform`].
pub(super) fn parse(dtb: &[u8]) -> Result<Platform, DtbError> {
    let blob = Blob::new(dtb)?;
    let mut b = Builder::new(&blob)?;
    blob.reservations(&mut b.p.reserved)?;
    b.walk()?;
    b.finish()
}

// ---------------------------------------------------------------------------
// The blob: header checks, tokens, properties.

/// A DTB whose header has been checked against its length.
struct Blob<'a> {
    fdt: DevTree<'a>,
    /// Exactly `totalsize` bytes.
    buf: &'a [u8],
    struct_start: usize,
    /// One past the structure block.
    struct_end: usize,
    strings: &'a [u8],
    rsvmap: usize,
}

/// Reads the big-endian u32 at `off`, if it lies inside `b`.
fn be32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Reads the big-endian u64 at `off`, if it lies inside `b`.
fn be64_at(b: &[u8], off: usize) -> Option<u64> {
    let hi = be32_at(b, off)?;
    let lo = be32_at(b, off.checked_add(4)?)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// Whether `[off, off + size)` lies inside `0..limit`.
fn inside(off: usize, size: usize, limit: usize) -> bool {
    off.checked_add(size).is_some_and(|end| end <= limit)
}

/// Names an `fdt-rs` error.
fn fdt_error(e: DevTreeError) -> DtbError {
    DtbError::Malformed(match e {
        DevTreeError::InvalidParameter(why) => why,
        DevTreeError::InvalidMagicNumber => "bad magic",
        DevTreeError::InvalidOffset => "an offset points outside the blob",
        DevTreeError::ParseError => "invalid or truncated token in the structure block",
        DevTreeError::StrError(_) => "a name is not UTF-8",
        DevTreeError::NotEnoughMemory => "out of memory",
    })
}

impl<'a> Blob<'a> {
    /// Checks the header (spec §5.2) so that every block lies inside `dtb`.
    fn new(dtb: &'a [u8]) -> Result<Self, DtbError> {
        use DtbError::Malformed;
        if dtb.is_empty() {
            return Err(DtbError::Missing);
        }
        let magic = be32_at(dtb, 0).ok_or(Malformed("blob is shorter than its header"))?;
        if magic != FDT_MAGIC {
            return Err(DtbError::BadMagic(magic));
        }
        if dtb.len() < HEADER_SIZE {
            return Err(Malformed("blob is shorter than its header"));
        }
        if dtb.as_ptr() as usize % 4 != 0 {
            return Err(Malformed("blob is not 4-byte aligned"));
        }
        // Every field read below lies in the 40 bytes just checked.
        let field = |i: usize| be32_at(dtb, 4 * i).map_or(0, |v| v as usize);
        let (total, off_struct, off_strings, off_rsvmap) = (field(1), field(2), field(3), field(4));
        let (version, last_comp) = (field(5), field(6));
        let (size_strings, size_struct) = (field(8), field(9));
        if version < 17 || last_comp > 17 {
            return Err(Malformed("header version is not 17-compatible"));
        }
        if total < HEADER_SIZE {
            return Err(Malformed("totalsize is smaller than the header"));
        }
        if total > dtb.len() {
            return Err(Malformed("totalsize is larger than the blob (truncated?)"));
        }
        let buf = &dtb[..total];
        if off_struct % 4 != 0 || off_struct < HEADER_SIZE || size_struct < 4 || !inside(off_struct, size_struct, total)
        {
            return Err(Malformed("structure block lies outside the blob"));
        }
        if !inside(off_strings, size_strings, total) {
            return Err(Malformed("strings block lies outside the blob"));
        }
        if off_rsvmap % 8 != 0 || off_rsvmap < HEADER_SIZE || off_rsvmap >= total {
            return Err(Malformed("memory reservation block lies outside the blob"));
        }
        // A named exception to the crate's `deny(unsafe_code)`: fdt-rs's
        // constructor is `unsafe` because it trusts the header it is given,
        // which the checks above have done the work of verifying.
        // SAFETY: `buf` is 4-byte aligned (checked above) and exactly
        // `totalsize` bytes long, which is what `DevTree::new` requires.
        #[allow(unsafe_code)]
        let fdt = unsafe { DevTree::new(buf) }.map_err(fdt_error)?;
        Ok(Blob {
            fdt,
            buf,
            struct_start: off_struct,
            struct_end: off_struct + size_struct,
            strings: &buf[off_strings..off_strings + size_strings],
            rsvmap: off_rsvmap,
        })
    }

    /// Appends the `/memreserve/` entries (spec §5.3), skipping empty ones.
    fn reservations(&self, out: &mut Vec<Region, MAX_RESERVED>) -> Result<(), DtbError> {
        let mut off = self.rsvmap;
        loop {
            let (Some(base), Some(size)) = (be64_at(self.buf, off), be64_at(self.buf, off + 8)) else {
                return Err(DtbError::Malformed("memory reservation block has no terminator"));
            };
            if base == 0 && size == 0 {
                return Ok(());
            }
            if size != 0 {
                push_reserved(out, checked_region(base, size, "/memreserve/", "entry")?)?;
            }
            off += 16;
        }
    }

    /// A token reader positioned at `offset` in the structure block.
    fn cursor(&self, offset: usize) -> Cursor<'_, 'a> {
        let mut it = self.fdt.parse_iter();
        it.offset = offset;
        Cursor { blob: self, it }
    }

    /// The NUL-terminated name at `off` in the strings block.
    fn string(&self, off: usize) -> Result<&'a str, DtbError> {
        let tail =
            self.strings.get(off..).ok_or(DtbError::Malformed("property name offset is outside the strings block"))?;
        let len = tail
            .iter()
            .position(|&c| c == 0)
            .ok_or(DtbError::Malformed("property name runs past the strings block"))?;
        from_utf8(&tail[..len]).map_err(|_| DtbError::Malformed("property name is not UTF-8"))
    }

    /// The value of property `name` of the node whose properties start at `props`.
    fn prop(&self, props: usize, name: &str) -> Result<Option<&'a [u8]>, DtbError> {
        let mut c = self.cursor(props);
        while let Some(Token::Prop(n, v)) = c.next()? {
            if n == name {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The properties offset of the node at `path` ("/soc/serial@1c28000").
    /// A component without a unit address also matches a node that has one.
    fn find(&self, path: &str) -> Result<Option<usize>, DtbError> {
        let mut want = path.split('/').filter(|c| !c.is_empty());
        let mut next = want.next();
        // Open nodes, and how many of them are on `path` (the root is).
        let (mut level, mut matched) = (0usize, 0usize);
        let mut c = self.cursor(self.struct_start);
        while let Some(tok) = c.next()? {
            match tok {
                Token::Begin(name) => {
                    level += 1;
                    let on_path = if level == 1 {
                        true
                    } else {
                        level == matched + 1 && next.is_some_and(|w| name_matches(name, w))
                    };
                    if on_path {
                        if level > 1 {
                            next = want.next();
                        }
                        matched = level;
                        if next.is_none() {
                            return Ok(Some(c.offset()));
                        }
                    }
                }
                Token::End => {
                    if level == matched {
                        // A node on the path closed without the rest of it.
                        return Ok(None);
                    }
                    level -= 1;
                }
                Token::Prop(..) => {}
            }
        }
        Ok(None)
    }
}

/// Whether node `name` matches path component `want` (unit address optional).
fn name_matches(name: &str, want: &str) -> bool {
    name == want || (!want.contains('@') && name.split('@').next() == Some(want))
}

/// One structure-block token (NOPs skipped).
enum Token<'a> {
    Begin(&'a str),
    End,
    Prop(&'a str, &'a [u8]),
}

/// `fdt-rs`'s token iterator, kept inside the structure block.
struct Cursor<'r, 'a> {
    blob: &'r Blob<'a>,
    it: DevTreeParseIter<'r, 'a>,
}

impl<'a> Cursor<'_, 'a> {
    /// Offset of the next token.
    fn offset(&self) -> usize {
        self.it.offset
    }

    /// The next token; `None` at `FDT_END`.
    fn next(&mut self) -> Result<Option<Token<'a>>, DtbError> {
        loop {
            let off = self.it.offset;
            let end = off.saturating_add(4);
            if end > self.blob.struct_end {
                return Err(DtbError::Malformed("structure block ends without FDT_END"));
            }
            if end == self.blob.buf.len() {
                // `fdt-rs` debug-asserts that a token is followed by more
                // bytes; the last word of the blob can only be FDT_END.
                return match be32_at(self.blob.buf, off) {
                    Some(FDT_END) => Ok(None),
                    _ => Err(DtbError::Malformed("structure block ends without FDT_END")),
                };
            }
            match self.it.next().map_err(fdt_error)? {
                None => return Ok(None),
                Some(ParsedTok::Nop) => continue,
                Some(ParsedTok::BeginNode(n)) => {
                    let name = from_utf8(n.name).map_err(|_| DtbError::Malformed("node name is not UTF-8"))?;
                    return Ok(Some(Token::Begin(name)));
                }
                Some(ParsedTok::EndNode) => return Ok(Some(Token::End)),
                Some(ParsedTok::Prop(p)) => {
                    let name = self.blob.string(p.name_offset)?;
                    return Ok(Some(Token::Prop(name, p.prop_buf)));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Property decoding.

/// The first string of a string(-list) property.
fn str_prop(raw: &[u8]) -> Option<&str> {
    let len = raw.iter().position(|&c| c == 0)?;
    from_utf8(&raw[..len]).ok()
}

/// Whether a string-list property (`compatible`) contains `s`.
fn list_has(raw: &[u8], s: &str) -> bool {
    raw.split(|&c| c == 0).any(|item| item == s.as_bytes())
}

/// A one-cell property.
fn u32_prop(raw: &[u8]) -> Option<u32> {
    if raw.len() == 4 { be32_at(raw, 0) } else { None }
}

/// A one- or two-cell property (`cpu-release-addr`, `linux,initrd-start`).
fn u64_prop(raw: &[u8]) -> Option<u64> {
    match raw.len() {
        4 => be32_at(raw, 0).map(u64::from),
        8 => be64_at(raw, 0),
        _ => None,
    }
}

/// Reads a `cells`-cell (0 to 2) number at `*pos`, advancing it.
fn take_cells(raw: &[u8], pos: &mut usize, cells: u32) -> Option<u64> {
    let v = match cells {
        0 => 0,
        1 => u64::from(be32_at(raw, *pos)?),
        2 => be64_at(raw, *pos)?,
        _ => return None,
    };
    *pos += 4 * cells as usize;
    Some(v)
}

/// A region whose end does not overflow, so [`Region::end`] is safe to call.
fn checked_region(base: u64, size: u64, node: &'static str, property: &'static str) -> Result<Region, DtbError> {
    match base.checked_add(size) {
        Some(_) => Ok(Region { base, size }),
        None => Err(DtbError::BadProperty { node, property }),
    }
}

fn push_reserved(out: &mut Vec<Region, MAX_RESERVED>, r: Region) -> Result<(), DtbError> {
    // Dropping a reservation could hand firmware memory out: refuse instead.
    out.push(r).map_err(|_| DtbError::BadProperty {
        node: "/reserved-memory",
        property: "reg (more than MAX_RESERVED regions)",
    })
}

/// The entries of a `reg`-style property with `ac` address and `sc` size cells.
struct RegIter<'a> {
    raw: &'a [u8],
    pos: usize,
    ac: u32,
    sc: u32,
}

impl<'a> RegIter<'a> {
    /// `None` when the cell counts are unusable or the length is not a
    /// whole number of entries.
    fn new(raw: &'a [u8], ac: u32, sc: u32) -> Option<Self> {
        let stride = 4 * (ac as usize + sc as usize);
        if ac == 0 || ac > 2 || sc > 2 || raw.len() % stride != 0 {
            return None;
        }
        Some(RegIter { raw, pos: 0, ac, sc })
    }

    fn entries(&self) -> usize {
        self.raw.len() / (4 * (self.ac as usize + self.sc as usize))
    }
}

impl Iterator for RegIter<'_> {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        let base = take_cells(self.raw, &mut self.pos, self.ac)?;
        let size = take_cells(self.raw, &mut self.pos, self.sc)?;
        Some((base, size))
    }
}

/// Exactly one (address, size) pair.
fn single_region(raw: &[u8], ac: u32, sc: u32, node: &'static str, property: &'static str) -> Result<Region, DtbError> {
    let bad = DtbError::BadProperty { node, property };
    let mut it = RegIter::new(raw, ac, sc).ok_or(bad)?;
    if it.entries() != 1 {
        return Err(bad);
    }
    let (base, size) = it.next().ok_or(bad)?;
    checked_region(base, size, node, property)
}

/// A list of one-cell values into a fixed-capacity vector.
fn u32_list<const N: usize>(raw: &[u8]) -> Option<Vec<u32, N>> {
    if raw.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for i in 0..raw.len() / 4 {
        out.push(be32_at(raw, 4 * i)?).ok()?;
    }
    Some(out)
}

/// Copies `s` into `out`, dropping what does not fit (at a char boundary).
fn push_truncated<const N: usize>(out: &mut String<N>, s: &str) {
    for ch in s.chars() {
        if out.push(ch).is_err() {
            break;
        }
    }
}

/// Decodes specifier `index` of a GIC `interrupts` property with `cells`
/// cells each (3, or 4 where GICv3's fourth cell names a PPI partition).
fn gic_irq(raw: &[u8], cells: u32, index: usize) -> Option<Irq> {
    if !(3..=4).contains(&cells) || raw.len() % (4 * cells as usize) != 0 {
        return None;
    }
    let at = index.checked_mul(4 * cells as usize)?;
    let kind = match be32_at(raw, at)? {
        0 => IrqKind::Spi,
        1 => IrqKind::Ppi,
        _ => return None,
    };
    Some(Irq { kind, number: be32_at(raw, at + 4)?, flags: be32_at(raw, at + 8)? })
}

/// Parses the baud rate at the start of `stdout-path` options ("1500000n8").
fn parse_baud(options: &str) -> Option<u32> {
    let digits = options.bytes().take_while(u8::is_ascii_digit).count();
    options[..digits].parse().ok().filter(|&b| b != 0)
}

// ---------------------------------------------------------------------------
// The walk.

/// One open node: what its children inherit.
#[derive(Clone, Copy)]
struct Node<'a> {
    name: &'a str,
    /// Offset of the node's first property token.
    props: usize,
    /// `#address-cells` / `#size-cells` for the children (spec defaults 2, 1).
    address_cells: u32,
    size_cells: u32,
    /// `ranges`, mapping the children's addresses into ours.
    ranges: Option<&'a [u8]>,
    /// Own or inherited `interrupt-parent` phandle.
    interrupt_parent: Option<u32>,
}

impl<'a> Node<'a> {
    fn read(blob: &Blob<'a>, name: &'a str, props: usize, parent: Option<&Node<'a>>) -> Result<Self, DtbError> {
        let mut node = Node {
            name,
            props,
            address_cells: 2,
            size_cells: 1,
            ranges: None,
            interrupt_parent: parent.and_then(|p| p.interrupt_parent),
        };
        let mut c = blob.cursor(props);
        while let Some(Token::Prop(n, v)) = c.next()? {
            let bad = |property| DtbError::BadProperty { node: "(any)", property };
            match n {
                "#address-cells" => node.address_cells = u32_prop(v).ok_or(bad("#address-cells"))?,
                "#size-cells" => node.size_cells = u32_prop(v).ok_or(bad("#size-cells"))?,
                "ranges" => node.ranges = Some(v),
                "interrupt-parent" => node.interrupt_parent = Some(u32_prop(v).ok_or(bad("interrupt-parent"))?),
                _ => {}
            }
        }
        Ok(node)
    }

    fn prop(&self, blob: &Blob<'a>, name: &str) -> Result<Option<&'a [u8]>, DtbError> {
        blob.prop(self.props, name)
    }

    fn str(&self, blob: &Blob<'a>, name: &str) -> Result<Option<&'a str>, DtbError> {
        Ok(self.prop(blob, name)?.and_then(str_prop))
    }

    /// `status` absent, "okay" or "ok".
    fn enabled(&self, blob: &Blob<'a>) -> Result<bool, DtbError> {
        Ok(matches!(self.str(blob, "status")?, None | Some("okay" | "ok")))
    }
}

/// Translates a bus address of the node on top of `stack` to a CPU physical
/// address through its ancestors' `ranges` (spec §2.3.8). `None` when some
/// ancestor has no `ranges` or no entry covers the address.
fn translate(stack: &[Node<'_>], mut addr: u64) -> Option<u64> {
    // stack[i] maps its children's space into stack[i - 1]'s; the root's
    // children already see CPU addresses.
    for i in (1..stack.len().saturating_sub(1)).rev() {
        let bus = &stack[i];
        let ranges = bus.ranges?;
        if ranges.is_empty() {
            continue;
        }
        let (cac, pac, csc) = (bus.address_cells, stack[i - 1].address_cells, bus.size_cells);
        let stride = 4 * (cac as usize + pac as usize + csc as usize);
        if cac > 2 || pac > 2 || csc > 2 || ranges.len() % stride != 0 {
            return None;
        }
        let mut pos = 0;
        let mut mapped = None;
        while pos < ranges.len() {
            let child = take_cells(ranges, &mut pos, cac)?;
            let parent = take_cells(ranges, &mut pos, pac)?;
            let size = take_cells(ranges, &mut pos, csc)?;
            if addr >= child && addr - child < size {
                mapped = Some(parent.checked_add(addr - child)?);
                break;
            }
        }
        addr = mapped?;
    }
    Some(addr)
}

/// Entry `index` of the `reg` of the node on top of `stack`, translated.
fn reg_region(stack: &[Node<'_>], raw: &[u8], index: usize, node: &'static str) -> Result<Option<Region>, DtbError> {
    let bad = DtbError::BadProperty { node, property: "reg" };
    let parent = stack.len().checked_sub(2).and_then(|i| stack.get(i)).ok_or(bad)?;
    let mut it = RegIter::new(raw, parent.address_cells, parent.size_cells).ok_or(bad)?;
    let Some((base, size)) = it.nth(index) else {
        return Ok(None);
    };
    let base = translate(stack, base).ok_or(DtbError::BadProperty { node, property: "ranges" })?;
    checked_region(base, size, node, "reg").map(Some)
}

/// A UART seen during the walk; its interrupt is decoded once the GIC is known.
#[derive(Clone, Copy)]
struct UartSeen<'a> {
    kind: UartKind,
    region: Region,
    interrupts: Option<&'a [u8]>,
    interrupt_parent: Option<u32>,
}

/// A `virtio,mmio` node seen during the walk.
struct VirtioSeen<'a> {
    region: Region,
    interrupts: Option<&'a [u8]>,
    interrupt_parent: Option<u32>,
}

/// An `el2-hyp,shm` node seen during the walk: its interrupt is decoded
/// at the end, like a virtio transport's.
struct ShmSeen<'a> {
    shm: GuestShm,
    interrupts: Option<&'a [u8]>,
    interrupt_parent: Option<u32>,
}

/// The GIC seen during the walk.
struct GicSeen<'a> {
    gic: Gic,
    phandle: Option<u32>,
    cells: u32,
    interrupts: Option<&'a [u8]>,
}

/// The timer seen during the walk.
struct TimerSeen<'a> {
    interrupts: &'a [u8],
    interrupt_parent: Option<u32>,
    frequency: Option<u32>,
}

/// The VM node being read: its name and what has been read so far.
type VmSeen = (String<32>, Result<VmSpec, DtbError>);

/// Accumulates a [`Platform`] during one walk of the tree.
struct Builder<'r, 'a> {
    blob: &'r Blob<'a>,
    p: Platform,
    /// `/chosen` `stdout-path`'s node (properties offset) and baud rate.
    console: Option<usize>,
    console_baud: Option<u32>,
    console_uart: Option<UartSeen<'a>>,
    first_uart: Option<UartSeen<'a>>,
    gic: Option<GicSeen<'a>>,
    timer: Option<TimerSeen<'a>>,
    saw_cpus: bool,
    vm: Option<VmSeen>,
    /// `virtio,mmio` nodes: their interrupts are decoded at the end, when
    /// the GIC's phandle is known.
    virtio: Vec<VirtioSeen<'a>, MAX_VIRTIO_MMIO>,
    /// `el2-hyp,shm` nodes (a guest's DTB).
    shm: Vec<ShmSeen<'a>, MAX_SHM>,
}

impl<'r, 'a> Builder<'r, 'a> {
    /// Resolves `/chosen` `stdout-path` (through `/aliases`) before the walk,
    /// as those nodes may come anywhere in the tree.
    fn new(blob: &'r Blob<'a>) -> Result<Self, DtbError> {
        let mut b = Builder {
            blob,
            p: Platform::default(),
            console: None,
            console_baud: None,
            console_uart: None,
            first_uart: None,
            gic: None,
            timer: None,
            saw_cpus: false,
            vm: None,
            virtio: Vec::new(),
            shm: Vec::new(),
        };
        let Some(chosen) = blob.find("/chosen")? else {
            return Ok(b);
        };
        let stdout = match blob.prop(chosen, "stdout-path")? {
            Some(v) => Some(v),
            None => blob.prop(chosen, "linux,stdout-path")?,
        };
        let Some(stdout) = stdout.and_then(str_prop) else {
            return Ok(b);
        };
        let (path, options) = stdout.split_once(':').unwrap_or((stdout, ""));
        let path = if path.starts_with('/') {
            Some(path)
        } else {
            match blob.find("/aliases")? {
                Some(aliases) => blob.prop(aliases, path)?.and_then(str_prop),
                None => None,
            }
        };
        if let Some(path) = path {
            b.console = blob.find(path)?;
            b.console_baud = parse_baud(options);
        }
        Ok(b)
    }

    /// One pass over the structure block with a stack of open nodes.
    fn walk(&mut self) -> Result<(), DtbError> {
        use DtbError::Malformed;
        let blob = self.blob;
        let mut stack: Vec<Node<'a>, MAX_DEPTH> = Vec::new();
        let mut seen_root = false;
        let mut c = blob.cursor(blob.struct_start);
        loop {
            match c.next()? {
                None if stack.is_empty() && seen_root => return Ok(()),
                None => return Err(Malformed("structure block ends inside a node")),
                Some(Token::Begin(name)) => {
                    if stack.is_empty() {
                        if seen_root {
                            return Err(Malformed("more than one root node"));
                        }
                        seen_root = true;
                    }
                    let node = Node::read(blob, name, c.offset(), stack.last())?;
                    stack.push(node).map_err(|_| Malformed("nodes nested too deeply"))?;
                    self.enter(&stack)?;
                }
                Some(Token::End) => {
                    if stack.is_empty() {
                        return Err(Malformed("FDT_END_NODE outside any node"));
                    }
                    self.leave(&stack);
                    stack.pop();
                }
                Some(Token::Prop(..)) if stack.is_empty() => {
                    return Err(Malformed("property outside any node"));
                }
                Some(Token::Prop(..)) => {}
            }
        }
    }

    /// Reads what the node on top of `stack` contributes.
    fn enter(&mut self, stack: &[Node<'a>]) -> Result<(), DtbError> {
        let blob = self.blob;
        let Some(node) = stack.last() else {
            return Ok(());
        };
        let depth = stack.len() - 1;
        let parent_name = |up: usize| stack.get(depth.wrapping_sub(up)).map(|n| n.name);
        let compatible = node.prop(blob, "compatible")?.unwrap_or(&[]);
        let device_type = node.str(blob, "device_type")?;

        match depth {
            0 => self.root(node)?,
            1 if node.name == "chosen" => self.chosen(node)?,
            1 if node.name == "cpus" => self.saw_cpus = true,
            1 if device_type == Some("memory") && node.enabled(blob)? => self.memory(stack)?,
            1 if node.name == "psci" || compatible.starts_with(b"arm,psci") => self.psci(node)?,
            2 if parent_name(1) == Some("cpus") && device_type == Some("cpu") => self.cpu(stack)?,
            2 if parent_name(1) == Some("reserved-memory") => self.reserved_memory(stack)?,
            3 if parent_name(1) == Some("hypervisor")
                && parent_name(2) == Some("chosen")
                && (node.name == "vm" || node.name.starts_with("vm@")) =>
            {
                self.vm_begin(stack)
            }
            3 if parent_name(1) == Some("hypervisor")
                && parent_name(2) == Some("chosen")
                && (node.name == "shm" || node.name.starts_with("shm@")) =>
            {
                self.shm_spec(stack)
            }
            3 if parent_name(1) == Some("hypervisor")
                && parent_name(2) == Some("chosen")
                && (node.name == "switch" || node.name.starts_with("switch@")) =>
            {
                self.switch_spec(stack)
            }
            4 if self.vm.is_some() && node.name.starts_with("passthrough") => {
                self.passthrough(stack);
            }
            4 if self.vm.is_some() && (node.name == "disk" || node.name.starts_with("disk@")) => {
                self.disk(stack);
            }
            4 if self.vm.is_some() && (node.name == "net" || node.name.starts_with("net@")) => {
                self.net(stack);
            }
            _ => {}
        }

        if let Some(kind) = uart_kind(blob, node, compatible)? {
            self.uart(stack, kind)?;
        }
        if self.gic.is_none() {
            if list_has(compatible, "arm,gic-v3") {
                self.gic(stack, GicVersion::V3)?;
            } else if ["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a7-gic"].iter().any(|c| list_has(compatible, c))
            {
                self.gic(stack, GicVersion::V2)?;
            }
        }
        if self.timer.is_none() && list_has(compatible, "arm,armv8-timer") {
            self.timer_node(node)?;
        }
        if list_has(compatible, "virtio,mmio") && node.enabled(blob)? {
            self.virtio_mmio(stack)?;
        }
        if list_has(compatible, "el2-hyp,shm") && node.enabled(blob)? {
            self.guest_shm(stack)?;
        }
        Ok(())
    }

    /// A `/chosen/hypervisor/shm@N` node; a malformed one is recorded in
    /// `shm_errors` and the others are still read.
    fn shm_spec(&mut self, stack: &[Node<'a>]) {
        let (Some(node), Some(hyp)) = (stack.last(), stack.len().checked_sub(2).map(|i| stack[i])) else {
            return;
        };
        let result = read_shm(self.blob, node, hyp.size_cells).and_then(|spec| {
            self.p.shms.push(spec).map_err(|_| DtbError::BadProperty {
                node: "/chosen/hypervisor",
                property: "shm@N (more than MAX_SHM)",
            })
        });
        if let Err(e) = result {
            let mut name = String::new();
            push_truncated(&mut name, node.name);
            // Beyond MAX_SHM errors, the rest are dropped.
            let _ = self.p.shm_errors.push((name, e));
        }
    }

    /// A `/chosen/hypervisor/switch@N` node; a malformed one is recorded
    /// in `switch_errors` and the others are still read.
    fn switch_spec(&mut self, stack: &[Node<'a>]) {
        let Some(node) = stack.last() else { return };
        let result = read_switch(self.blob, node).and_then(|spec| {
            self.p.switches.push(spec).map_err(|_| DtbError::BadProperty {
                node: "/chosen/hypervisor",
                property: "switch@N (more than MAX_SWITCHES)",
            })
        });
        if let Err(e) = result {
            let mut name = String::new();
            push_truncated(&mut name, node.name);
            // Beyond MAX_SWITCHES errors, the rest are dropped.
            let _ = self.p.switch_errors.push((name, e));
        }
    }

    /// An `el2-hyp,shm` node of a guest's DTB (docs/devices.md); beyond
    /// `MAX_SHM` they are ignored.
    fn guest_shm(&mut self, stack: &[Node<'a>]) -> Result<(), DtbError> {
        let Some(node) = stack.last() else {
            return Ok(());
        };
        const NODE: &str = "el2-hyp,shm";
        let bad = |property| DtbError::BadProperty { node: NODE, property };
        let reg = node.prop(self.blob, "reg")?.ok_or(bad("reg"))?;
        let region = reg_region(stack, reg, 0, NODE)?.ok_or(bad("reg"))?;
        let u32_of = |name: &'static str| -> Result<u32, DtbError> {
            node.prop(self.blob, name)?.and_then(u32_prop).ok_or(bad(name))
        };
        let mut shm = GuestShm {
            region,
            index: u32_of("el2-hyp,region")?,
            peer: u32_of("el2-hyp,peer-id")?,
            ..Default::default()
        };
        if let Some(label) = node.str(self.blob, "label")? {
            push_truncated(&mut shm.name, label);
        }
        let peers = node.prop(self.blob, "el2-hyp,peers")?.ok_or(bad("el2-hyp,peers"))?;
        shm.peers = string_list(peers).ok_or(bad("el2-hyp,peers"))?;
        let interrupts = node.prop(self.blob, "interrupts")?;
        let _ = self.shm.push(ShmSeen { shm, interrupts, interrupt_parent: node.interrupt_parent });
        Ok(())
    }

    /// A virtio-mmio transport (Linux `virtio/mmio.yaml`); beyond
    /// `MAX_VIRTIO_MMIO` they are ignored.
    fn virtio_mmio(&mut self, stack: &[Node<'a>]) -> Result<(), DtbError> {
        let Some(node) = stack.last() else {
            return Ok(());
        };
        let bad = DtbError::BadProperty { node: "virtio_mmio", property: "reg" };
        let reg = node.prop(self.blob, "reg")?.ok_or(bad)?;
        let region = reg_region(stack, reg, 0, "virtio_mmio")?.ok_or(bad)?;
        let interrupts = node.prop(self.blob, "interrupts")?;
        let _ = self.virtio.push(VirtioSeen { region, interrupts, interrupt_parent: node.interrupt_parent });
        Ok(())
    }

    /// Called before the node on top of `stack` is closed.
    fn leave(&mut self, stack: &[Node<'a>]) {
        // Only the VM node (depth 3) has anything to finish.
        if stack.len() != 4 {
            return;
        }
        let Some((name, spec)) = self.vm.take() else {
            return;
        };
        let rejected =
            match spec {
                Ok(spec) => self.p.vms.push(spec).err().map(|_| DtbError::BadProperty {
                    node: "/chosen/hypervisor",
                    property: "vm@N (more than MAX_VMS)",
                }),
                Err(e) => Some(e),
            };
        if let Some(e) = rejected {
            // Beyond MAX_VMS errors, the rest are dropped.
            let _ = self.p.vm_errors.push((name, e));
        }
    }

    fn root(&mut self, node: &Node<'a>) -> Result<(), DtbError> {
        let model = match node.str(self.blob, "model")? {
            Some(m) => Some(m),
            None => node.str(self.blob, "compatible")?,
        };
        if let Some(model) = model {
            push_truncated(&mut self.p.model, model);
        }
        Ok(())
    }

    /// `/chosen`: `bootargs` and the initrd (Linux `chosen.txt` binding).
    fn chosen(&mut self, node: &Node<'a>) -> Result<(), DtbError> {
        let blob = self.blob;
        if let Some(args) = node.str(blob, "bootargs")? {
            push_truncated(&mut self.p.bootargs, args);
        }
        if let Some(name) = node.str(blob, "el2-hyp,vm-name")? {
            push_truncated(&mut self.p.vm_name, name);
        }
        if let Some(raw) = node.prop(blob, "el2-hyp,resets")? {
            self.p.vm_resets = u64_prop(raw).unwrap_or(0) as u32;
        }
        self.p.selftest_lock_before_mmu = node.prop(blob, "el2-hyp,selftest-lock-before-mmu")?.is_some();
        let start = node.prop(blob, "linux,initrd-start")?;
        let end = node.prop(blob, "linux,initrd-end")?;
        let bad = |property| DtbError::BadProperty { node: "/chosen", property };
        match (start, end) {
            (None, None) => {}
            (Some(start), Some(end)) => {
                let start = u64_prop(start).ok_or(bad("linux,initrd-start"))?;
                let end = u64_prop(end).ok_or(bad("linux,initrd-end"))?;
                let size = end.checked_sub(start).ok_or(bad("linux,initrd-end"))?;
                if size != 0 {
                    self.p.initrd = Some(Region { base: start, size });
                }
            }
            (None, Some(_)) => return Err(bad("linux,initrd-start")),
            (Some(_), None) => return Err(bad("linux,initrd-end")),
        }
        Ok(())
    }

    /// A `device_type = "memory"` node under the root; the root's cells apply.
    fn memory(&mut self, stack: &[Node<'a>]) -> Result<(), DtbError> {
        let bad = DtbError::BadProperty { node: "/memory", property: "reg" };
        let (Some(root), Some(node)) = (stack.first(), stack.last()) else {
            return Err(bad);
        };
        let Some(reg) = node.prop(self.blob, "reg")? else {
            return Ok(());
        };
        for (base, size) in RegIter::new(reg, root.address_cells, root.size_cells).ok_or(bad)? {
            if size != 0 {
                // Past MAX_MEMORY the rest is left unused, which is safe.
                let _ = self.p.memory.push(checked_region(base, size, "/memory", "reg")?);
            }
        }
        Ok(())
    }

    fn psci(&mut self, node: &Node<'a>) -> Result<(), DtbError> {
        if !node.enabled(self.blob)? || self.p.psci.is_some() {
            return Ok(());
        }
        self.p.psci = match node.str(self.blob, "method")? {
            Some("smc") => Some(PsciMethod::Smc),
            Some("hvc") => Some(PsciMethod::Hvc),
            _ => {
                return Err(DtbError::BadProperty { node: "/psci", property: "method" });
            }
        };
        Ok(())
    }

    /// `/cpus/cpu@N` (Linux `arm/cpus.yaml`): `reg` is the MPIDR.
    fn cpu(&mut self, stack: &[Node<'a>]) -> Result<(), DtbError> {
        let blob = self.blob;
        let bad = |property| DtbError::BadProperty { node: "/cpus/cpu", property };
        let (Some(cpus), Some(node)) = (stack.len().checked_sub(2).map(|i| stack[i]), stack.last()) else {
            return Err(bad("reg"));
        };
        let cells = cpus.address_cells;
        if !(1..=2).contains(&cells) {
            return Err(DtbError::BadProperty { node: "/cpus", property: "#address-cells" });
        }
        let reg = node.prop(blob, "reg")?.ok_or(bad("reg"))?;
        let mpidr = take_cells(reg, &mut 0, cells).ok_or(bad("reg"))?;
        let enable_method = match node.str(blob, "enable-method")? {
            Some("psci") => EnableMethod::Psci,
            Some("spin-table") => {
                let raw = node.prop(blob, "cpu-release-addr")?.ok_or(bad("cpu-release-addr"))?;
                EnableMethod::SpinTable { release_addr: u64_prop(raw).ok_or(bad("cpu-release-addr"))? }
            }
            _ => EnableMethod::None,
        };
        // Past MAX_CPUS the rest stay off, which is safe.
        let _ = self.p.cpus.push(Cpu { mpidr, enable_method });
        Ok(())
    }

    /// A `/reserved-memory` child (Linux `reserved-memory.yaml`); those with
    /// only `size` are allocated by the OS and have no fixed place.
    fn reserved_memory(&mut self, stack: &[Node<'a>]) -> Result<(), DtbError> {
        let Some(node) = stack.last() else {
            return Ok(());
        };
        if !node.enabled(self.blob)? {
            return Ok(());
        }
        let Some(reg) = node.prop(self.blob, "reg")? else {
            return Ok(());
        };
        let mut index = 0;
        while let Some(r) = reg_region(stack, reg, index, "/reserved-memory")? {
            if r.size != 0 {
                push_reserved(&mut self.p.reserved, r)?;
            }
            index += 1;
        }
        Ok(())
    }

    /// A known UART: the `stdout-path` one, else the first enabled one.
    fn uart(&mut self, stack: &[Node<'a>], kind: UartKind) -> Result<(), DtbError> {
        let Some(node) = stack.last() else {
            return Ok(());
        };
        let is_console = self.console == Some(node.props);
        if !is_console && (self.first_uart.is_some() || !node.enabled(self.blob)?) {
            return Ok(());
        }
        let reg = node.prop(self.blob, "reg")?;
        let reg = reg.ok_or(DtbError::BadProperty { node: "serial", property: "reg" })?;
        let region =
            reg_region(stack, reg, 0, "serial")?.ok_or(DtbError::BadProperty { node: "serial", property: "reg" })?;
        let seen = UartSeen {
            kind,
            region,
            interrupts: node.prop(self.blob, "interrupts")?,
            interrupt_parent: node.interrupt_parent,
        };
        if is_console {
            self.console_uart = Some(seen);
        } else {
            self.first_uart = Some(seen);
        }
        Ok(())
    }

    /// The GIC (Linux `arm,gic-v3.yaml`, `arm,gic.yaml`).
    fn gic(&mut self, stack: &[Node<'a>], version: GicVersion) -> Result<(), DtbError> {
        let blob = self.blob;
        let Some(node) = stack.last() else {
            return Ok(());
        };
        if !node.enabled(blob)? {
            return Ok(());
        }
        const NODE: &str = "interrupt-controller";
        let bad = |property| DtbError::BadProperty { node: NODE, property };
        let reg = node.prop(blob, "reg")?.ok_or(bad("reg"))?;
        let region = |i: usize| reg_region(stack, reg, i, NODE);
        let gicd = region(0)?.ok_or(bad("reg"))?;
        let mut gic =
            Gic { version, gicd, gicr: Vec::new(), gicc: None, gich: None, gicv: None, maintenance_irq: None };
        // GICv3: GICD, #redistributor-regions GICR regions, then optional
        // GICC, GICH, GICV. GICv2: GICD, GICC, then optional GICH, GICV.
        let first_cpu_frame = match version {
            GicVersion::V3 => {
                let n = match node.prop(blob, "#redistributor-regions")? {
                    Some(raw) => u32_prop(raw).ok_or(bad("#redistributor-regions"))? as usize,
                    None => 1,
                };
                if n == 0 {
                    return Err(bad("#redistributor-regions"));
                }
                for i in 1..=n {
                    let r = region(i)?.ok_or(bad("reg"))?;
                    // Past MAX_GICR the CPUs behind the rest are not used.
                    let _ = gic.gicr.push(r);
                }
                n + 1
            }
            GicVersion::V2 => {
                gic.gicc = Some(region(1)?.ok_or(bad("reg"))?);
                2
            }
        };
        if version == GicVersion::V3 {
            gic.gicc = region(first_cpu_frame)?;
            gic.gich = region(first_cpu_frame + 1)?;
            gic.gicv = region(first_cpu_frame + 2)?;
        } else {
            gic.gich = region(first_cpu_frame)?;
            gic.gicv = region(first_cpu_frame + 1)?;
        }
        let cells = match node.prop(blob, "#interrupt-cells")? {
            Some(raw) => u32_prop(raw).ok_or(bad("#interrupt-cells"))?,
            None => return Err(bad("#interrupt-cells")),
        };
        let phandle = match node.prop(blob, "phandle")? {
            Some(raw) => Some(u32_prop(raw).ok_or(bad("phandle"))?),
            None => None,
        };
        let interrupts = node.prop(blob, "interrupts")?;
        self.gic = Some(GicSeen { gic, phandle, cells, interrupts });
        Ok(())
    }

    /// The architected timer (Linux `timer/arm,arch_timer.yaml`).
    fn timer_node(&mut self, node: &Node<'a>) -> Result<(), DtbError> {
        let bad = |property| DtbError::BadProperty { node: "timer", property };
        let interrupts = node.prop(self.blob, "interrupts")?.ok_or(bad("interrupts"))?;
        let frequency = match node.prop(self.blob, "clock-frequency")? {
            Some(raw) => Some(u32_prop(raw).ok_or(bad("clock-frequency"))?),
            None => None,
        };
        self.timer = Some(TimerSeen { interrupts, interrupt_parent: node.interrupt_parent, frequency });
        Ok(())
    }

    /// Opens `/chosen/hypervisor/vm@N`; its cells are the hypervisor node's.
    fn vm_begin(&mut self, stack: &[Node<'a>]) {
        let (Some(node), Some(hyp)) = (stack.last(), stack.len().checked_sub(2).map(|i| stack[i])) else {
            return;
        };
        let mut name = String::new();
        push_truncated(&mut name, node.name);
        let spec = read_vm(self.blob, node, hyp.address_cells, hyp.size_cells);
        self.vm = Some((name, spec));
    }

    /// The `#address-cells` and `#size-cells` of the children of the open
    /// VM node: its own if it has them, else the hypervisor node's.
    fn child_cells(&self, stack: &[Node<'a>]) -> Result<(u32, u32), DtbError> {
        let Some(vm_node) = stack.len().checked_sub(2).map(|i| stack[i]) else {
            return Ok((2, 2));
        };
        let hyp = stack.len().checked_sub(3).map(|i| stack[i]);
        let cells = |own: &str, inherited: Option<u32>| -> Result<u32, DtbError> {
            match self.blob.prop(vm_node.props, own)? {
                Some(raw) => u32_prop(raw).ok_or(DtbError::BadProperty {
                    node: "/chosen/hypervisor/vm",
                    property: "#address-cells/#size-cells",
                }),
                None => Ok(inherited.unwrap_or(2)),
            }
        };
        Ok((cells("#address-cells", hyp.map(|h| h.address_cells))?, cells("#size-cells", hyp.map(|h| h.size_cells))?))
    }

    /// A `passthrough@N` child of the open VM node.
    fn passthrough(&mut self, stack: &[Node<'a>]) {
        let Some(node) = stack.last() else {
            return;
        };
        let result = self.child_cells(stack).and_then(|(ac, sc)| read_passthrough(self.blob, node, ac, sc));
        let Some((_, Ok(spec))) = &mut self.vm else {
            return;
        };
        let result = result.and_then(|pt| {
            spec.passthrough.push(pt).map_err(|_| DtbError::BadProperty {
                node: "/chosen/hypervisor/vm",
                property: "passthrough (more than MAX_PASSTHROUGH)",
            })
        });
        if let (Err(e), Some(vm)) = (result, self.vm.as_mut()) {
            vm.1 = Err(e);
        }
    }

    /// A `disk@N` child of the open VM node (disks are numbered in order).
    fn disk(&mut self, stack: &[Node<'a>]) {
        let Some(node) = stack.last() else {
            return;
        };
        let result = self.child_cells(stack).and_then(|(ac, sc)| read_disk(self.blob, node, ac, sc));
        let Some((_, Ok(spec))) = &mut self.vm else {
            return;
        };
        let result = result.and_then(|d| {
            spec.disks.push(d).map_err(|_| DtbError::BadProperty {
                node: "/chosen/hypervisor/vm",
                property: "disk (more than MAX_DISKS)",
            })
        });
        if let (Err(e), Some(vm)) = (result, self.vm.as_mut()) {
            vm.1 = Err(e);
        }
    }

    /// A `net@N` child of the open VM node (cards are numbered in order).
    fn net(&mut self, stack: &[Node<'a>]) {
        let Some(node) = stack.last() else {
            return;
        };
        let result = read_net(self.blob, node);
        let Some((_, Ok(spec))) = &mut self.vm else {
            return;
        };
        let result = result.and_then(|n| {
            spec.nets.push(n).map_err(|_| DtbError::BadProperty {
                node: "/chosen/hypervisor/vm",
                property: "net (more than MAX_NETS)",
            })
        });
        if let (Err(e), Some(vm)) = (result, self.vm.as_mut()) {
            vm.1 = Err(e);
        }
    }

    /// Decodes the interrupts now that the GIC is known, and picks the console.
    fn finish(mut self) -> Result<Platform, DtbError> {
        if !self.saw_cpus {
            return Err(DtbError::MissingNode("/cpus"));
        }
        if self.p.cpus.is_empty() {
            return Err(DtbError::MissingNode("/cpus/cpu"));
        }
        let gic_parent = self.gic.as_ref().map(|g| (g.phandle, g.cells));
        // A specifier is decoded only when its parent is the GIC.
        let decode = |raw: &[u8], parent: Option<u32>, index: usize| match gic_parent {
            Some((Some(ph), cells)) if parent == Some(ph) => gic_irq(raw, cells, index),
            _ => None,
        };
        if let Some(seen) = self.gic.take() {
            let mut gic = seen.gic;
            // The GIC's own interrupts are in its own format.
            gic.maintenance_irq = seen.interrupts.and_then(|raw| gic_irq(raw, seen.cells, 0));
            self.p.gic = Some(gic);
        }
        if let Some(t) = self.timer.take() {
            let bad = DtbError::BadProperty { node: "timer", property: "interrupts" };
            let irq = |i| decode(t.interrupts, t.interrupt_parent, i);
            self.p.timer = Some(Timer {
                secure_phys: irq(0).ok_or(bad)?,
                phys: irq(1).ok_or(bad)?,
                virt: irq(2).ok_or(bad)?,
                hyp_phys: irq(3),
                frequency: t.frequency,
            });
        }
        let (uart, baud) = match (self.console_uart, self.first_uart) {
            (Some(u), _) => (Some(u), self.console_baud),
            (None, u) => (u, None),
        };
        self.p.uart = uart.map(|u| Uart {
            kind: u.kind,
            region: u.region,
            irq: u.interrupts.and_then(|raw| decode(raw, u.interrupt_parent, 0)),
            baud,
        });
        for v in self.virtio.iter() {
            let irq = v.interrupts.and_then(|raw| decode(raw, v.interrupt_parent, 0));
            // Cannot fail: both vectors have MAX_VIRTIO_MMIO entries.
            let _ = self.p.virtio_mmio.push(VirtioMmio { region: v.region, irq });
        }
        for seen in self.shm.iter() {
            let mut shm = seen.shm.clone();
            shm.irq = seen.interrupts.and_then(|raw| decode(raw, seen.interrupt_parent, 0));
            // Cannot fail: both vectors have MAX_SHM entries.
            let _ = self.p.guest_shm.push(shm);
        }
        Ok(self.p)
    }
}

/// The register interface of a node, if it is a UART this crate can drive
/// (Linux `serial/pl011.yaml`, `serial/8250.yaml`, `serial/snps-dw-apb-uart.yaml`).
fn uart_kind<'a>(blob: &Blob<'a>, node: &Node<'a>, compatible: &[u8]) -> Result<Option<UartKind>, DtbError> {
    if list_has(compatible, "arm,pl011") {
        return Ok(Some(UartKind::Pl011));
    }
    const NS16550: [&str; 4] = ["snps,dw-apb-uart", "ns16550a", "ns16550", "ns8250"];
    if !NS16550.iter().any(|c| list_has(compatible, c)) {
        return Ok(None);
    }
    let byte = |name: &'static str, default: u8| -> Result<u8, DtbError> {
        match node.prop(blob, name)? {
            None => Ok(default),
            Some(raw) => u32_prop(raw)
                .and_then(|v| u8::try_from(v).ok())
                .ok_or(DtbError::BadProperty { node: "serial", property: name }),
        }
    };
    Ok(Some(UartKind::Ns16550 { reg_shift: byte("reg-shift", 0)?, reg_io_width: byte("reg-io-width", 1)? }))
}

/// A `/chosen/hypervisor/vm@N` node (`docs/vm-config.md`), without its
/// children. `ac`/`sc` are the hypervisor node's cells.
fn read_vm(blob: &Blob<'_>, node: &Node<'_>, ac: u32, sc: u32) -> Result<VmSpec, DtbError> {
    const NODE: &str = "/chosen/hypervisor/vm";
    let bad = |property| DtbError::BadProperty { node: NODE, property };
    let required = |name: &'static str| -> Result<&[u8], DtbError> { node.prop(blob, name)?.ok_or(bad(name)) };
    let mut spec = VmSpec::default();

    let name = str_prop(required("vm-name")?).ok_or(bad("vm-name"))?;
    spec.name.push_str(name).map_err(|_| bad("vm-name"))?;
    spec.memory = single_region(required("memory")?, ac, sc, NODE, "memory")?;
    spec.vcpus = u32_prop(required("cpus")?).ok_or(bad("cpus"))?;
    if let Some(raw) = node.prop(blob, "cpu-affinity")? {
        spec.affinity = u32_list(raw).ok_or(bad("cpu-affinity"))?;
    }
    if let Some(raw) = node.prop(blob, "sched-weight")? {
        spec.weight = u32_prop(raw).ok_or(bad("sched-weight"))?;
    }
    if let Some(raw) = node.prop(blob, "sched-cap")? {
        spec.cap = u32_prop(raw).ok_or(bad("sched-cap"))?;
    }
    spec.kernel = single_region(required("kernel")?, ac, sc, NODE, "kernel")?;
    if let Some(raw) = node.prop(blob, "initrd")? {
        spec.initrd = Some(single_region(raw, ac, sc, NODE, "initrd")?);
    }
    if let Some(raw) = node.prop(blob, "bootargs")? {
        let args = str_prop(raw).ok_or(bad("bootargs"))?;
        // A VM's command line is not silently cut short.
        spec.bootargs.push_str(args).map_err(|_| bad("bootargs"))?;
    }
    spec.console = match node.prop(blob, "console")? {
        None => true,
        Some(raw) => str_prop(raw).ok_or(bad("console"))? != "none",
    };
    Ok(spec)
}

/// A `passthrough@N` node: `reg` (host PA), optional `guest-reg`, `interrupts` (INTIDs).
fn read_passthrough(blob: &Blob<'_>, node: &Node<'_>, ac: u32, sc: u32) -> Result<Passthrough, DtbError> {
    const NODE: &str = "/chosen/hypervisor/vm/passthrough";
    let bad = |property| DtbError::BadProperty { node: NODE, property };
    let reg = node.prop(blob, "reg")?.ok_or(bad("reg"))?;
    let region = single_region(reg, ac, sc, NODE, "reg")?;
    let guest_base = match node.prop(blob, "guest-reg")? {
        None => region.base,
        Some(raw) if raw.len() == 4 * ac as usize => take_cells(raw, &mut 0, ac).ok_or(bad("guest-reg"))?,
        Some(_) => return Err(bad("guest-reg")),
    };
    checked_region(guest_base, region.size, NODE, "guest-reg")?;
    let interrupts = match node.prop(blob, "interrupts")? {
        None => Vec::new(),
        Some(raw) => u32_list(raw).ok_or(bad("interrupts"))?,
    };
    Ok(Passthrough { region, guest_base, interrupts })
}

/// A `disk@N` node: `reg` (the image in host memory), `readonly` (empty).
fn read_disk(blob: &Blob<'_>, node: &Node<'_>, ac: u32, sc: u32) -> Result<Disk, DtbError> {
    const NODE: &str = "/chosen/hypervisor/vm/disk";
    let reg = node.prop(blob, "reg")?.ok_or(DtbError::BadProperty { node: NODE, property: "reg" })?;
    let region = single_region(reg, ac, sc, NODE, "reg")?;
    let readonly = node.prop(blob, "readonly")?.is_some();
    Ok(Disk { region, readonly })
}

/// A `net@N` node: `switch` (a non-empty string of at most
/// `MAX_SWITCH_NAME` bytes), `mac-address` (6 bytes).
fn read_net(blob: &Blob<'_>, node: &Node<'_>) -> Result<Net, DtbError> {
    const NODE: &str = "/chosen/hypervisor/vm/net";
    let bad = |property| DtbError::BadProperty { node: NODE, property };
    let switch = node.prop(blob, "switch")?.ok_or(bad("switch"))?;
    let switch = switch.strip_suffix(&[0]).ok_or(bad("switch"))?;
    let switch = core::str::from_utf8(switch).map_err(|_| bad("switch"))?;
    if switch.is_empty() {
        return Err(bad("switch"));
    }
    let switch = String::try_from(switch).map_err(|_| bad("switch"))?;
    let mac = node.prop(blob, "mac-address")?.ok_or(bad("mac-address"))?;
    let mac: [u8; 6] = mac.try_into().map_err(|_| bad("mac-address"))?;
    Ok(Net { switch, mac })
}

/// A `shm@N` node: `shm-name` (string), `size` (`sc` cells), `vms`
/// (a string list of VM names).
fn read_shm(blob: &Blob<'_>, node: &Node<'_>, sc: u32) -> Result<ShmSpec, DtbError> {
    const NODE: &str = "/chosen/hypervisor/shm";
    let bad = |property| DtbError::BadProperty { node: NODE, property };
    let name = node.prop(blob, "shm-name")?.and_then(str_prop).ok_or(bad("shm-name"))?;
    let name = String::try_from(name).map_err(|_| bad("shm-name"))?;
    let size = node.prop(blob, "size")?.ok_or(bad("size"))?;
    if size.len() != 4 * sc as usize {
        return Err(bad("size"));
    }
    let size = take_cells(size, &mut 0, sc).ok_or(bad("size"))?;
    let vms = node.prop(blob, "vms")?.ok_or(bad("vms"))?;
    let vms = string_list(vms).ok_or(bad("vms"))?;
    Ok(ShmSpec { name, size, vms })
}

/// A `switch@N` node: `switch-name` (string), and optional `rate` and
/// `burst` (two cells each, a u64) and `backlog` (one cell).
fn read_switch(blob: &Blob<'_>, node: &Node<'_>) -> Result<SwitchSpec, DtbError> {
    const NODE: &str = "/chosen/hypervisor/switch";
    let bad = |property| DtbError::BadProperty { node: NODE, property };
    let name = node.prop(blob, "switch-name")?.and_then(str_prop).ok_or(bad("switch-name"))?;
    let name = String::try_from(name).map_err(|_| bad("switch-name"))?;
    let u64_prop = |property: &'static str| -> Result<Option<u64>, DtbError> {
        match node.prop(blob, property)? {
            None => Ok(None),
            Some(raw) if raw.len() == 8 => Ok(take_cells(raw, &mut 0, 2)),
            Some(_) => Err(bad(property)),
        }
    };
    let rate = u64_prop("rate")?;
    let burst = u64_prop("burst")?;
    let backlog = match node.prop(blob, "backlog")? {
        None => None,
        Some(raw) if raw.len() == 4 => Some(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]])),
        Some(_) => return Err(bad("backlog")),
    };
    Ok(SwitchSpec { name, rate, burst, backlog })
}

/// A string-list property (`"a", "b"`): each entry UTF-8 of at most 16
/// bytes, at most N entries; None if anything does not fit.
fn string_list<const N: usize>(raw: &[u8]) -> Option<Vec<String<16>, N>> {
    let raw = raw.strip_suffix(&[0])?;
    let mut out = Vec::new();
    for item in raw.split(|&b| b == 0) {
        let s = from_utf8(item).ok()?;
        out.push(String::try_from(s).ok()?).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Looking one device up (pass-through devices, guest self-tests).

/// Finds the first node that matches `m` and has `compatible` and `reg`;
/// nodes under `/chosen` are skipped (the hypervisor's own VM
/// descriptions live there). Disabled nodes match too: a board may leave
/// a device disabled for the host that it gives to a VM.
pub(super) fn find_device(dtb: &[u8], m: DeviceMatch<'_>) -> Result<Option<DeviceNode>, DtbError> {
    use DtbError::Malformed;
    let blob = Blob::new(dtb)?;
    let mut stack: Vec<Node<'_>, MAX_DEPTH> = Vec::new();
    let mut c = blob.cursor(blob.struct_start);
    loop {
        match c.next()? {
            None => return Ok(None),
            Some(Token::Begin(name)) => {
                let node = Node::read(&blob, name, c.offset(), stack.last())?;
                stack.push(node).map_err(|_| Malformed("nodes nested too deeply"))?;
                if stack.get(1).is_some_and(|n| n.name == "chosen") {
                    continue;
                }
                let (Some(compatible), Some(reg)) = (node.prop(&blob, "compatible")?, node.prop(&blob, "reg")?) else {
                    continue;
                };
                let Ok(Some(region)) = reg_region(&stack, reg, 0, "(device)") else {
                    continue;
                };
                let hit = match m {
                    DeviceMatch::Compatible(want) => list_has(compatible, want),
                    DeviceMatch::RegBase(base) => region.base == base,
                };
                if !hit {
                    continue;
                }
                let mut dev = DeviceNode { region, ..Default::default() };
                for item in compatible.split(|&b| b == 0).filter(|i| !i.is_empty()) {
                    let mut one = String::new();
                    push_truncated(&mut one, from_utf8(item).unwrap_or(""));
                    let _ = dev.compatible.push(one);
                }
                if let Some(irqs) = node.prop(&blob, "interrupts")? {
                    dev.interrupts = u32_list(irqs).unwrap_or_default();
                }
                for name in DEVICE_U32_PROPS {
                    if let Some(v) = node.prop(&blob, name)?.and_then(u32_prop) {
                        let _ = dev.props.push((name, v));
                    }
                }
                return Ok(Some(dev));
            }
            Some(Token::End) => {
                stack.pop().ok_or(Malformed("FDT_END_NODE outside any node"))?;
            }
            Some(Token::Prop(..)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4-byte-aligned buffer, as the parser requires.
    #[repr(C, align(8))]
    struct Aligned<const N: usize>([u8; N]);

    /// The smallest valid DTB: header, empty reservation block, a root node
    /// with `nodes` inside (raw structure words), and a strings block.
    fn build(structure: &[u32], strings: &[u8]) -> Aligned<512> {
        let mut b = Aligned([0u8; 512]);
        let off_rsv = 40;
        let off_struct = off_rsv + 16;
        let size_struct = structure.len() * 4;
        let off_strings = off_struct + size_struct;
        let total = off_strings + strings.len();
        let header = [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            off_rsv as u32,
            17,
            16,
            0,
            strings.len() as u32,
            size_struct as u32,
        ];
        for (i, w) in header.iter().chain(structure).enumerate() {
            let at = if i < 10 { 4 * i } else { off_struct + 4 * (i - 10) };
            b.0[at..at + 4].copy_from_slice(&w.to_be_bytes());
        }
        b.0[off_strings..total].copy_from_slice(strings);
        b
    }

    fn total(b: &Aligned<512>) -> usize {
        be32_at(&b.0, 4).unwrap() as usize
    }

    const BEGIN: u32 = 1;
    const END_NODE: u32 = 2;
    const PROP: u32 = 3;

    #[rustfmt::skip]
    /// "/ { cpus { cpu@0 { device_type = "cpu"; reg = <0>; }; }; };" with
    /// `#address-cells = <1>` on /cpus.
    fn one_cpu() -> Aligned<512> {
        // Strings: "device_type\0reg\0#address-cells\0"
        let strings = b"device_type\0reg\0#address-cells\0";
        let s = |text: &str| u32::from_be_bytes(text.as_bytes()[..4].try_into().unwrap());
        build(
            &[
                BEGIN, 0, // "" (root)
                BEGIN, s("cpus"), 0,
                PROP, 4, 16, 1, // #address-cells = <1>
                BEGIN, s("cpu@"), s("0\0\0\0"),
                PROP, 4, 0, s("cpu\0"), // device_type = "cpu"
                PROP, 4, 12, 0, // reg = <0>
                END_NODE, END_NODE, END_NODE, FDT_END,
            ],
            strings,
        )
    }

    #[test]
    fn minimal_tree_parses() {
        let b = one_cpu();
        let p = parse(&b.0[..total(&b)]).unwrap();
        assert_eq!(p.cpus.len(), 1);
        assert_eq!(p.cpus[0].mpidr, 0);
        assert_eq!(p.cpus[0].enable_method, EnableMethod::None);
        assert!(p.uart.is_none() && p.gic.is_none() && p.memory.is_empty());
    }

    #[test]
    fn empty_is_missing() {
        assert_eq!(parse(&[]), Err(DtbError::Missing));
    }

    #[test]
    fn bad_magic_is_named() {
        let mut b = one_cpu();
        b.0[0] = 0xd0;
        b.0[3] = 0xee;
        let len = total(&b);
        assert_eq!(parse(&b.0[..len]), Err(DtbError::BadMagic(0xd00d_feee)));
    }

    #[test]
    fn short_header_is_malformed() {
        let b = one_cpu();
        assert!(matches!(parse(&b.0[..3]), Err(DtbError::Malformed(_))));
        assert!(matches!(parse(&b.0[..39]), Err(DtbError::Malformed(_))));
    }

    #[test]
    fn truncated_blob_is_malformed() {
        let b = one_cpu();
        let len = total(&b);
        for cut in 40..len {
            assert_eq!(
                parse(&b.0[..cut]),
                Err(DtbError::Malformed("totalsize is larger than the blob (truncated?)")),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn truncated_structure_is_malformed() {
        // totalsize and the block sizes agree with the length, but the
        // structure block stops in the middle of the tree.
        let b = one_cpu();
        let len = total(&b);
        for cut in 1..20 {
            let mut c = Aligned(b.0);
            let size_struct = be32_at(&c.0, 36).unwrap() - 4 * cut;
            c.0[36..40].copy_from_slice(&size_struct.to_be_bytes());
            assert!(matches!(parse(&c.0[..len]), Err(DtbError::Malformed(_))), "cut {cut}");
        }
    }

    #[test]
    fn unaligned_blob_is_refused() {
        let b = one_cpu();
        let len = total(&b);
        let mut shifted = Aligned([0u8; 520]);
        shifted.0[1..1 + len].copy_from_slice(&b.0[..len]);
        assert_eq!(parse(&shifted.0[1..1 + len]), Err(DtbError::Malformed("blob is not 4-byte aligned")));
    }

    #[test]
    #[rustfmt::skip]
    fn missing_cpus_is_named() {
        let b = build(&[BEGIN, 0, END_NODE, FDT_END], b"");
        assert_eq!(parse(&b.0[..total(&b)]), Err(DtbError::MissingNode("/cpus")));
        let b = build(
            &[BEGIN, 0, BEGIN, u32::from_be_bytes(*b"cpus"), 0, END_NODE, END_NODE, FDT_END],
            b"",
        );
        assert_eq!(parse(&b.0[..total(&b)]), Err(DtbError::MissingNode("/cpus/cpu")));
    }

    #[test]
    fn unbalanced_tree_is_malformed() {
        let b = build(&[BEGIN, 0, FDT_END], b"");
        assert_eq!(parse(&b.0[..total(&b)]), Err(DtbError::Malformed("structure block ends inside a node")));
        let b = build(&[BEGIN, 0, END_NODE, END_NODE, FDT_END], b"");
        assert_eq!(parse(&b.0[..total(&b)]), Err(DtbError::Malformed("FDT_END_NODE outside any node")));
    }

    #[test]
    fn property_name_outside_strings_is_malformed() {
        let b = build(&[BEGIN, 0, PROP, 0, 99, END_NODE, FDT_END], b"x\0");
        assert!(matches!(parse(&b.0[..total(&b)]), Err(DtbError::Malformed(_))));
    }

    #[test]
    fn baud_is_the_leading_number() {
        assert_eq!(parse_baud("1500000n8"), Some(1_500_000));
        assert_eq!(parse_baud("115200"), Some(115_200));
        assert_eq!(parse_baud("n8"), None);
        assert_eq!(parse_baud("99999999999999"), None);
    }

    #[test]
    fn ranges_translate_child_addresses() {
        let ranges =
            [0x100u32, 0, 0x1000_0000, 0x1000].iter().flat_map(|w| w.to_be_bytes()).collect::<std::vec::Vec<u8>>();
        let node = |address_cells, size_cells, ranges| Node {
            name: "",
            props: 0,
            address_cells,
            size_cells,
            ranges,
            interrupt_parent: None,
        };
        // root (2 cells) > bus (1 address, 1 size; child 0x100 -> parent 0x1000_0000) > device
        let stack = [node(2, 2, None), node(1, 1, Some(&ranges[..])), node(2, 1, None)];
        assert_eq!(translate(&stack, 0x180), Some(0x1000_0080));
        assert_eq!(translate(&stack, 0x1200), None);
        let no_ranges = [node(2, 2, None), node(1, 1, None), node(2, 1, None)];
        assert_eq!(translate(&no_ranges, 0x180), None);
    }
}
