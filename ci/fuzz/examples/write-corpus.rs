//! Writes the generated seeds into the committed corpus:
//! `cargo run -p el2-fuzz --example write-corpus`.

use el2_fuzz::{TARGETS, seeds};

fn main() {
    for (name, _) in TARGETS {
        let dir = seeds::corpus_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, bytes) in seeds::synthetic(name) {
            std::fs::write(dir.join(format!("seed-{file}")), bytes).unwrap();
        }
    }
}
