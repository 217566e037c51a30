//! `init`: the first EL0 program (pid 1). It starts the test suite
//! (`/bin/tests`), reaps every child — its own and the orphans the kernel
//! reparents to it — and exits when none is left; the kernel then powers
//! the machine off.
#![cfg_attr(target_os = "none", no_std, no_main)]

use guest_user::println;
use guest_user::sys;

fn init_main(_argc: usize, _argv: *const *const u8) -> i32 {
    println!("init: running at EL0 as pid {}", sys::getpid());
    let child = sys::fork();
    if child == 0 {
        let argv = [c"tests".as_ptr().cast(), core::ptr::null()];
        let r = sys::execve(b"/bin/tests\0", &argv);
        println!("init: execve /bin/tests failed: {r}");
        sys::exit_group(127);
    }
    if child < 0 {
        println!("init: fork failed: {child}");
        return 1;
    }
    loop {
        let (pid, status) = sys::wait4(-1, 0);
        if pid < 0 {
            break; // ECHILD: nobody left
        }
        if pid == child {
            // wait(2)'s status: WIFEXITED when the low 7 bits are 0 (then
            // WEXITSTATUS is bits 8..15), else WIFSIGNALED with WTERMSIG.
            match status & 0x7f {
                0 => println!("init: test suite (pid {pid}) exited with status {}", (status >> 8) & 0xff),
                sig => println!("init: test suite (pid {pid}) killed by signal {sig}"),
            }
        } else {
            println!("init: reaped orphan pid {pid} (status {status:#x})");
        }
    }
    println!("init: no processes left");
    0
}

guest_user::entry!(init_main);

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = init_main;
}
