//! Links the bare-metal binary with its own linker script.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/image.ld");
        // defmt's own linker script (from the defmt crate's build script):
        // the `.defmt` INFO section whose symbol addresses are the
        // interned format strings' indices (docs/tracing.md).
        if std::env::var_os("CARGO_FEATURE_TRACE").is_some() {
            println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
        }
    }
    println!("cargo:rerun-if-changed=image.ld");
    println!("cargo:rerun-if-changed=src/arch/aarch64");
}
