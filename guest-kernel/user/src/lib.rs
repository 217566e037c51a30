//! Runtime for EL0 programs: raw Linux aarch64 syscalls (`svc #0`, number in
//! x8, arguments in x0-x5, negative errno in x0), program entry and a panic
//! handler. Programs built on it are static ELF executables that run on our
//! guest kernel and, unchanged, on Linux.

#![cfg_attr(not(test), no_std)]
