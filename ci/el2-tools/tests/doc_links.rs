//! The docs' links into the code are right: every relative link in
//! README.md and docs/*.md names a file that exists, and a line anchor on a
//! named symbol points at a line that mentions it. When code moves, this
//! fails with the stale links; `cargo run -p el2-tools --bin doc-links --
//! --fix` moves them.

#[test]
fn every_link_from_the_docs_into_the_code_is_right() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let files = el2_tools::doclinks::doc_files(&root);
    assert!(files.len() >= 5, "README.md and docs/*.md: {files:?}");
    let mut n = 0;
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        n += el2_tools::doclinks::links(&text).len();
        for p in el2_tools::doclinks::check_file(f) {
            bad.push(format!("{}:{}: [{}]({}): {}", p.md.display(), p.link.line, p.link.text, p.link.target, p.why));
        }
    }
    assert!(n > 0, "no links at all in {files:?}");
    assert!(bad.is_empty(), "stale links (cargo run -p el2-tools --bin doc-links -- --fix):\n{}", bad.join("\n"));
}
