//! Host tests of the whole scheduler: the real context switch on heap stacks, driven by a
//! fake platform (fake clock, a timer fired by advancing it, halt = jump to the deadline).
//!
//! Every test runs in its own OS thread with its own scheduler instance (see `global`), so
//! the default parallel test runner is fine.

mod fake;

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use core::time::Duration;
use std::collections::VecDeque;

use fake::FakePlatform;

use crate::*;

const MS: u64 = 1_000_000;
const SLICE: u64 = 10 * MS;

/// Runs `f` as thread "main" of a fresh scheduler in a fresh OS thread.
fn run(config: SchedConfig, f: impl FnOnce(&'static FakePlatform) + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(4 << 20)
        .spawn(move || {
            let p = FakePlatform::new();
            let main = init(p, config).expect("init");
            assert_eq!(main, ThreadId(0));
            f(p);
        })
        .unwrap()
        .join()
        .expect("scenario passed");
}

fn config() -> SchedConfig {
    SchedConfig::new(SLICE, 128 * 1024)
}

type Log = Arc<spin::Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(spin::Mutex::new(Vec::new()))
}

fn push(log: &Log, s: impl Into<String>) {
    log.lock().push(s.into());
}

#[test]
fn spawn_join_returns_values() {
    run(config(), |_| {
        let handles: Vec<_> = (0..5u64)
            .map(|i| {
                spawn(&std::format!("w{i}"), Priority::Normal, move || {
                    let me = current();
                    assert_eq!(me.name.as_str(), std::format!("w{i}"));
                    (i * i, me.id)
                })
                .unwrap()
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let id = h.id();
            let (v, seen) = h.join().unwrap();
            assert_eq!(v, (i * i) as u64);
            assert_eq!(seen, id);
        }
        let parent = spawn("parent", Priority::Normal, || {
            let child = spawn("child", Priority::Normal, || current().name).unwrap();
            std::format!("{} <- {}", current().name, child.join().unwrap())
        })
        .unwrap();
        assert_eq!(parent.join().unwrap(), "parent <- child");
        let s = spawn("str", Priority::Background, || "hello".to_string()).unwrap();
        assert_eq!(s.join().unwrap(), "hello");
        assert_eq!(current().name.as_str(), "main");
        assert_eq!(current().id, ThreadId(0));
    });
}

#[test]
fn yield_interleaves_round_robin() {
    run(config(), |_| {
        let log = log();
        let hs: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|name| {
                let log = log.clone();
                spawn(name, Priority::Normal, move || {
                    for i in 0..3 {
                        push(&log, std::format!("{name}{i}"));
                        yield_now();
                    }
                })
                .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*log.lock(), ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]);
    });
}

#[test]
fn yield_alone_and_normal_does_not_run_background() {
    run(config(), |_| {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let bg = spawn("bg", Priority::Background, move || r.store(true, SeqCst)).unwrap();
        for _ in 0..10 {
            yield_now();
        }
        assert!(!ran.load(SeqCst), "background ran while a normal thread was runnable");
        bg.join().unwrap();
        assert!(ran.load(SeqCst));
    });
}

