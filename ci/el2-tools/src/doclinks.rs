//! Checks the links from the docs into the code, so that a walk through
//! the code ("follow one hvc") cannot silently point at the wrong line.
//!
//! A link is a markdown `[text](target)` whose target is a relative path
//! (not `http:`, `mailto:` or a bare `#anchor`). Its file or directory must
//! exist. A line anchor (`#L42` or `#L42-L50`) must be within the file,
//! and when the link text names a symbol in backticks (`` [`handle_exception`](…#L92) ``,
//! `` [`vmm::run_cpu`](…) ``; the last `::` segment, without `()`, counts)
//! that line must contain it. [`fix`] moves a stale anchor to the line
//! that now defines the symbol (`fn NAME`, `struct NAME`, an asm label
//! `NAME:`, ...), which is what `doc-links --fix` does.

use std::path::{Path, PathBuf};

/// One link found in a markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// 1-based line of the markdown file.
    pub line: usize,
    pub text: String,
    pub target: String,
}

/// Every `[text](target)` in `md`, with its line; images and external
/// links included (the caller filters).
pub fn links(md: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, line) in md.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let b = line.as_bytes();
        let mut k = 0;
        while let Some(open) = line[k..].find('[').map(|o| o + k) {
            // The matching `]` (link texts here do not nest brackets).
            let Some(close) = line[open + 1..].find(']').map(|c| c + open + 1) else { break };
            if b.get(close + 1) == Some(&b'(')
                && let Some(end) = line[close + 2..].find(')').map(|e| e + close + 2)
            {
                out.push(Link {
                    line: i + 1,
                    text: line[open + 1..close].to_string(),
                    target: line[close + 2..end].trim().to_string(),
                });
                k = end + 1;
                continue;
            }
            k = open + 1;
        }
    }
    out
}

/// The symbol a link's text names: the last `::` segment of its first
/// backticked word, without `()`, or None for a file name or plain text.
pub fn symbol(text: &str) -> Option<String> {
    let start = text.find('`')? + 1;
    let end = text[start..].find('`')? + start;
    let code = text[start..end].trim();
    let last = code.rsplit("::").next()?.trim_end_matches("()");
    let last = last.rsplit('.').next().filter(|_| !looks_like_file(last)).unwrap_or(last);
    let ok = !last.is_empty()
        && !looks_like_file(last)
        && last.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '!');
    ok.then(|| last.trim_end_matches('!').to_string())
}

fn looks_like_file(s: &str) -> bool {
    s.contains('/') || [".rs", ".S", ".md", ".toml", ".ld", ".sh", ".dts", ".json"].iter().any(|e| s.ends_with(e))
}

/// A line anchor `#L12` or `#L12-L20`: the first line.
fn line_anchor(anchor: &str) -> Option<usize> {
    let a = anchor.strip_prefix('L')?;
    let first = a.split('-').next()?;
    first.parse().ok()
}

/// Where `sym` is defined in `source` (1-based), if it is.
pub fn definition(source: &str, sym: &str) -> Option<usize> {
    let kinds = ["fn ", "struct ", "enum ", "trait ", "const ", "static ", "mod ", "type ", "macro_rules! ", "union "];
    for (i, l) in source.lines().enumerate() {
        let t = l.trim_start();
        let is_def = kinds.iter().any(|k| {
            t.find(k).is_some_and(|p| {
                let rest = &t[p + k.len()..];
                rest.strip_prefix(sym).is_some_and(|r| r.starts_with(|c: char| !c.is_alphanumeric() && c != '_'))
                    && t[..p].split_whitespace().all(|w| {
                        ["pub", "pub(crate)", "pub(super)", "unsafe", "extern", "\"C\"", "const", "async", "mut"]
                            .contains(&w)
                            || w.starts_with("pub(")
                    })
            })
        });
        // An assembly label or a `.macro NAME`.
        let is_label = t.strip_prefix(sym).is_some_and(|r| r.starts_with(':'))
            || t.strip_prefix(".macro ").is_some_and(|r| r.split_whitespace().next() == Some(sym));
        if is_def || is_label {
            return Some(i + 1);
        }
    }
    None
}

/// What is wrong with one link, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub md: PathBuf,
    pub link: Link,
    pub why: String,
    /// The line the anchor should have, when the symbol was found elsewhere.
    pub better_line: Option<usize>,
}

