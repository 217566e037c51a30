//! Run-time VM control from the console: the keys after the `Ctrl-]`
//! prefix, the command line `Ctrl-]` `:` opens, its commands, and the
//! `list` table. The shape is Xen's `xl` (`xl list`, `xl pause`,
//! `xl unpause`, `xl reboot`, `xl shutdown`, `xl create`) typed at the
//! hypervisor's console the way QEMU's monitor or Xen's debug keys are.
//!
//! This module is the pure core, tested on the host: a key state machine
//! ([`Keys`]) that says what each typed byte does, the parser
//! ([`parse`]), the command table ([`plan`]: what a command does to a VM
//! in a given [`VmState`], or the one-line error), the VM lookup
//! ([`resolve`]) and the table ([`list_table`]). The glue that reads the
//! UART and acts on VMs is `arch/aarch64/console_in.rs`; the actions are
//! VM-wide requests (`vmreq`) posted by `arch/aarch64/vmm.rs`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The prefix key: Ctrl-] (GS, 0x1d). (Ctrl-A is QEMU's own escape.)
pub const PREFIX: u8 = 0x1d;

/// The longest command line; further characters are not taken.
pub const LINE_MAX: usize = 64;

/// The command line's prompt.
pub const PROMPT: &str = "el2-hyp> ";

/// What the `Ctrl-]` keys do (`Ctrl-]` `h`), one line each.
pub const KEYS_HELP: &[&str] = &[
    "console keys: Ctrl-] then",
    "  n        input to the next running VM",
    "  0-9      input to VM number N",
    "  s        every VM's exit statistics",
    "  :        a command line (list, pause, unpause, reset, stop, start, stats, help)",
    "  h        this list",
    "  Ctrl-]   a literal Ctrl-] to the VM",
];

/// The command line's commands (`help`), one line each.
pub const COMMANDS_HELP: &[&str] = &[
    "commands (VM is a name or a number from list):",
    "  list          every VM: state, vCPUs and their physical CPUs, memory, exits",
    "  pause VM      its vCPUs stop entering the guest (timers, interrupts kept)",
    "  unpause VM    it goes on where it was",
    "  reset VM      reload it from its images (as PSCI SYSTEM_RESET)",
    "  stop VM       stop it (the machine powers off after the last one)",
    "  start VM      boot a stopped VM again from its images",
    "  stats VM      its exit statistics",
    "  help          this list",
    "Enter runs the line, Backspace erases, Esc or Ctrl-C cancels",
];

/// A command line being typed (at most [`LINE_MAX`] printable bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    bytes: [u8; LINE_MAX],
    len: usize,
}

impl Line {
    /// Empty.
    pub const fn new() -> Self {
        Self { bytes: [0; LINE_MAX], len: 0 }
    }

    /// The text typed (printable ASCII only, so always UTF-8).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

/// What one typed byte does ([`Keys::input`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Goes to the VM with the input focus.
    Deliver(u8),
    /// Nothing (the prefix, a byte the command line does not take).
    None,
    /// `Ctrl-]` `n`: focus to the next running VM.
    FocusNext,
    /// `Ctrl-]` `0`..`9`: focus to VM N.
    Focus(usize),
    /// `Ctrl-]` `s`: every VM's exit statistics.
    AllStats,
    /// `Ctrl-]` `h`: list the keys.
    KeysHelp,
    /// `Ctrl-]` then a key that means nothing: a one-line hint.
    UnknownKey,
    /// `Ctrl-]` `:`: the command line opened (print the prompt).
    Open,
    /// A character taken by the command line (echo it).
    Echo(u8),
    /// Backspace took the last character (erase it on the terminal).
    Erase,
    /// Esc or Ctrl-C: the command line closed, nothing run.
    Cancel,
    /// Enter: the command line closed; run this.
    Run(Line),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    Prefixed,
    Command,
}

/// The console's key state machine: plain input goes to a VM, `Ctrl-]`
/// starts a key, `Ctrl-]` `:` opens a line editor whose bytes reach no VM.
#[derive(Clone, Copy, Debug)]
pub struct Keys {
    mode: Mode,
    line: Line,
    /// The command line was just ended by CR: an LF right after it is the
    /// rest of a CR LF pair, not input for the VM.
    after_cr: bool,
}

