//! Facts about a stored content that the directory and its clients must agree on.

use crate::v1::ContentHeader;
use oxio_common::StoragePolicy;
use std::collections::BTreeSet;

/// The chunks `h` lacks: `(metachunk, fragment)` of every empty slot under its policy,
/// in order (a write succeeds with fewer than the policy's width of fragments once its
/// quorum is durable). Inline contents, delete markers and unknown policies lack
/// nothing.
pub fn missing_slots(h: &ContentHeader) -> Vec<(u32, u32)> {
    if h.delete_marker || h.chunks.is_empty() {
        return Vec::new();
    }
    let Ok(policy) = h.policy.parse::<StoragePolicy>() else {
        return Vec::new();
    };
    let width = policy.width() as u32;
    let metachunks = (h.metachunk_sizes.len() as u32).max(
        h.chunks
            .iter()
            .map(|c| c.metachunk.saturating_add(1))
            .max()
            .unwrap_or(0),
    );
    let present: BTreeSet<(u32, u32)> =
        h.chunks.iter().map(|c| (c.metachunk, c.fragment)).collect();
    (0..metachunks)
        .flat_map(|mc| (0..width).map(move |f| (mc, f)))
        .filter(|slot| !present.contains(slot))
        .collect()
}