/// Checks every relative link of the markdown file `md`.
pub fn check_file(md: &Path) -> Vec<Problem> {
    let Ok(text) = std::fs::read_to_string(md) else {
        return vec![Problem {
            md: md.into(),
            link: Link { line: 0, text: String::new(), target: String::new() },
            why: "cannot read the file".into(),
            better_line: None,
        }];
    };
    let dir = md.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for link in links(&text) {
        let t = &link.target;
        if t.is_empty() || t.starts_with('#') || t.contains("://") || t.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = t.split_once('#').unwrap_or((t, ""));
        let file = dir.join(path);
        let problem = |why: String, better_line| Problem { md: md.into(), link: link.clone(), why, better_line };
        if !file.exists() {
            out.push(problem(format!("{} does not exist", file.display()), None));
            continue;
        }
        let Some(n) = line_anchor(anchor) else { continue };
        let Ok(source) = std::fs::read_to_string(&file) else {
            out.push(problem(format!("{} is not a text file", file.display()), None));
            continue;
        };
        let lines: Vec<&str> = source.lines().collect();
        if n == 0 || n > lines.len() {
            let better = symbol(&link.text).and_then(|s| definition(&source, &s));
            out.push(problem(format!("line {n} is past the end of {} ({} lines)", path, lines.len()), better));
            continue;
        }
        if let Some(sym) = symbol(&link.text)
            && !lines[n - 1].contains(&sym)
        {
            let better = definition(&source, &sym);
            let hint =
                better.map_or_else(|| format!("{sym} is not defined in {path}"), |b| format!("it is at line {b}"));
            out.push(problem(format!("line {n} of {path} does not mention {sym}: {hint}"), better));
        }
    }
    out
}

/// The markdown files the project's docs are: README.md and docs/*.md.
pub fn doc_files(root: &Path) -> Vec<PathBuf> {
    let mut v = vec![root.join("README.md")];
    if let Ok(rd) = std::fs::read_dir(root.join("docs")) {
        let mut d: Vec<PathBuf> =
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "md")).collect();
        d.sort();
        v.extend(d);
    }
    v
}

/// Rewrites the stale line anchors of `problems` that have a better line;
/// returns how many links were moved.
pub fn fix(problems: &[Problem]) -> std::io::Result<usize> {
    let mut moved = 0;
    let mut files: Vec<&PathBuf> = problems.iter().map(|p| &p.md).collect();
    files.dedup();
    for md in files {
        let mut lines: Vec<String> = std::fs::read_to_string(md)?.lines().map(str::to_string).collect();
        for p in problems.iter().filter(|p| &p.md == md) {
            let Some(better) = p.better_line else { continue };
            let (path, anchor) = p.link.target.split_once('#').unwrap_or((&p.link.target, ""));
            let end = anchor.split_once('-');
            let new_anchor = match end {
                Some((a, b)) => {
                    let (a, b) = (line_anchor(a).unwrap_or(0), line_anchor(b).unwrap_or(0));
                    format!("L{better}-L{}", better + b.saturating_sub(a))
                }
                None => format!("L{better}"),
            };
            let old = format!("]({})", p.link.target);
            let new = format!("]({path}#{new_anchor})");
            let l = &mut lines[p.link.line - 1];
            if l.contains(&old) {
                *l = l.replacen(&old, &new, 1);
                moved += 1;
            }
        }
        std::fs::write(md, lines.join("\n") + "\n")?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_links_outside_code_fences() {
        let md = "see [`run_cpu`](../a.rs#L3) and [x](http://e)\n```\n[no](b)\n```\n[`b.rs`](b.rs)";
        let l = links(md);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0], Link { line: 1, text: "`run_cpu`".into(), target: "../a.rs#L3".into() });
        assert_eq!(l[2].line, 5);
    }

    #[test]
    fn symbols_are_the_last_path_segment_of_the_code_word() {
        assert_eq!(symbol("`vmm::run_cpu()`").as_deref(), Some("run_cpu"));
        assert_eq!(symbol("the `handle_exception` function").as_deref(), Some("handle_exception"));
        assert_eq!(symbol("`exceptions.S`"), None);
        assert_eq!(symbol("`hypervisor/src/vmm.rs`"), None);
        assert_eq!(symbol("plain words"), None);
        assert_eq!(symbol("`println!`").as_deref(), Some("println"));
    }

    #[test]
    fn definitions_of_functions_types_and_asm_labels() {
        let src =
            "use x;\n\npub fn run_cpu(c: usize) {\n}\nstruct Vm {}\ntrap_entry:\n    pub(crate) unsafe fn f() {}\n";
        assert_eq!(definition(src, "run_cpu"), Some(3));
        assert_eq!(definition(src, "Vm"), Some(5));
        assert_eq!(definition(src, "trap_entry"), Some(6));
        assert_eq!(definition(src, "f"), Some(7));
        assert_eq!(definition(src, "run"), None, "a prefix is not the symbol");
        assert_eq!(definition("    let x = fn_run_cpu();\n", "run_cpu"), None);
    }

    #[test]
    fn a_stale_anchor_is_reported_and_fixed() {
        let dir = std::env::temp_dir().join(format!("doclinks-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(dir.join("code.rs"), "// one\n// two\nfn target() {}\n").unwrap();
        let md = dir.join("docs/walk.md");
        std::fs::write(
            &md,
            "[`target`](../code.rs#L1), [`code.rs`](../code.rs#L2), [gone](../nope.rs), [`target`](../code.rs#L9)\n",
        )
        .unwrap();
        let p = check_file(&md);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].why.contains("does not mention target: it is at line 3"), "{}", p[0].why);
        assert!(p[1].why.contains("does not exist"));
        assert!(p[2].why.contains("past the end"));
        assert_eq!(fix(&p).unwrap(), 2);
        assert!(check_file(&md).iter().all(|p| p.why.contains("does not exist")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
