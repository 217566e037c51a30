//! `struct sched_attr` as user space passes it to `sched_setattr(2)` and
//! reads it with `sched_getattr(2)` (include/uapi/linux/sched/types.h,
//! kernel/sched/core.c `sched_copy_attr` and `sched_attr_copy_to_user`):
//! the byte layout, the size handshake that keeps old and new programs
//! working, and the policy numbers. Pure: the arch glue copies the bytes.

use super::{SchedAttr, SchedPolicy, SchedTask};
use crate::mm::Errno;

/// `SCHED_ATTR_SIZE_VER0`: the first published layout (48 bytes).
pub const SIZE_VER0: usize = 48;
/// `SCHED_ATTR_SIZE_VER1` = `sizeof(struct sched_attr)` here (56 bytes:
/// VER0 plus `sched_util_min` and `sched_util_max`).
pub const SIZE_VER1: usize = 56;
/// The largest size a program may claim (PAGE_SIZE).
pub const SIZE_MAX: usize = 4096;

/// `sched_setscheduler`'s policy number to a policy (SCHED_ISO, 4, and
/// anything unknown: EINVAL). `SCHED_RESET_ON_FORK` (0x40000000) is masked
/// by the caller.
pub fn policy_from_abi(policy: u32) -> Result<SchedPolicy, Errno> {
    Ok(match policy {
        0 => SchedPolicy::Normal,
        1 => SchedPolicy::Fifo,
        2 => SchedPolicy::Rr,
        3 => SchedPolicy::Batch,
        5 => SchedPolicy::Idle,
        6 => SchedPolicy::Deadline,
        _ => return Err(Errno::EINVAL),
    })
}

/// `sched_get_priority_max(policy)`: 99 for the real-time policies, 0 for
/// the others (MAX_RT_PRIO - 1).
pub fn priority_max(policy: u32) -> Result<u32, Errno> {
    match policy_from_abi(policy)? {
        SchedPolicy::Fifo | SchedPolicy::Rr => Ok(99),
        _ => Ok(0),
    }
}

