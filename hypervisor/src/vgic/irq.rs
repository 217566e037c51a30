//! Per-interrupt virtual state (IHI 0069H §4.1 "interrupt states", §4.1.2
//! level-sensitive and edge-triggered behaviour).

/// How an interrupt is triggered (GICD_ICFGR<n>.Int_config, IHI 0069H §12.9.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Pending on a rising edge until acknowledged.
    Edge,
    /// Pending while the line is asserted (or a software pending latch is set).
    Level,
}

/// Priorities keep 5 bits, like most physical CPU interfaces
/// (ICH_VTR_EL2.PRIbits = 4); the low 3 bits are RAZ/WI (IHI 0069H §4.8).
pub const PRIORITY_MASK: u8 = 0xF8;

/// The virtual state of one interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqState {
    /// GICD_ISENABLER/ICENABLER bit.
    pub enabled: bool,
    /// Edge latch, or a software pending state set through ISPENDR.
    pub pending_latch: bool,
    /// Input line level, for level-sensitive interrupts.
    pub line_level: bool,
    /// Active (acknowledged, not yet deactivated).
    pub active: bool,
    /// Priority, lower is more urgent; always a multiple of 8.
    pub priority: u8,
    /// Group 1 (GICD_IGROUPR bit set) or group 0.
    pub group1: bool,
    /// Edge or level.
    pub trigger: Trigger,
    /// GICv3 GICD_IROUTER<n> affinity (Aff3 [39:32], Aff2..Aff0 [23:0]).
    pub route: u64,
    /// GICv2 GICD_ITARGETSR<n> CPU mask.
    pub targets: u8,
    /// Physical INTID for pass-through: the LR gets HW = 1 so that the
    /// guest's deactivation also deactivates the physical interrupt.
    pub hw_intid: Option<u32>,
    /// GICv2 SGIs: one pending bit per source CPU (IHI 0048B §4.3.13).
    pub sgi_sources: u8,
    /// Currently held in a list register of vCPU `lr_vcpu`.
    pub in_lr: bool,
    /// vCPU whose list registers hold the interrupt, or held it last while
    /// active: an active SPI stays with that vCPU until deactivated.
    pub lr_vcpu: u8,
}

impl IrqState {
    /// The reset state of an interrupt.
    pub const fn new(trigger: Trigger, group1: bool) -> Self {
        Self {
            enabled: false,
            pending_latch: false,
            line_level: false,
            active: false,
            priority: 0,
            group1,
            trigger,
            route: 0,
            targets: 0,
            hw_intid: None,
            sgi_sources: 0,
            in_lr: false,
            lr_vcpu: 0,
        }
    }

    /// Whether the interrupt is pending (IHI 0069H §4.1.2: a level-sensitive
    /// interrupt is pending while its line is asserted).
    pub fn is_pending(&self) -> bool {
        self.pending_latch || self.sgi_sources != 0 || (self.trigger == Trigger::Level && self.line_level)
    }

    /// Drives the input line. On an edge-triggered interrupt a rising edge
    /// sets the latch; a level-sensitive one simply follows the line.
    pub fn set_line(&mut self, level: bool) {
        if self.trigger == Trigger::Edge && level && !self.line_level {
            self.pending_latch = true;
        }
        self.line_level = level;
    }
}
