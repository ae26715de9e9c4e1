//! The evictor thread: a background thread that sleeps until the fault path reports
//! pressure (or 10 ms pass), then, one locked step at a time, completes finished requests
//! and reclaims batches until free frames are back at the high watermark.

use alloc::boxed::Box;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::time::Duration;

use remora_evictor::{Clock, Step, Watermarks, replenish_step};
use remora_kvm::{BootInfo, ExitStatus, time};
use remora_pager::VictimPolicy;
use remora_sched::{Priority, WaitQueue};

use super::pager::with_pager;
use crate::config;

static WAKE: WaitQueue = WaitQueue::new();
static PRESSURE: AtomicBool = AtomicBool::new(false);
static LOW_WATERMARK: AtomicUsize = AtomicUsize::new(0);

/// How often the evictor looks even when nobody woke it.
const PERIOD: Duration = Duration::from_millis(10);

/// The victim policy chosen in the configuration.
pub fn policy() -> Box<dyn VictimPolicy> {
    match config::EVICTOR_POLICY {
        "clock" => Box::new(Clock::new()),
        _ => remora_kvm::early_panic("evictor.policy names a policy this image does not have"),
    }
}

/// Free frames below which the fault path wakes the evictor (0 before init).
pub fn low_watermark() -> usize {
    LOW_WATERMARK.load(Ordering::Relaxed)
}

/// Called by the fault path when free frames run low. It may wake the thread only when
/// the fault came from thread context with interrupts on (the scheduler's lock cannot be
/// held then); otherwise the thread finds the flag within one period.
pub fn wake(interrupts_were_on: bool) {
    PRESSURE.store(true, Ordering::Release);
    if interrupts_were_on {
        WAKE.wake_one();
    }
}

fn run(batch: usize) {
    // The pager starts after this thread: wait for it, then size the watermarks.
    let frames = loop {
        match with_pager(|p| p.frame_count()) {
            Some(frames) => break frames,
            None => remora_sched::sleep(PERIOD),
        }
    };
    let marks = Watermarks::from_percent(
        frames,
        config::evictor::LOW_WATERMARK as u32,
        config::evictor::HIGH_WATERMARK as u32,
    );
    LOW_WATERMARK.store(marks.low, Ordering::Relaxed);
    log::info!(
        "evictor: {}, free frames kept between {} and {} of {frames}",
        config::EVICTOR_POLICY,
        marks.low,
        marks.high
    );
    loop {
        let deadline = time::now_ns() + PERIOD.as_nanos() as u64;
        WAKE.wait_until_deadline(|| PRESSURE.load(Ordering::Acquire), deadline);
        PRESSURE.store(false, Ordering::Release);
        loop {
            match with_pager(|p| replenish_step(p, &marks, batch)) {
                None | Some(Ok(Step::Done)) => break,
                // Go on at once: a step holds the lock only for one batch, so the timer
                // can still switch to the application between steps.
                Some(Ok(Step::Progress)) => {}
                Some(Ok(Step::Idle)) => {
                    remora_sched::sleep(Duration::from_millis(1));
                    break;
                }
                Some(Err(e)) => {
                    let mut out = remora_kvm::console::emergency_writer();
                    let _ = writeln!(out, "\n!!! far memory (evictor): {e}");
                    remora_kvm::exit(ExitStatus::Failure);
                }
            }
        }
    }
}

pub fn init(_boot: &'static BootInfo) {
    let batch = config::evictor::BATCH as usize;
    // Normal priority: it sleeps until there is pressure, and then it must keep up with
    // the application's faults rather than wait for it to block.
    match remora_sched::spawn("evictor", Priority::Normal, move || run(batch)) {
        Ok(_) => {}
        Err(e) => {
            log::error!("evictor: {e:?}");
            remora_kvm::early_panic("the evictor thread could not start");
        }
    }
}
