//! Credential calls (Linux kernel/sys.c, kernel/groups.c; ULK ch. 20):
//! the uid/gid family and the supplementary groups, on the caller's
//! [`Cred`](crate::task::cred::Cred), whose rules are pure and
//! host-tested. Process groups and sessions are with the process calls.

use alloc::vec::Vec;

use super::table::R;
use crate::arch::aarch64::process::current;
use crate::arch::aarch64::uaccess::{copy_from_user, copy_to_user};
use crate::kernel::lock;
use crate::mm::Errno;
use crate::task::cred::{Cred, NGROUPS_MAX};

/// Runs `f` on the caller's credentials (the kernel lock held).
fn with_cred<T>(f: impl FnOnce(&mut Cred) -> T) -> T {
    let mut k = lock();
    f(&mut k.tasks.get_mut(current()).expect("current task").cred)
}

/// `getuid`, `geteuid`, `getgid`, `getegid`: one field.
pub(super) fn sys_getid(field: fn(&Cred) -> u32) -> R {
    Ok(with_cred(|c| field(c)) as isize)
}

/// `setuid`, `setgid`, `setreuid`, `setregid`, `setresuid`, `setresgid`.
pub(super) fn sys_setid(f: impl FnOnce(&mut Cred) -> Result<(), crate::task::Errno>) -> R {
    with_cred(f).map(|()| 0).map_err(Errno::from)
}

/// `setfsuid`, `setfsgid`: the old value, always.
pub(super) fn sys_setfsid(f: impl FnOnce(&mut Cred) -> u32) -> R {
    Ok(with_cred(f) as isize)
}

/// `getresuid(r, e, s)` / `getresgid`: three 32-bit ids.
pub(super) fn sys_getres(ids: fn(&Cred) -> [u32; 3], ptrs: [usize; 3]) -> R {
    let v = with_cred(|c| ids(c));
    for (p, id) in ptrs.into_iter().zip(v) {
        copy_to_user(p, &id.to_le_bytes())?;
    }
    Ok(0)
}

/// `getgroups(size, list)`: the count when `size` is 0, else the groups
/// (EINVAL if they do not fit).
pub(super) fn sys_getgroups(size: i32, list: usize) -> R {
    let groups = with_cred(|c| c.groups.clone());
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(groups.len() as isize);
    }
    if (size as usize) < groups.len() {
        return Err(Errno::EINVAL);
    }
    let bytes: Vec<u8> = groups.iter().flat_map(|g| g.to_le_bytes()).collect();
    copy_to_user(list, &bytes)?;
    Ok(groups.len() as isize)
}

/// `setgroups(size, list)`: root only (EPERM), at most NGROUPS_MAX
/// (EINVAL).
pub(super) fn sys_setgroups(size: i32, list: usize) -> R {
    if size < 0 || size as usize > NGROUPS_MAX {
        return Err(Errno::EINVAL);
    }
    if !with_cred(|c| c.is_root()) {
        return Err(Errno::EPERM);
    }
    let mut bytes = alloc::vec![0u8; size as usize * 4];
    copy_from_user(&mut bytes, list)?;
    let groups = bytes.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
    with_cred(|c| c.setgroups(groups)).map(|()| 0).map_err(Errno::from)
}
