//! `#!` scripts (Linux fs/binfmt_script.c): a file that starts with `#!`
//! names its interpreter and at most one argument on its first line;
//! `execve` runs the interpreter instead, with the argument and the
//! script's path before the script's own arguments. Pure: the exec glue
//! (`kernel/exec.rs`) reads the file and loops.

use alloc::vec::Vec;

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
/// optional single argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shebang {
    pub interp: Vec<u8>,
    pub arg: Option<Vec<u8>>,
}

fn spacetab(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn terminator(c: u8) -> bool {
    spacetab(c) || c == 0
}

/// Linux 6.1's `load_script`, step by step, on the file's first
/// [`BINPRM_BUF_SIZE`] bytes (zero-filled past a shorter file, as
/// `bprm->buf`): None if the file is not a script; an error if it is one
/// without a usable interpreter (none named, or the name cut by the end of
/// the buffer). The line ends at the first newline; trailing spaces and
/// tabs go; the name is what follows the blanks after `#!` up to a blank or
/// NUL; the argument, if the name ended with a blank, is the rest from the
/// next non-blank, as a C string (up to a NUL).
pub fn parse(file: &[u8]) -> Option<Result<Shebang, NoInterpreter>> {
    if !file.starts_with(b"#!") {
        return None;
    }
    let mut buf = [0u8; BINPRM_BUF_SIZE];
    let n = file.len().min(BINPRM_BUF_SIZE);
    buf[..n].copy_from_slice(&file[..n]);
    let buf_end = BINPRM_BUF_SIZE - 1;
    let next_non_spacetab = |from: usize, to: usize| (from..to).find(|&i| !spacetab(buf[i]));
    let next_terminator = |from: usize, to: usize| (from..to).find(|&i| terminator(buf[i]));
    let mut i_end = match buf.iter().position(|&c| c == b'\n') {
        Some(e) => e,
        None => {
            // No newline: the interpreter's name must end inside the buffer.
            let Some(start) = next_non_spacetab(2, buf_end) else { return Some(Err(NoInterpreter)) };
            if next_terminator(start, buf_end).is_none() {
                return Some(Err(NoInterpreter));
            }
            buf_end
        }
    };
    while i_end > 2 && spacetab(buf[i_end - 1]) {
        i_end -= 1;
    }
    let Some(i_name) = next_non_spacetab(2, i_end) else { return Some(Err(NoInterpreter)) };
    let i_sep = next_terminator(i_name, i_end);
    let i_arg = i_sep.filter(|&s| buf[s] != 0).and_then(|s| next_non_spacetab(s, i_end));
    let interp = buf[i_name..i_sep.unwrap_or(i_end)].to_vec();
    let arg = i_arg.map(|a| {
        let arg = &buf[a..i_end];
        arg[..arg.iter().position(|&c| c == 0).unwrap_or(arg.len())].to_vec()
    });
    Some(Ok(Shebang { interp, arg }))
}

/// The argument vector the interpreter gets: its path, the line's
/// argument, the script's path as given to execve, then the script's own
/// arguments after its argv[0] (which is dropped, as Linux does).
pub fn interpreter_argv<'a>(s: &'a Shebang, script: &'a [u8], argv: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut v = alloc::vec![s.interp.as_slice()];
    v.extend(s.arg.as_deref());
    v.push(script);
    v.extend(argv.iter().skip(1).copied());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(interp: &[u8], arg: Option<&[u8]>) -> Option<Result<Shebang, NoInterpreter>> {
        Some(Ok(Shebang { interp: interp.to_vec(), arg: arg.map(<[u8]>::to_vec) }))
    }

    #[test]
    fn interpreter_and_one_argument() {
        assert_eq!(parse(b"#!/bin/sh\necho hi\n"), sb(b"/bin/sh", None));
        assert_eq!(parse(b"#! \t/usr/bin/env  python3 -u \t\nprint()"), sb(b"/usr/bin/env", Some(b"python3 -u")));
        assert_eq!(parse(b"#!/bin/sh"), sb(b"/bin/sh", None), "no newline, short file");
        // A NUL ends the name with no argument; inside the argument it ends
        // the argument (a C string), after the line's blanks were trimmed.
        assert_eq!(parse(b"#!/bin/sh\0 -x\n"), sb(b"/bin/sh", None));
        // A NUL right after the blanks: an empty name, which execve then
        // does not find (ENOENT), as on Linux.
        assert_eq!(parse(b"#! \0/bin/sh\n"), sb(b"", None));
        assert_eq!(parse(b"#!/a python3 \0\0 \t\n"), sb(b"/a", Some(b"python3 ")));
        assert_eq!(parse(b"\x7fELF"), None);
        assert_eq!(parse(b"#"), None);
    }

    #[test]
    fn no_interpreter_is_enoexec() {
        assert_eq!(parse(b"#!\n"), Some(Err(NoInterpreter)));
        assert_eq!(parse(b"#!   \t\n/bin/sh"), Some(Err(NoInterpreter)));
        // The name runs past the buffer: cut, refused.
        let mut long = b"#!/".to_vec();
        long.resize(300, b'a');
        assert_eq!(parse(&long), Some(Err(NoInterpreter)));
        // The name ends inside it; the argument is cut, as in Linux (at
        // the buffer's last byte, which it keeps for the terminator).
        let mut cut = b"#!/bin/sh ".to_vec();
        cut.resize(300, b'b');
        let s = parse(&cut).unwrap().unwrap();
        assert_eq!((s.interp.as_slice(), s.arg.map(|a| a.len())), (&b"/bin/sh"[..], Some(255 - 10)));
    }

    #[test]
    fn the_interpreter_gets_the_script_path_and_the_arguments_after_argv0() {
        let s = Shebang { interp: b"/bin/sh".to_vec(), arg: Some(b"-e".to_vec()) };
        let v = interpreter_argv(&s, b"./run.sh", &[b"run.sh", b"a", b"b"]);
        assert_eq!(v, [&b"/bin/sh"[..], b"-e", b"./run.sh", b"a", b"b"]);
        let s = Shebang { interp: b"/bin/tests".to_vec(), arg: None };
        assert_eq!(interpreter_argv(&s, b"/s", &[]), [&b"/bin/tests"[..], b"/s"]);
    }
}
