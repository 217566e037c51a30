//! `init`: the first EL0 program (pid 1).
#![cfg_attr(target_os = "none", no_std, no_main)]

use guest_user::println;

fn init_main(_argc: usize, _argv: *const *const u8) -> i32 {
    println!("init: running at EL0 as pid {}", guest_user::sys::getpid());
    0
}

guest_user::entry!(init_main);

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = init_main;
}
