//! The first kernel threads (Linux init/main.c `rest_init`,
//! kernel/kthread.c `kthreadd`, kernel/workqueue.c `worker_thread`): init
//! (pid 1) execs the first program, kthreadd (pid 2) forks the kernel
//! threads others ask for, and the events workqueue's worker runs work
//! items in process context.

use alloc::vec::Vec;

use super::lock;
use super::sched::schedule_locked;
use crate::arch::aarch64::cpu::smp_processor_id;
use crate::arch::aarch64::irq::now_ns;
use crate::arch::aarch64::process::{current, new_thread};
use crate::sched::TaskState;

/// The path init execs (`init=` on the command line) and its arguments
/// (the command line's words after `--`), set once by `rest_init`.
static INIT: spin::Once<(alloc::string::String, alloc::string::String)> = spin::Once::new();

/// `rest_init`: init (pid 1) and kthreadd (pid 2) as kernel threads; init
/// will exec `init_path` (`/bin/init` unless the command line says `init=`)
/// with `init_args`.
pub fn rest_init(init_path: &str, init_args: &str) {
    INIT.call_once(|| (init_path.into(), init_args.into()));
    let mut k = lock();
    let t = now_ns();
    let k2 = &mut *k;
    let (init, kthreadd) = k2.tasks.rest_init(&mut k2.sched, t).expect("rest_init");
    new_thread(&mut k, init, Some(init_thread), 0).expect("init's stack");
    new_thread(&mut k, kthreadd, Some(kthreadd_thread), 0).expect("kthreadd's stack");
    // `workqueue_init`: the events workqueue's worker, made by kthreadd.
    let k2 = &mut *k;
    k2.tasks.kthread_create(&mut k2.sched, "kworker/u:0", worker_thread, None, t);
}

/// `worker_thread` of the events workqueue: run queued work items in
/// process context, without the kernel lock; sleep when there are none.
extern "C" fn worker_thread(_: usize) {
    loop {
        let mut k = lock();
        k.events.worker = Some(current());
        match k.events.process_one_work() {
            Some((_, func, data)) => {
                drop(k);
                func(data);
            }
            None => {
                // queue_work runs under the lock too: no wakeup is lost
                // between this check and the sleep.
                k.sched.set_current_state(smp_processor_id(), TaskState::Interruptible);
                schedule_locked(&mut k);
            }
        }
    }
}

/// kthreadd: forks the kernel threads others ask for, then sleeps.
extern "C" fn kthreadd_thread(_: usize) {
    loop {
        let mut k = lock();
        let cpu = smp_processor_id();
        let t = now_ns();
        let k2 = &mut *k;
        let created = k2.tasks.kthreadd_run(&mut k2.sched, cpu, t);
        for id in created {
            let f = k.tasks.kthread_create_list.threadfns.iter().find(|(i, _)| *i == id).map(|(_, f)| *f);
            // Every request here is a `kthread_run`: start it.
            if let Some(f) = f
                && new_thread(&mut k, id, Some(f), 0).is_some()
            {
                k.sched.wake_up_process(id, t);
            }
        }
        if k.tasks.kthread_create_list_is_empty() {
            k.sched.set_current_state(cpu, TaskState::Interruptible);
            schedule_locked(&mut k);
        }
    }
}

/// init's kernel half (`kernel_init`): exec the first user program.
extern "C" fn init_thread(_: usize) {
    let me = current();
    let (path, args) = INIT.get().map_or(("/bin/init", ""), |(p, a)| (p.as_str(), a.as_str()));
    let name = path.rsplit('/').next().unwrap_or(path);
    let argv: Vec<&[u8]> =
        core::iter::once(name.as_bytes()).chain(args.split_ascii_whitespace().map(str::as_bytes)).collect();
    if let Err(e) = crate::kernel::fs::init_files(&mut lock(), me) {
        crate::println!("guest-kernel: init's files: {e:?}");
    }
    // Linux's `envp_init`: HOME=/ and TERM=linux.
    let envp: [&[u8]; 2] = [b"HOME=/", b"TERM=linux"];
    let r = crate::kernel::exec::kernel_execve(me, path.as_bytes(), &argv, &envp);
    if let Err(e) = r {
        crate::println!("guest-kernel: cannot run {path} ({e:?}); powering off");
        crate::arch::aarch64::psci::system_off();
    }
    // Returning lands in ret_from_fork's eret to the user frame exec wrote.
}
