//! `guest_kernel::binfmt_script`: execve's reading of a `#!` line, Linux
//! 6.1's `load_script` step by step. Any bytes give None (not a script),
//! an error, or an interpreter line: a name (empty only before a NUL)
//! with no blank, NUL or newline in it, found on the first line within the first `BINPRM_BUF_SIZE`
//! bytes, and an argument with no NUL or newline that does not start with
//! a blank; the interpreter's argv is the line's parts, the script, then
//! the script's arguments after its argv[0].

use guest_kernel::binfmt_script::{BINPRM_BUF_SIZE, interpreter_argv, parse};

/// Input: the start of a file.
pub fn fuzz(data: &[u8]) {
    let Some(r) = parse(data) else {
        assert!(!data.starts_with(b"#!"), "a #! file was not taken for a script");
        return;
    };
    assert!(data.starts_with(b"#!"));
    let Ok(s) = r else { return };
    let head = &data[..data.len().min(BINPRM_BUF_SIZE)];
    let line = &head[..head.iter().position(|&c| c == b'\n').unwrap_or(head.len())];
    let blank = |c: u8| c == b' ' || c == b'\t';
    let on_the_line = |part: &[u8]| part.is_empty() || line.windows(part.len()).any(|w| w == part);
    // Empty when a NUL follows the blanks after `#!`: Linux then looks up
    // "" and execve fails with ENOENT, and so does ours.
    assert!(on_the_line(&s.interp), "interpreter {:?} not on the first line", s.interp);
    assert!(!s.interp.iter().any(|&c| blank(c) || c == 0 || c == b'\n'), "bad name {:?}", s.interp);
    if let Some(a) = &s.arg {
        assert!(on_the_line(a), "argument {a:?} not on the first line");
        assert!(!a.contains(&0) && !a.contains(&b'\n') && a.first().is_none_or(|&c| !blank(c)), "bad argument {a:?}");
    }
    let argv: [&[u8]; 3] = [b"script", b"one", b"two"];
    let v = interpreter_argv(&s, b"/path/script", &argv);
    assert_eq!(v.len(), 1 + usize::from(s.arg.is_some()) + 1 + 2);
    assert_eq!((v[0], v[v.len() - 3], v[v.len() - 1]), (s.interp.as_slice(), &b"/path/script"[..], &b"two"[..]));
}