impl Keys {
    /// Normal input, no command line.
    pub const fn new() -> Self {
        Self { mode: Mode::Normal, line: Line::new(), after_cr: false }
    }

    /// The command line typed so far.
    pub fn line(&self) -> Line {
        self.line
    }

    /// Whether the command line is open (typed bytes reach no VM).
    pub fn command_open(&self) -> bool {
        self.mode == Mode::Command
    }

    /// Takes one typed byte.
    pub fn input(&mut self, b: u8) -> Key {
        let after_cr = core::mem::take(&mut self.after_cr);
        match self.mode {
            Mode::Normal if b == PREFIX => {
                self.mode = Mode::Prefixed;
                Key::None
            }
            Mode::Normal if b == b'\n' && after_cr => Key::None,
            Mode::Normal => Key::Deliver(b),
            Mode::Prefixed => {
                self.mode = Mode::Normal;
                match b {
                    b'n' => Key::FocusNext,
                    b'0'..=b'9' => Key::Focus((b - b'0') as usize),
                    b's' => Key::AllStats,
                    b'h' => Key::KeysHelp,
                    b':' => {
                        self.mode = Mode::Command;
                        self.line = Line::new();
                        Key::Open
                    }
                    PREFIX => Key::Deliver(PREFIX),
                    _ => Key::UnknownKey,
                }
            }
            Mode::Command => match b {
                b'\r' | b'\n' => {
                    self.mode = Mode::Normal;
                    self.after_cr = b == b'\r';
                    Key::Run(self.line)
                }
                0x1b | 0x03 => {
                    self.mode = Mode::Normal;
                    Key::Cancel
                }
                0x7f | 0x08 if self.line.len > 0 => {
                    self.line.len -= 1;
                    Key::Erase
                }
                0x20..=0x7e if self.line.len < LINE_MAX => {
                    self.line.bytes[self.line.len] = b;
                    self.line.len += 1;
                    Key::Echo(b)
                }
                _ => Key::None,
            },
        }
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

/// A command that acts on one VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmOp {
    Pause,
    Unpause,
    Reset,
    Stop,
    Start,
    Stats,
}

impl VmOp {
    /// The command's name, as typed.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Unpause => "unpause",
            Self::Reset => "reset",
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Stats => "stats",
        }
    }

    const ALL: [VmOp; 6] = [Self::Pause, Self::Unpause, Self::Reset, Self::Stop, Self::Start, Self::Stats];
}

/// A parsed command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Nothing typed.
    Empty,
    List,
    Help,
    /// A command on the VM named or numbered `target`.
    Vm(VmOp, &'a str),
}

/// Parses a command line; the error is the one line to print.
pub fn parse(line: &str) -> Result<Command<'_>, String> {
    let mut words = line.split_ascii_whitespace();
    let Some(cmd) = words.next() else { return Ok(Command::Empty) };
    let arg = words.next();
    if let Some(extra) = words.next() {
        return Err(format!("{cmd}: unexpected \"{extra}\"; try help"));
    }
    let no_arg = |c: Command<'static>| match arg {
        None => Ok(c),
        Some(a) => Err(format!("{cmd}: takes no argument (got \"{a}\")")),
    };
    match cmd {
        "list" => no_arg(Command::List),
        "help" => no_arg(Command::Help),
        _ => match VmOp::ALL.into_iter().find(|op| op.name() == cmd) {
            Some(op) => arg.map(|a| Command::Vm(op, a)).ok_or_else(|| format!("{cmd}: which VM? ({cmd} NAME|ID)")),
            None => Err(format!("unknown command \"{cmd}\"; try help")),
        },
    }
}

/// Finds VM `target` among `names` (by VM number): its exact name first,
/// else its number.
pub fn resolve(target: &str, names: &[&str]) -> Result<usize, String> {
    if let Some(i) = names.iter().position(|n| *n == target) {
        return Ok(i);
    }
    match target.parse::<usize>() {
        Ok(i) if i < names.len() => Ok(i),
        _ => Err(format!("no VM \"{target}\" (see list)")),
    }
}

/// A VM's state as `list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
    Running,
    /// Paused, with a vCPU still on its way out of the guest.
    Pausing,
    Paused,
    /// A reset is pending or under way.
    Resetting,
    /// A stop is pending or under way.
    Stopping,
    /// A start is pending or under way.
    Starting,
    Stopped,
}

