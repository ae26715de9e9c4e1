//! The evictor: keeps free frames above a low watermark, in a background thread, and
//! chooses which pages to take back.
//!
//! | item | owns | must never |
//! |---|---|---|
//! | [`Clock`] | the CLOCK hand over the pager's frames | touch an entry itself (it probes through the pager) |
//! | [`Watermarks`] | when to start and when to stop reclaiming | depend on the pager's internals |
//! | [`replenish_step`] | one step of the background loop: complete what finished, reclaim one batch | wait or sleep (the caller holds the pager lock) |
//!
//! The thread itself (sleeping on a wait queue between rounds, taking the pager lock for
//! one step at a time so the application runs in between) lives in the image's glue: it
//! is where the lock is. The mechanics of eviction (unmapping, write-back, the TLB flush)
//! are the pager's; the same policy serves its direct reclaim when no frame is free.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

use remora_pager::{MAX_BATCH, Pager, PagerError, Probe, VictimPolicy};
use remora_rmem::Transport;

/// CLOCK (second chance): a hand sweeps the frames; a page accessed since the hand last
/// passed loses its accessed bit and stays, an idle one is a victim.
#[derive(Debug, Default)]
pub struct Clock {
    hand: u32,
}

impl Clock {
    /// A hand at frame 0.
    pub fn new() -> Self {
        Clock { hand: 0 }
    }
}

impl VictimPolicy for Clock {
    fn name(&self) -> &'static str {
        "clock"
    }

    fn select(
        &mut self,
        frames: usize,
        want: usize,
        probe: &mut dyn FnMut(u32) -> Probe,
        victims: &mut heapless::Vec<u32, MAX_BATCH>,
    ) {
        if frames == 0 {
            return;
        }
        let want = want.min(MAX_BATCH);
        // Two full turns: after the first every accessed bit has been cleared once.
        for _ in 0..2 * frames {
            if victims.len() >= want {
                break;
            }
            let frame = self.hand % frames as u32;
            self.hand = (frame + 1) % frames as u32;
            if probe(frame) == Probe::Idle {
                let _ = victims.push(frame);
            }
        }
    }
}

/// When the evictor works: it starts when fewer than `low` frames are free and stops when
/// `high` are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    /// Start below this many free frames.
    pub low: usize,
    /// Stop at this many free frames.
    pub high: usize,
}

impl Watermarks {
    /// Watermarks as percentages of `frames`, at least one frame apart and at least one
    /// batch from the top.
    pub fn from_percent(frames: usize, low_percent: u32, high_percent: u32) -> Self {
        let low = (frames * low_percent as usize / 100).max(1);
        let high = (frames * high_percent as usize / 100)
            .max(low + 1)
            .min(frames.saturating_sub(1).max(1));
        Watermarks { low: low.min(high), high }
    }

    /// Whether the evictor should start.
    pub fn below_low(&self, free: usize) -> bool {
        free < self.low
    }
}

/// What one step of the background loop found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Free frames are at the high watermark: sleep.
    Done,
    /// A batch ran and took pages back (or write-backs are still finishing): go on.
    Progress,
    /// Nothing could be reclaimed this step and nothing is in flight: everything was
    /// accessed recently; try again later.
    Idle,
}

/// One step of the evictor: handles finished requests, then, below the high watermark,
/// reclaims one batch of up to `batch` pages.
pub fn replenish_step<T: Transport>(
    pager: &mut Pager<T>,
    marks: &Watermarks,
    batch: usize,
) -> Result<Step, PagerError> {
    pager.poll_completions()?;
    if pager.free_frames() >= marks.high {
        return Ok(Step::Done);
    }
    if pager.frames_soon_free() >= marks.high {
        // Enough write-backs are finishing: wait for them rather than evict more.
        return Ok(Step::Progress);
    }
    let report = pager.reclaim(batch)?;
    if report.evicted() > 0 || report.accessed > 0 || pager.transport().in_flight() > 0 {
        Ok(Step::Progress)
    } else {
        Ok(Step::Idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_gives_accessed_frames_a_second_chance() {
        // Frames 0..8: 1 and 2 accessed, 5 not resident.
        let mut accessed = [false, true, true, false, false, false, false, false];
        let mut clock = Clock::new();
        let mut victims = heapless::Vec::new();
        let mut probe = |f: u32| match f {
            5 => Probe::NotResident,
            f if accessed[f as usize] => {
                accessed[f as usize] = false;
                Probe::Accessed
            }
            _ => Probe::Idle,
        };
        clock.select(8, 3, &mut probe, &mut victims);
        assert_eq!(victims.as_slice(), &[0, 3, 4]);
        victims.clear();
        // The hand goes on from 5; after wrapping, 1 and 2 have lost their bit.
        clock.select(8, 4, &mut probe, &mut victims);
        assert_eq!(victims.as_slice(), &[6, 7, 0, 1]);
    }

    #[test]
    fn clock_stops_after_two_turns_when_everything_is_busy() {
        let mut clock = Clock::new();
        let mut victims = heapless::Vec::new();
        let mut probes = 0;
        clock.select(
            4,
            8,
            &mut |_| {
                probes += 1;
                Probe::NotResident
            },
            &mut victims,
        );
        assert!(victims.is_empty());
        assert_eq!(probes, 8);
    }

    #[test]
    fn watermarks_are_ordered_and_inside_the_cache() {
        let m = Watermarks::from_percent(1000, 4, 8);
        assert_eq!((m.low, m.high), (40, 80));
        let tiny = Watermarks::from_percent(4, 4, 8);
        assert!(tiny.low >= 1 && tiny.low < tiny.high && tiny.high < 4, "{tiny:?}");
        assert!(m.below_low(39) && !m.below_low(40));
    }
}
