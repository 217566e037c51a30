//! `#!` scripts (Linux fs/binfmt_script.c): a file that starts with `#!`
//! names its interpreter and at most one argument on its first line;
//! `execve` runs the interpreter instead, with the argument and the
//! script's path before the script's own arguments. Pure: the exec glue
//! (`kernel/exec.rs`) reads the file and loops.

/// `BINPRM_BUF_SIZE`: how much of the file's start Linux reads to find the
/// interpreter line.
pub const BINPRM_BUF_SIZE: usize = 256;

/// How many `#!` rewrites one exec may make (a script whose interpreter
/// is a script...): Linux 6.1's `exec_binprm` gives up when a sixth
/// handler call would be needed (`depth > 5`), so five scripts in a chain
/// run and a sixth is ELOOP.
pub const MAX_RECURSION: usize = 5;

/// Why a `#!` line cannot be used (execve's ENOEXEC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoInterpreter;

/// The interpreter line of a `#!` script: the interpreter's path and the
/// optional single argument (everything after the path on the line, with
/// the spaces and tabs around it trimmed, as Linux does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shebang<'a> {
    pub interp: &'a [u8],
    pub arg: Option<&'a [u8]>,
}

fn is_blank(c: &u8) -> bool {
    *c == b' ' || *c == b'\t'
}

/// `load_script`'s parse: None if the file is not a script; an error if
/// it is one without a usable interpreter (none named, or the name cut by
/// the end of the first [`BINPRM_BUF_SIZE`] bytes).
pub fn parse(file: &[u8]) -> Option<Result<Shebang<'_>, NoInterpreter>> {
    let rest = file.strip_prefix(b"#!")?;
    let buf = &file[..file.len().min(BINPRM_BUF_SIZE)];
    let rest = &rest[..rest.len().min(buf.len() - 2)];
    let (line, whole) = match rest.iter().position(|&c| c == b'\n') {
        Some(n) => (&rest[..n], true),
        None => (rest, file.len() <= BINPRM_BUF_SIZE),
    };
    let line = line.trim_ascii_start_matches();
    let end = line.iter().position(|c| is_blank(c) || *c == 0).unwrap_or(line.len());
    let interp = &line[..end];
    // Linux 5.1+: a line cut by the buffer is fine only if the
    // interpreter's name ended before the cut.
    if interp.is_empty() || (!whole && end == line.len()) {
        return Some(Err(NoInterpreter));
    }
    let arg = line[end..].trim_ascii_start_matches();
    let arg = &arg[..arg.iter().rposition(|c| !is_blank(c)).map_or(0, |i| i + 1)];
    let arg = &arg[..arg.iter().position(|&c| c == 0).unwrap_or(arg.len())];
    Some(Ok(Shebang { interp, arg: (!arg.is_empty()).then_some(arg) }))
}

/// The argument vector the interpreter gets: its path, the line's
/// argument, the script's path as given to execve, then the script's own
/// arguments after its argv[0] (which is dropped, as Linux does).
pub fn interpreter_argv<'a>(s: &Shebang<'a>, script: &'a [u8], argv: &[&'a [u8]]) -> alloc::vec::Vec<&'a [u8]> {
    let mut v = alloc::vec![s.interp];
    v.extend(s.arg);
    v.push(script);
    v.extend(argv.iter().skip(1).copied());
    v
}

trait TrimBlanks {
    fn trim_ascii_start_matches(&self) -> &Self;
}

impl TrimBlanks for [u8] {
    fn trim_ascii_start_matches(&self) -> &[u8] {
        &self[self.iter().position(|c| !is_blank(c)).unwrap_or(self.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_and_one_argument() {
        assert_eq!(parse(b"#!/bin/sh\necho hi\n"), Some(Ok(Shebang { interp: b"/bin/sh", arg: None })));
        assert_eq!(
            parse(b"#! \t/usr/bin/env  python3 -u \t\nprint()"),
            Some(Ok(Shebang { interp: b"/usr/bin/env", arg: Some(b"python3 -u") }))
        );
        assert_eq!(parse(b"#!/bin/sh"), Some(Ok(Shebang { interp: b"/bin/sh", arg: None })), "no newline, short file");
        assert_eq!(parse(b"\x7fELF"), None);
        assert_eq!(parse(b"#"), None);
    }

    #[test]
    fn no_interpreter_is_enoexec() {
        assert_eq!(parse(b"#!\n"), Some(Err(NoInterpreter)));
        assert_eq!(parse(b"#!   \t\n/bin/sh"), Some(Err(NoInterpreter)));
        // The name runs past the first 256 bytes: cut, refused.
        let mut long = b"#!/".to_vec();
        long.resize(300, b'a');
        assert_eq!(parse(&long), Some(Err(NoInterpreter)));
        // The name ends inside them; the argument is cut, as in Linux.
        let mut cut = b"#!/bin/sh ".to_vec();
        cut.resize(300, b'b');
        let s = parse(&cut).unwrap().unwrap();
        assert_eq!((s.interp, s.arg.map(<[u8]>::len)), (&b"/bin/sh"[..], Some(256 - 10)));
    }

    #[test]
    fn the_interpreter_gets_the_script_path_and_the_arguments_after_argv0() {
        let s = Shebang { interp: b"/bin/sh", arg: Some(b"-e") };
        let v = interpreter_argv(&s, b"./run.sh", &[b"run.sh", b"a", b"b"]);
        assert_eq!(v, [&b"/bin/sh"[..], b"-e", b"./run.sh", b"a", b"b"]);
        let s = Shebang { interp: b"/bin/tests", arg: None };
        assert_eq!(interpreter_argv(&s, b"/s", &[]), [&b"/bin/tests"[..], b"/s"]);
    }
}