impl VmState {
    /// From what the VM's atomics say (`vmreq` and its stopped flag).
    pub fn of(stopped: bool, pending: Option<crate::vmreq::Request>, paused: bool, parked: bool) -> Self {
        use crate::vmreq::Request;
        match (pending, stopped) {
            (Some(Request::Stop), false) => Self::Stopping,
            (Some(Request::Start), true) => Self::Starting,
            (_, true) => Self::Stopped,
            (Some(Request::Reset), _) => Self::Resetting,
            _ if paused && parked => Self::Paused,
            _ if paused => Self::Pausing,
            _ => Self::Running,
        }
    }

    /// As printed.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Pausing => "pausing",
            Self::Paused => "paused",
            Self::Resetting => "resetting",
            Self::Stopping => "stopping",
            Self::Starting => "starting",
            Self::Stopped => "stopped",
        }
    }
}

/// The command table: whether `op` applies to a VM in `state`. `Ok` means
/// carry it out; the error is the one line to print, and nothing happens.
pub fn plan(op: VmOp, state: VmState) -> Result<(), &'static str> {
    use VmState::*;
    match (op, state) {
        (VmOp::Stats, _) => Ok(()),
        (VmOp::Pause, Running | Resetting) => Ok(()),
        (VmOp::Pause, Pausing | Paused) => Err("is already paused"),
        (VmOp::Unpause, Pausing | Paused) => Ok(()),
        (VmOp::Unpause, _) if state.is_down() => Err("is stopped"),
        (VmOp::Unpause, _) => Err("is not paused"),
        (VmOp::Reset, Running | Pausing | Paused | Resetting) => Ok(()),
        (VmOp::Stop, Running | Pausing | Paused | Resetting) => Ok(()),
        (VmOp::Stop, _) => Err("is already stopped"),
        (VmOp::Start, Stopped) => Ok(()),
        (VmOp::Start, Starting) => Err("is already starting"),
        (VmOp::Start, _) => Err("is not stopped (stop it first, or reset it)"),
        (VmOp::Pause | VmOp::Reset, _) => Err("is stopped (start it first)"),
    }
}

impl VmState {
    /// Stopped, or on its way there or back.
    fn is_down(self) -> bool {
        matches!(self, Self::Stopping | Self::Stopped | Self::Starting)
    }
}

/// One VM's row of `list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    pub id: usize,
    pub name: &'a str,
    pub state: VmState,
    /// The physical CPU of each vCPU, in vCPU order.
    pub pcpus: Vec<usize>,
    pub memory: u64,
    /// Exits of all its vCPUs since boot.
    pub exits: u64,
    /// Exits per second over the period of the table's last line.
    pub per_second: u64,
}

/// `delta` events over `ticks` of a `freq` Hz counter, per second.
pub fn rate(delta: u64, ticks: u64, freq: u64) -> u64 {
    if ticks == 0 {
        return 0;
    }
    (delta as u128 * freq as u128 / ticks as u128) as u64
}

