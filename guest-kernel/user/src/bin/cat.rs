//! `cat`: copies standard input to standard output until end of file
//! (`read` returns 0) — the console tty's reader. `cat` alone copies
//! stdin; run as init (`init=/bin/cat`), it ends the machine at EOF.
#![cfg_attr(target_os = "none", no_std, no_main)]

use guest_user::sys;

fn cat_main(_argc: usize, _argv: *const *const u8) -> i32 {
    let mut buf = [0u8; 256];
    loop {
        let n = sys::read(0, &mut buf);
        if n == 0 {
            return 0;
        }
        if n < 0 {
            guest_user::println!("cat: read: error {n}");
            return 1;
        }
        let mut done = 0;
        while done < n as usize {
            let w = sys::write(1, &buf[done..n as usize]);
            if w <= 0 {
                return 1;
            }
            done += w as usize;
        }
    }
}

guest_user::entry!(cat_main);

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = cat_main;
}
