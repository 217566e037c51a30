//! doc-links: checks that every link from README.md and docs/*.md into the
//! code points at a file that exists and, for a line anchor on a named
//! symbol, at the line that mentions it (el2_tools::doclinks).
//!
//!   doc-links [--fix] [ROOT]
//!
//! --fix moves each stale anchor to the line that now defines its symbol.
//! Exits 1 when a problem is left.

fn main() {
    let mut fix = false;
    let mut root = std::path::PathBuf::from(".");
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--fix" => fix = true,
            "-h" | "--help" => {
                println!("usage: doc-links [--fix] [ROOT]");
                return;
            }
            p => root = p.into(),
        }
    }
    let check = || -> Vec<el2_tools::doclinks::Problem> {
        el2_tools::doclinks::doc_files(&root).iter().flat_map(|f| el2_tools::doclinks::check_file(f)).collect()
    };
    let mut problems = check();
    if fix && !problems.is_empty() {
        match el2_tools::doclinks::fix(&problems) {
            Ok(n) => eprintln!("doc-links: moved {n} anchor(s)"),
            Err(e) => {
                eprintln!("doc-links: cannot rewrite: {e}");
                std::process::exit(2);
            }
        }
        problems = check();
    }
    for p in &problems {
        println!("{}:{}: [{}]({}): {}", p.md.display(), p.link.line, p.link.text, p.link.target, p.why);
    }
    if !problems.is_empty() {
        std::process::exit(1);
    }
}