/// `list`'s table: a header, one row per VM, and what the exits/s are
/// counted over (`since_last`: `None` since boot, else the time since the
/// last `list` in hundredths of a second).
pub fn list_table(rows: &[Row], since_last: Option<u64>) -> Vec<String> {
    let mut out = Vec::with_capacity(rows.len() + 2);
    out.push(format!(
        "{:>3} {:<15} {:<9} {:>5} {:<12} {:>8} {:>10} {:>8}",
        "ID", "NAME", "STATE", "VCPUS", "ON CPUS", "MEMORY", "EXITS", "EXITS/S"
    ));
    for r in rows {
        let cpus: Vec<String> = r.pcpus.iter().map(|c| format!("{c}")).collect();
        out.push(format!(
            "{:>3} {:<15} {:<9} {:>5} {:<12} {:>4} MiB {:>10} {:>8}",
            r.id,
            r.name,
            r.state.name(),
            r.pcpus.len(),
            cpus.join(","),
            r.memory >> 20,
            r.exits,
            r.per_second
        ));
    }
    out.push(match since_last {
        None => String::from("(exits/s since boot; ON CPUS: the physical CPU of each vCPU)"),
        Some(t) => format!(
            "(exits/s since the last list, {}.{:02} s ago; ON CPUS: the physical CPU of each vCPU)",
            t / 100,
            t % 100
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmreq::Request;

    fn typed(k: &mut Keys, s: &[u8]) -> Vec<Key> {
        s.iter().map(|&b| k.input(b)).collect()
    }

    fn line(s: &str) -> Line {
        let mut l = Line::new();
        l.bytes[..s.len()].copy_from_slice(s.as_bytes());
        l.len = s.len();
        l
    }

    #[test]
    fn plain_input_goes_to_the_vm_and_the_old_keys_still_work() {
        let mut k = Keys::new();
        assert_eq!(typed(&mut k, b"ab"), [Key::Deliver(b'a'), Key::Deliver(b'b')]);
        assert_eq!(typed(&mut k, b"\x1dn"), [Key::None, Key::FocusNext]);
        assert_eq!(typed(&mut k, b"\x1d7"), [Key::None, Key::Focus(7)]);
        assert_eq!(typed(&mut k, b"\x1ds"), [Key::None, Key::AllStats]);
        assert_eq!(typed(&mut k, b"\x1d\x1d"), [Key::None, Key::Deliver(PREFIX)]);
        assert_eq!(typed(&mut k, b"\x1dh"), [Key::None, Key::KeysHelp]);
        assert_eq!(typed(&mut k, b"\x1dq"), [Key::None, Key::UnknownKey]);
        assert_eq!(typed(&mut k, b"\n"), [Key::Deliver(b'\n')], "an LF is input unless it ends a command's CR");
    }

    #[test]
    fn the_command_line_takes_every_byte_until_enter() {
        let mut k = Keys::new();
        assert_eq!(typed(&mut k, b"\x1d:"), [Key::None, Key::Open]);
        assert!(k.command_open());
        assert_eq!(typed(&mut k, b"lisx"), [Key::Echo(b'l'), Key::Echo(b'i'), Key::Echo(b's'), Key::Echo(b'x')]);
        assert_eq!(k.input(0x7f), Key::Erase);
        assert_eq!(typed(&mut k, b"t\x01\x1d"), [Key::Echo(b't'), Key::None, Key::None], "control bytes ignored");
        assert_eq!(k.input(b'\r'), Key::Run(line("list")));
        assert!(!k.command_open());
        assert_eq!(k.input(b'\n'), Key::None, "the LF of a CR LF");
        assert_eq!(k.input(b'\n'), Key::Deliver(b'\n'), "a second one is input");
    }

    #[test]
    fn backspace_stops_at_the_start_and_esc_or_ctrl_c_cancels() {
        let mut k = Keys::new();
        typed(&mut k, b"\x1d:");
        assert_eq!(typed(&mut k, b"a\x08\x08"), [Key::Echo(b'a'), Key::Erase, Key::None]);
        assert_eq!(k.input(0x1b), Key::Cancel);
        assert_eq!(k.input(b'x'), Key::Deliver(b'x'));
        typed(&mut k, b"\x1d:stop a");
        assert_eq!(k.input(0x03), Key::Cancel);
        assert_eq!(typed(&mut k, b"\x1d:\n"), [Key::None, Key::Open, Key::Run(Line::new())], "a new, empty line");
    }

    #[test]
    fn a_long_line_is_cut_at_line_max() {
        let mut k = Keys::new();
        typed(&mut k, b"\x1d:");
        let keys = typed(&mut k, &[b'x'; LINE_MAX + 3]);
        assert_eq!(keys.iter().filter(|k| **k == Key::Echo(b'x')).count(), LINE_MAX);
        let Key::Run(l) = k.input(b'\n') else { panic!() };
        assert_eq!(l.as_str().len(), LINE_MAX);
    }

    #[test]
    fn parses_every_command_and_says_what_is_wrong() {
        assert_eq!(parse("  "), Ok(Command::Empty));
        assert_eq!(parse("list"), Ok(Command::List));
        assert_eq!(parse(" help "), Ok(Command::Help));
        for op in VmOp::ALL {
            assert_eq!(parse(&format!("{}  beta", op.name())), Ok(Command::Vm(op, "beta")));
        }
        assert_eq!(parse("frobnicate"), Err(String::from("unknown command \"frobnicate\"; try help")));
        assert_eq!(parse("pause"), Err(String::from("pause: which VM? (pause NAME|ID)")));
        assert_eq!(parse("list all"), Err(String::from("list: takes no argument (got \"all\")")));
        assert_eq!(parse("stop a b"), Err(String::from("stop: unexpected \"b\"; try help")));
        assert_eq!(parse("LIST"), Err(String::from("unknown command \"LIST\"; try help")));
    }

    #[test]
    fn resolves_names_before_numbers() {
        let names = ["alpha", "1", "beta"];
        assert_eq!(resolve("beta", &names), Ok(2));
        assert_eq!(resolve("0", &names), Ok(0));
        assert_eq!(resolve("1", &names), Ok(1), "a VM named 1");
        assert_eq!(resolve("2", &names), Ok(2));
        assert_eq!(resolve("3", &names), Err(String::from("no VM \"3\" (see list)")));
        assert_eq!(resolve("gamma", &names), Err(String::from("no VM \"gamma\" (see list)")));
        assert_eq!(resolve("Alpha", &names), Err(String::from("no VM \"Alpha\" (see list)")));
    }

    #[test]
    fn state_from_the_vms_flags() {
        use VmState::*;
        assert_eq!(VmState::of(false, None, false, false), Running);
        assert_eq!(VmState::of(false, None, true, false), Pausing);
        assert_eq!(VmState::of(false, None, true, true), Paused);
        assert_eq!(VmState::of(false, Some(Request::Reset), true, true), Resetting);
        assert_eq!(VmState::of(false, Some(Request::Stop), false, false), Stopping);
        assert_eq!(VmState::of(true, None, false, false), Stopped);
        assert_eq!(VmState::of(true, Some(Request::Start), false, false), Starting);
        assert_eq!(VmState::of(true, Some(Request::Stop), false, false), Stopped);
    }

    #[test]
    fn the_command_table() {
        use VmState::*;
        let all = [Running, Pausing, Paused, Resetting, Stopping, Starting, Stopped];
        let ok = |op, states: &[VmState]| {
            for s in all {
                assert_eq!(plan(op, s).is_ok(), states.contains(&s), "{op:?} on {s:?}");
            }
        };
        ok(VmOp::Stats, &all);
        ok(VmOp::Pause, &[Running, Resetting]);
        ok(VmOp::Unpause, &[Pausing, Paused]);
        ok(VmOp::Reset, &[Running, Pausing, Paused, Resetting]);
        ok(VmOp::Stop, &[Running, Pausing, Paused, Resetting]);
        ok(VmOp::Start, &[Stopped]);
        assert_eq!(plan(VmOp::Pause, Paused), Err("is already paused"));
        assert_eq!(plan(VmOp::Unpause, Running), Err("is not paused"));
        assert_eq!(plan(VmOp::Unpause, Stopped), Err("is stopped"));
        assert_eq!(plan(VmOp::Reset, Stopped), Err("is stopped (start it first)"));
        assert_eq!(plan(VmOp::Start, Running), Err("is not stopped (stop it first, or reset it)"));
        assert_eq!(plan(VmOp::Stop, Stopped), Err("is already stopped"));
    }

    #[test]
    fn rates_do_not_overflow_or_divide_by_zero() {
        assert_eq!(rate(500, 62_500_000, 62_500_000), 500);
        assert_eq!(rate(500, 0, 62_500_000), 0);
        assert_eq!(rate(u64::MAX / 2, 1 << 40, 1 << 30), (u64::MAX / 2) >> 10);
    }

    #[test]
    fn the_list_table_lines_up() {
        let rows = [
            Row {
                id: 0,
                name: "alpha",
                state: VmState::Running,
                pcpus: alloc::vec![0, 1],
                memory: 128 << 20,
                exits: 12345,
                per_second: 678,
            },
            Row {
                id: 1,
                name: "beta",
                state: VmState::Paused,
                pcpus: alloc::vec![1],
                memory: 64 << 20,
                exits: 7,
                per_second: 0,
            },
        ];
        let t = list_table(&rows, Some(203));
        assert_eq!(
            t,
            [
                " ID NAME            STATE     VCPUS ON CPUS        MEMORY      EXITS  EXITS/S",
                "  0 alpha           running       2 0,1           128 MiB      12345      678",
                "  1 beta            paused        1 1              64 MiB          7        0",
                "(exits/s since the last list, 2.03 s ago; ON CPUS: the physical CPU of each vCPU)",
            ]
        );
        assert!(list_table(&[], None)[1].starts_with("(exits/s since boot"));
    }
}
