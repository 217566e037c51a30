//! The arch layer's files depend on each other in one direction (issue
//! 18; the order is in `arch/aarch64/mod.rs`): this reads their `super::`
//! paths and fails on any import circle, naming it.

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

/// Each `arch/aarch64/*.rs` file (but mod.rs, the parent) and the sibling
/// files it names through `super::`.
fn edges() -> BTreeMap<String, Vec<String>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/arch/aarch64");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("arch/aarch64")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".rs").map(str::to_string))
        .filter(|n| n != "mod")
        .collect();
    files.sort();
    let mut out = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(format!("{dir}/{f}.rs")).expect("source");
        let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        let mut deps = Vec::new();
        for (i, _) in code.match_indices("super::") {
            let rest = &code[i + "super::".len()..];
            // `super::name` or `super::{a, b::c, ...}`.
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(0)]
                    .split(',')
                    .map(|p| p.trim().split("::").next().unwrap_or(""))
                    .collect(),
                None => vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("")],
            };
            for n in names {
                if n != f && files.iter().any(|g| g == n) && !deps.iter().any(|d| d == n) {
                    deps.push(n.to_string());
                }
            }
        }
        out.insert(f.clone(), deps);
    }
    out
}

/// A circle through `at`, if the graph has one reachable from it.
fn circle(
    g: &BTreeMap<String, Vec<String>>,
    at: &str,
    path: &mut Vec<String>,
    done: &mut Vec<String>,
) -> Option<Vec<String>> {
    if let Some(k) = path.iter().position(|p| p == at) {
        let mut c = path[k..].to_vec();
        c.push(at.to_string());
        return Some(c);
    }
    if done.iter().any(|d| d == at) {
        return None;
    }
    path.push(at.to_string());
    for d in g.get(at).into_iter().flatten() {
        if let Some(c) = circle(g, d, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.push(at.to_string());
    None
}

#[test]
fn the_arch_files_import_each_other_in_one_direction() {
    let g = edges();
    assert!(g.len() > 20, "found the files: {:?}", g.keys());
    // The edges the order rests on are seen (the parser works).
    assert!(g["vmm"].iter().any(|d| d == "exit") && g["exit"].iter().any(|d| d == "vmops"));
    let mut done = Vec::new();
    for f in g.keys() {
        if let Some(c) = circle(&g, f, &mut Vec::new(), &mut done) {
            panic!("import circle among arch/aarch64 files: {}", c.join(" -> "));
        }
    }
}

#[test]
fn a_circle_is_found() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), vec!["b".to_string()]);
    g.insert("b".to_string(), vec!["c".to_string()]);
    g.insert("c".to_string(), vec!["a".to_string()]);
    let c = circle(&g, "a", &mut Vec::new(), &mut Vec::new()).expect("a circle");
    assert_eq!(c, ["a", "b", "c", "a"]);
}
