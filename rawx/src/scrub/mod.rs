//! The background scrubber: re-reads every chunk of the volume at a bounded rate,
//! verifying the header and every segment checksum, and keeps a bounded list of the
//! corrupt chunks it found for the repair path to consume.
//!
//! Shaped like Garage's `Worker`: a [`Scrubber`] handle shared with the request
//! handlers holds the visible state (disabled / idle / running / throttled, progress of
//! the current pass, pass count, last pass start and end, the corrupt list), and a
//! worker thread with its own small compio runtime ([`worker`]) does the reading, so
//! request serving never waits on it. `GET /scrub` shows the state and `POST /scrub`
//! starts a pass now. Corrupt chunks are reported, never deleted or modified.
//!
//! The pass count, the last pass times and the corrupt list survive restarts in
//! `<volume>/scrub-state.json` (written at the end of each pass); the next pass is due
//! `scrub_interval` after the end of the last one.

pub mod state;
pub mod worker;

pub use state::{CorruptChunk, ScrubState, ScrubStatus, Scrubber, MAX_CORRUPT_ENTRIES};
pub use worker::spawn;