/// `sched_get_priority_min(policy)`: 1 for the real-time policies, else 0.
pub fn priority_min(policy: u32) -> Result<u32, Errno> {
    match policy_from_abi(policy)? {
        SchedPolicy::Fifo | SchedPolicy::Rr => Ok(1),
        _ => Ok(0),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// What `sched_copy_attr` makes of the size a program wrote in the first
/// word: the number of bytes to copy in, or `Err(E2BIG)` (the caller then
/// writes [`SIZE_VER1`] back into the size field, so the program learns
/// what this kernel knows). 0 means a VER0 program.
pub fn size_to_copy(size: u32) -> Result<usize, Errno> {
    let size = if size == 0 { SIZE_VER0 } else { size as usize };
    if !(SIZE_VER0..=SIZE_MAX).contains(&size) { Err(Errno::E2BIG) } else { Ok(size) }
}

/// Decodes the `size` bytes a program passed (`size_to_copy`'s answer):
/// bytes past what this kernel knows must be zero (`copy_struct_from_user`:
/// E2BIG otherwise), `sched_flags` must be ones it implements, and the
/// policy known. No `sched_flags` (`SCHED_FLAG_RESET_ON_FORK` and the
/// rest) is implemented, so any is refused (EINVAL) where Linux would act
/// on it. The parameters are checked by the scheduler
/// (`__checkparam_dl`, the priority ranges).
pub fn decode(b: &[u8]) -> Result<SchedAttr, Errno> {
    if b.len() < SIZE_VER0 {
        return Err(Errno::E2BIG);
    }
    if b.len() > SIZE_VER1 && b[SIZE_VER1..].iter().any(|&x| x != 0) {
        return Err(Errno::E2BIG);
    }
    let policy = policy_from_abi(u32_at(b, 4))?;
    if u64_at(b, 8) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(SchedAttr {
        policy,
        nice: u32_at(b, 16) as i32,
        rt_priority: u32_at(b, 20),
        dl_runtime: u64_at(b, 24),
        dl_deadline: u64_at(b, 32),
        dl_period: u64_at(b, 40),
    })
}

/// `get_params` + `sched_attr_copy_to_user`: task `t`'s attributes, laid
/// out for a program whose struct is `usize` bytes (at least VER0, checked
/// by the caller): `size` says min(usize, 56), the bytes to copy out.
pub fn encode(t: &SchedTask, usize: usize) -> ([u8; SIZE_VER1], usize) {
    let size = usize.min(SIZE_VER1);
    let mut b = [0u8; SIZE_VER1];
    b[0..4].copy_from_slice(&(size as u32).to_le_bytes());
    b[4..8].copy_from_slice(&(t.policy as u32).to_le_bytes());
    match t.policy {
        SchedPolicy::Deadline => {
            b[24..32].copy_from_slice(&t.dl.dl_runtime.to_le_bytes());
            b[32..40].copy_from_slice(&t.dl.dl_deadline.to_le_bytes());
            b[40..48].copy_from_slice(&t.dl.dl_period.to_le_bytes());
        }
        SchedPolicy::Fifo | SchedPolicy::Rr => b[20..24].copy_from_slice(&t.rt_priority.to_le_bytes()),
        _ => b[16..20].copy_from_slice(&t.nice().to_le_bytes()),
    }
    (b, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr_bytes(size: u32, policy: u32, flags: u64, nice: i32, prio: u32, dl: [u64; 3]) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&size.to_le_bytes());
        b[4..8].copy_from_slice(&policy.to_le_bytes());
        b[8..16].copy_from_slice(&flags.to_le_bytes());
        b[16..20].copy_from_slice(&nice.to_le_bytes());
        b[20..24].copy_from_slice(&prio.to_le_bytes());
        for (i, v) in dl.iter().enumerate() {
            b[24 + 8 * i..32 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn a_deadline_attr_decodes_field_by_field() {
        let b = attr_bytes(48, 6, 0, 0, 0, [5_000_000, 10_000_000, 20_000_000]);
        let a = decode(&b[..48]).unwrap();
        assert_eq!(a, SchedAttr::deadline(5_000_000, 10_000_000, 20_000_000));
        let b = attr_bytes(48, 0, 0, -5, 0, [0; 3]);
        assert_eq!(decode(&b[..48]).unwrap(), SchedAttr::normal(-5));
    }

    #[test]
    fn the_size_handshake_follows_linux() {
        assert_eq!(size_to_copy(0), Ok(SIZE_VER0), "0: a VER0 program");
        assert_eq!(size_to_copy(47), Err(Errno::E2BIG));
        assert_eq!(size_to_copy(56), Ok(56));
        assert_eq!(size_to_copy(4097), Err(Errno::E2BIG));
        // A newer program's struct: its extra bytes must be zero.
        let mut b = attr_bytes(64, 0, 0, 0, 0, [0; 3]);
        assert!(decode(&b).is_ok());
        b[60] = 1;
        assert_eq!(decode(&b), Err(Errno::E2BIG));
    }

    #[test]
    fn unknown_policies_and_flags_are_refused() {
        assert_eq!(decode(&attr_bytes(48, 4, 0, 0, 0, [0; 3])[..48]), Err(Errno::EINVAL), "SCHED_ISO");
        assert_eq!(decode(&attr_bytes(48, 7, 0, 0, 0, [0; 3])[..48]), Err(Errno::EINVAL));
        assert_eq!(decode(&attr_bytes(48, 0, 1, 0, 0, [0; 3])[..48]), Err(Errno::EINVAL), "RESET_ON_FORK");
        assert_eq!(decode(&attr_bytes(48, 0, 1 << 40, 0, 0, [0; 3])[..48]), Err(Errno::EINVAL));
    }

    #[test]
    fn priority_ranges() {
        assert_eq!((priority_min(1), priority_max(1)), (Ok(1), Ok(99)));
        assert_eq!((priority_min(2), priority_max(2)), (Ok(1), Ok(99)));
        for p in [0, 3, 5, 6] {
            assert_eq!((priority_min(p), priority_max(p)), (Ok(0), Ok(0)), "policy {p}");
        }
        assert_eq!(priority_max(4), Err(Errno::EINVAL));
    }
}