#[test]
fn sleepers_wake_in_deadline_order() {
    run(config(), |p| {
        let log = log();
        let start = now_ns();
        let sleeps = [30u64, 10, 20, 10, 5];
        let hs: Vec<_> = sleeps
            .iter()
            .enumerate()
            .map(|(i, &ms)| {
                let log = log.clone();
                spawn(&std::format!("s{i}"), Priority::Normal, move || {
                    sleep(Duration::from_millis(ms));
                    let late = now_ns() - start - ms * MS;
                    push(&log, std::format!("s{i}+{late}"));
                })
                .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // Deadline order, ties in the order they went to sleep, each exactly on time.
        assert_eq!(*log.lock(), ["s4+0", "s1+0", "s3+0", "s2+0", "s0+0"]);
        assert_eq!(now_ns() - start, 30 * MS);
        assert!(p.halts.load(SeqCst) >= 4, "idle halted between deadlines");
        // Sleeping into the past returns at once.
        sleep_until(now_ns() - 1);
        sleep(Duration::ZERO);
    });
}

#[test]
fn producer_consumer_hand_off() {
    run(config(), |p| {
        let queue: Arc<spin::Mutex<VecDeque<u32>>> = Arc::default();
        let not_empty = Arc::new(WaitQueue::new());
        let (q, wq) = (queue.clone(), not_empty.clone());
        let consumer = spawn("consumer", Priority::Normal, move || {
            let mut got = Vec::new();
            while got.len() < 100 {
                wq.wait_until(|| !q.lock().is_empty());
                got.push(q.lock().pop_front().unwrap());
            }
            got
        })
        .unwrap();
        let (q, wq) = (queue.clone(), not_empty.clone());
        let producer = spawn("producer", Priority::Normal, move || {
            for i in 0..100 {
                q.lock().push_back(i);
                wq.wake_one();
                if i % 7 == 0 {
                    sleep(Duration::from_micros(300));
                }
                if i % 3 == 0 {
                    p.advance(4 * MS); // gets preempted now and then
                }
            }
        })
        .unwrap();
        producer.join().unwrap();
        assert_eq!(consumer.join().unwrap(), (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn wake_all_wakes_every_waiter() {
    run(config(), |_| {
        let go = Arc::new(AtomicBool::new(false));
        let wq = Arc::new(WaitQueue::new());
        let hs: Vec<_> = (0..5)
            .map(|i| {
                let (go, wq) = (go.clone(), wq.clone());
                spawn(&std::format!("waiter{i}"), Priority::Normal, move || {
                    wq.wait_until(|| go.load(SeqCst));
                    i
                })
                .unwrap()
            })
            .collect();
        yield_now(); // every waiter runs once and blocks
        assert!(
            threads()
                .iter()
                .filter(|t| t.name.starts_with("waiter"))
                .all(|t| t.state == ThreadState::Blocked)
        );
        assert!(wq.wake_one()); // the condition is still false: it blocks again
        yield_now();
        go.store(true, SeqCst);
        assert_eq!(wq.wake_all(), 5);
        assert_eq!(wq.wake_all(), 0);
        let sum: i32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 10);
    });
}

/// A wake that lands between `wait_until`'s registration and its block (here: an
/// "interrupt" right after the condition was checked false) must not be lost.
#[test]
fn wait_until_has_no_lost_wakeup() {
    run(config(), |p| {
        let flag = Arc::new(AtomicBool::new(false));
        let wq = Arc::new(WaitQueue::new());
        let (f, w) = (flag.clone(), wq.clone());
        let waiter = spawn("waiter", Priority::Normal, move || {
            let mut checks = 0;
            w.wait_until(|| {
                checks += 1;
                let seen = f.load(SeqCst);
                if checks == 2 {
                    // Interrupt handler runs right after the check, before the block.
                    let irq = p.disable_interrupts();
                    f.store(true, SeqCst);
                    assert!(w.wake_one(), "the waiter is registered by now");
                    p.restore_interrupts(irq);
                }
                seen
            });
            checks
        })
        .unwrap();
        // 1: false (before registering), 2: false + wake, 3: true after the no-op block.
        assert_eq!(waiter.join().unwrap(), 3);
        assert!(flag.load(SeqCst));
    });
}

/// Ping-pong through `wait_until` while the timer preempts at every possible point.
#[test]
fn wait_until_ping_pong_under_preemption() {
    let cfg = SchedConfig::new(50_000, 128 * 1024); // 50 us slices
    run(cfg, |p| {
        let turn = Arc::new(AtomicUsize::new(0));
        let wq = Arc::new(WaitQueue::new());
        const ROUNDS: usize = 2000;
        let hs: Vec<_> = (0..2)
            .map(|me| {
                let (turn, wq) = (turn.clone(), wq.clone());
                spawn(&std::format!("p{me}"), Priority::Normal, move || {
                    for round in 0..ROUNDS {
                        wq.wait_until(|| {
                            p.advance(((round * 7919 + me * 31) % 60) as u64 * 1000);
                            turn.load(SeqCst) % 2 == me
                        });
                        p.advance((round % 13) as u64 * 5000);
                        turn.fetch_add(1, SeqCst);
                        wq.wake_all();
                    }
                })
                .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(turn.load(SeqCst), 2 * ROUNDS);
        assert!(stats().preemptions > 100, "{:?}", stats());
    });
}

#[test]
fn timer_preempts_equal_priority_round_robin() {
    run(config(), |p| {
        let log = log();
        let hs: Vec<_> = ["x", "y"]
            .into_iter()
            .map(|name| {
                let log = log.clone();
                spawn(name, Priority::Normal, move || {
                    for _ in 0..25 {
                        push(&log, name);
                        p.advance(MS);
                    }
                })
                .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let joined: String = log.lock().concat();
        let expect = std::format!(
            "{x}{y}{x}{y}{}{}",
            "x".repeat(5),
            "y".repeat(5),
            x = "x".repeat(10),
            y = "y".repeat(10)
        );
        assert_eq!(joined, expect);
        assert!(stats().preemptions >= 4);
    });
}

#[test]
fn background_runs_only_when_idle_but_does_not_starve() {
    let mut cfg = config(); // 10 ms slices
    cfg.background_max_wait_ns = 50 * MS;
    run(cfg, |p| {
        let bg_runs: Arc<spin::Mutex<Vec<u64>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (runs, stop2) = (bg_runs.clone(), stop.clone());
        let t0 = now_ns();
        let bg = spawn("bg", Priority::Background, move || {
            while !stop2.load(SeqCst) {
                runs.lock().push((now_ns() - t0) / MS);
                p.advance(MS);
            }
        })
        .unwrap();
        // Main is normal and has 170 ms of work: bg only gets a slice after starving 50 ms,
        // so main finishes at 200 ms, after three 10 ms background slices.
        p.advance(170 * MS);
        assert_eq!((now_ns() - t0) / MS, 200);
        let runs = bg_runs.lock().clone();
        let starts: Vec<u64> = runs
            .iter()
            .enumerate()
            .filter(|&(i, &t)| i == 0 || t != runs[i - 1] + 1)
            .map(|(_, &t)| t)
            .collect();
        assert_eq!(starts, [50, 110, 170], "bg slices began at (ms): {runs:?}");
        assert_eq!(runs.len(), 30, "three 10 ms slices");
        // With main asleep, bg runs freely.
        let before = bg_runs.lock().len();
        sleep(Duration::from_millis(20));
        assert_eq!(bg_runs.lock().len() - before, 20);
        stop.store(true, SeqCst);
        bg.join().unwrap();
    });
}

/// A normal thread woken by an "interrupt handler" while a background thread runs takes the
/// CPU as soon as the handler returns.
#[test]
fn wake_from_interrupt_preempts_background() {
    run(config(), |p| {
        let log = log();
        let wq = Arc::new(WaitQueue::new());
        let ready = Arc::new(AtomicBool::new(false));
        let (l, w, r) = (log.clone(), wq.clone(), ready.clone());
        let normal = spawn("normal", Priority::Normal, move || {
            w.wait_until(|| r.load(SeqCst));
            push(&l, "normal woke");
        })
        .unwrap();
        let (l, w, r) = (log.clone(), wq.clone(), ready.clone());
        let bg = spawn("bg", Priority::Background, move || {
            push(&l, "bg start");
            let irq = p.disable_interrupts(); // device interrupt
            r.store(true, SeqCst);
            w.wake_one();
            push(&l, "irq done");
            p.restore_interrupts(irq); // iretq
            push(&l, "bg continues");
        })
        .unwrap();
        sleep(Duration::from_millis(1)); // let normal block, then bg run
        normal.join().unwrap();
        bg.join().unwrap();
        assert_eq!(*log.lock(), ["bg start", "irq done", "normal woke", "bg continues"]);
    });
}

#[test]
fn wait_with_deadline_times_out_and_cancels() {
    run(config(), |_| {
        let wq = Arc::new(WaitQueue::new());
        let t0 = now_ns();
        assert_eq!(wq.wait_deadline(t0 + 5 * MS), WakeReason::TimedOut);
        assert_eq!(now_ns(), t0 + 5 * MS);
        assert!(!wq.wake_one(), "timed-out waiter left no entry");
        assert!(!wq.wait_until_deadline(|| false, now_ns() + MS));
        assert_eq!(wq.wait_deadline(0), WakeReason::TimedOut);

        // Woken before the deadline: the timer is cancelled and never fires for it later.
        let w = wq.clone();
        let h = spawn("w", Priority::Normal, move || {
            let r1 = w.wait_deadline(now_ns() + 50 * MS);
            let t = now_ns();
            w.wait(); // must not be woken by the old 50 ms timer
            (r1, t, now_ns())
        })
        .unwrap();
        sleep(Duration::from_millis(10));
        assert!(wq.wake_one());
        sleep(Duration::from_millis(100));
        assert!(!h.is_finished());
        assert!(wq.wake_one());
        let (r1, t1, t2) = h.join().unwrap();
        assert_eq!(r1, WakeReason::Woken);
        assert_eq!(t1, t0 + 6 * MS + 10 * MS);
        assert_eq!(t2, t1 + 100 * MS);

        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let setter = spawn("setter", Priority::Normal, move || {
            sleep(Duration::from_millis(2));
            f.store(true, SeqCst);
        })
        .unwrap();
        // Nobody wakes the queue: the condition is noticed at the deadline.
        assert!(wq.wait_until_deadline(|| flag.load(SeqCst), now_ns() + 5 * MS));
        setter.join().unwrap();
    });
}

#[test]
fn cpu_time_accounting_adds_up() {
    run(config(), |p| {
        let t0 = init_ns();
        let release = Arc::new(AtomicBool::new(false));
        let wq = Arc::new(WaitQueue::new());
        let work = |name: &str, ms: u64, nap: u64| {
            let (release, wq) = (release.clone(), wq.clone());
            spawn(name, Priority::Normal, move || {
                sleep(Duration::from_millis(nap));
                p.advance(ms * MS);
                wq.wait_until(|| release.load(SeqCst)); // stay listed until released
            })
            .unwrap()
        };
        let a = work("a", 25, 0);
        let b = work("b", 15, 0);
        let c = work("c", 5, 100);
        p.advance(3 * MS); // main's own work
        let snapshot =
            |name: &str| threads().into_iter().find(|t| t.name.as_str() == name).unwrap();
        let sum =
            || threads().iter().map(|t| t.cpu_time_ns).sum::<u64>() + stats().reaped_cpu_time_ns;
        sleep(Duration::from_millis(60));
        assert_eq!(snapshot("a").cpu_time_ns, 25 * MS);
        assert_eq!(snapshot("b").cpu_time_ns, 15 * MS);
        assert_eq!(snapshot("c").cpu_time_ns, 0);
        assert_eq!(snapshot("main").cpu_time_ns, 3 * MS);
        assert_eq!(sum(), now_ns() - t0);
        sleep(Duration::from_millis(100));
        assert_eq!(snapshot("c").cpu_time_ns, 5 * MS);
        release.store(true, SeqCst);
        wq.wake_all();
        for h in [a, b, c] {
            h.join().unwrap();
        }
        assert_eq!(stats().threads_reaped, 3);
        assert_eq!(sum(), now_ns() - t0, "reaped threads' time is kept");
        let idle = threads().into_iter().find(|t| t.is_idle).unwrap();
        assert_eq!(idle.cpu_time_ns, now_ns() - t0 - 3 * MS - 45 * MS);
    });
}

#[test]
fn guard_page_owner_names_the_thread() {
    run(config(), |p| {
        let wq = Arc::new(WaitQueue::new());
        let w = wq.clone();
        let h = spawn("deep-recursion", Priority::Normal, move || w.wait()).unwrap();
        yield_now();
        let info = threads().into_iter().find(|t| t.id == h.id()).expect("listed");
        let stack = info.stack.expect("spawned threads own a stack");
        let owner = guard_page_owner(stack.bottom - 8).expect("in the guard page");
        assert_eq!(owner.0, h.id());
        assert_eq!(owner.1.as_str(), "deep-recursion");
        assert!(guard_page_owner(stack.bottom - STACK_GUARD_SIZE).is_some());
        assert!(guard_page_owner(stack.bottom).is_none(), "inside the stack");
        assert!(
            guard_page_owner(stack.bottom - STACK_GUARD_SIZE - 1).is_none_or(|o| o.0 != h.id())
        );
        let idle = threads().into_iter().find(|t| t.is_idle).unwrap();
        let idle_guard = idle.stack.unwrap().bottom - 1;
        assert_eq!(guard_page_owner(idle_guard).unwrap().1.as_str(), "idle");

        assert!(wq.wake_one());
        h.join().unwrap();
        assert!(guard_page_owner(stack.bottom - 8).is_none(), "reclaimed");
        assert_eq!(p.live_stacks(), 1, "only the idle stack is left");
    });
}

#[test]
fn exited_threads_are_reclaimed() {
    run(config(), |p| {
        for round in 0..50 {
            let hs: Vec<_> = (0..4)
                .map(|i| spawn("t", Priority::Normal, move || round * 4 + i).unwrap())
                .collect();
            for (i, h) in hs.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), round * 4 + i);
            }
        }
        // Detached threads are reclaimed too.
        for _ in 0..10 {
            drop(spawn("detached", Priority::Normal, || ()).unwrap());
        }
        sleep(Duration::from_millis(1)); // idle reaps
        assert_eq!(p.live_stacks(), 1);
        assert_eq!(p.stacks_allocated.load(SeqCst), 211);
        assert_eq!(p.stacks_freed.load(SeqCst), 210);
        assert_eq!(stats().threads_spawned, 210);
        assert_eq!(stats().threads_reaped, 210);
        assert!(threads().len() <= 2 + 4, "slots reused, records dropped");
    });
}

#[test]
fn exit_and_panic_are_reported_to_join() {
    run(config(), |_| {
        let h = spawn("quitter", Priority::Normal, || -> u32 { exit() }).unwrap();
        assert_eq!(h.join(), Err(JoinError::Exited));
        let h = spawn("panicker", Priority::Normal, || -> u32 { panic!("on purpose") }).unwrap();
        assert_eq!(h.join(), Err(JoinError::Panicked));
        assert_eq!(spawn("fine", Priority::Normal, || 7).unwrap().join(), Ok(7));
    });
}

#[test]
fn errors_are_values() {
    run(config(), |p| {
        assert_eq!(init(p, config()), Err(InitError::AlreadyInitialized), "second init");
        let e = Builder::new("tiny").stack_size(64).spawn(|| ()).unwrap_err();
        assert_eq!(e, SpawnError::StackTooSmall(64));
        p.fail_alloc.store(true, SeqCst);
        let e = spawn("oom", Priority::Normal, || ()).unwrap_err();
        assert_eq!(e, SpawnError::NoStack(128 * 1024));
        assert!(e.to_string().contains("stack_size"));
        p.fail_alloc.store(false, SeqCst);
        let long = "a-very-long-thread-name-that-exceeds-the-limit-of-32-bytes";
        let h = spawn(long, Priority::Normal, || current().name).unwrap();
        assert_eq!(h.join().unwrap().as_str(), &long[..thread::THREAD_NAME_MAX]);
    });
    let bad = SchedConfig::new(0, 64 * 1024);
    std::thread::spawn(move || {
        let p = FakePlatform::new();
        assert!(matches!(init(p, bad), Err(InitError::InvalidConfig(_))));
    })
    .join()
    .unwrap();
}

#[test]
fn threads_start_with_interrupts_enabled_and_stats_count() {
    run(config(), |p| {
        let h = spawn("irq", Priority::Normal, move || p.interrupts_enabled()).unwrap();
        assert!(h.join().unwrap());
        assert!(p.interrupts_enabled(), "main's interrupt state is restored");
        let s = stats();
        assert!(s.context_switches >= 2);
        assert_eq!(s.threads_spawned, 1);
    });
}

#[test]
fn not_initialised_is_harmless_for_wakers() {
    std::thread::spawn(|| {
        let wq = WaitQueue::new();
        assert!(!wq.wake_one());
        assert_eq!(wq.wake_all(), 0);
        assert!(guard_page_owner(0x1000).is_none());
        on_timer_interrupt();
        assert_eq!(spawn("x", Priority::Normal, || ()).unwrap_err(), SpawnError::NotInitialized);
    })
    .join()
    .unwrap();
}

/// Many threads doing random mixes of work, yields, sleeps, timed waits and wakes, with
/// preemption: everything finishes and the CPU time still adds up.
#[test]
fn random_workload_completes_and_accounts() {
    run(SchedConfig::new(MS, 128 * 1024), |p| {
        let t0 = init_ns();
        let counter = Arc::new(AtomicUsize::new(0));
        let wq = Arc::new(WaitQueue::new());
        let hs: Vec<_> = (0..8u64)
            .map(|i| {
                let (counter, wq) = (counter.clone(), wq.clone());
                let prio = if i % 3 == 2 { Priority::Background } else { Priority::Normal };
                spawn(&std::format!("r{i}"), prio, move || {
                    let mut seed = i * 0x9e37_79b9 + 1;
                    let mut rand = move |n: u64| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed % n
                    };
                    for _ in 0..300 {
                        match rand(6) {
                            0 => yield_now(),
                            1 => sleep(Duration::from_micros(rand(3000))),
                            2 => p.advance(rand(2 * MS)),
                            3 => {
                                let target = counter.load(SeqCst) + 1 + rand(3) as usize;
                                wq.wait_until_deadline(
                                    || counter.load(SeqCst) >= target,
                                    now_ns() + rand(4 * MS),
                                );
                            }
                            _ => {
                                counter.fetch_add(1, SeqCst);
                                wq.wake_all();
                            }
                        }
                    }
                })
                .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let total: u64 =
            threads().iter().map(|t| t.cpu_time_ns).sum::<u64>() + stats().reaped_cpu_time_ns;
        assert_eq!(total, now_ns() - t0);
        // A joined thread may not have exited yet (a woken joiner can preempt it).
        sleep(Duration::from_millis(1));
        assert_eq!(stats().threads_reaped, 8);
        assert_eq!(threads().len(), 2);
    });
}
