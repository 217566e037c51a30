//! Runtime for EL0 programs: raw Linux aarch64 syscalls (`svc #0`, number in
//! x8, arguments in x0-x5, negative errno in x0), program entry and a panic
//! handler. Programs built on it are static ELF executables that run on our
//! guest kernel and, unchanged, on Linux.

#![cfg_attr(not(test), no_std)]

pub mod sys;

/// Prints to standard output (fd 1) through `write(2)`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::sys::print(format_args!($($arg)*)) };
}

/// Prints a line to standard output.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::sys::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Declares the program's `main(argc, argv) -> exit status` and its entry.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        extern "C" fn __user_main(argc: usize, argv: *const *const u8) -> ! {
            let code: i32 = $main(argc, argv);
            $crate::sys::exit_group(code)
        }
    };
}
