//! [`VictimPolicy`]: how the evictor tells the pager which frames to take back.
//!
//! The pager owns the mechanics (harvesting accessed bits, unmapping, writing back); a
//! policy only chooses. It sees frames by index and learns about each one through a probe
//! that reports, and clears, the page's accessed bit. The evictor library implements it
//! (CLOCK first); the pager uses the same policy for direct reclaim in the fault path.

/// Most frames one reclaim batch examines for eviction.
pub const MAX_BATCH: usize = 64;

/// What a probe found in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Holds no mapped page (free, or busy with a read or write): not a candidate.
    NotResident,
    /// Its page was accessed since the last probe; the accessed bit is now clear.
    Accessed,
    /// Its page was not accessed since the last probe: a candidate.
    Idle,
}

/// Chooses victims among the pager's frames.
pub trait VictimPolicy: Send {
    /// A short name for reports ("clock").
    fn name(&self) -> &'static str;

    /// Appends up to `want` (at most [`MAX_BATCH`]) frames to evict to `victims`,
    /// probing frames `0..frames` as it likes. Every frame it appends must have probed
    /// [`Probe::Idle`] in this call. Probing clears accessed bits: a policy should not
    /// probe far more frames than it needs.
    fn select(
        &mut self,
        frames: usize,
        want: usize,
        probe: &mut dyn FnMut(u32) -> Probe,
        victims: &mut heapless::Vec<u32, MAX_BATCH>,
    );
}
