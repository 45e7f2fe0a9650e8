//! The secondary-address search (EN 13757-3 Annex, "wildcard search"): select with a mask,
//! and where more than one slave answers (a collision: the overlapping answers arrive as
//! garbled bytes) fix the next wildcard digit to 0..9 and try each, depth first.
//!
//! Pure: the master asks [`Search::next_mask`] what to probe and reports what it heard.

use crate::wire::mbus::{SecondaryAddress, WILDCARD};

/// What a probe of one mask showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// No slave answered.
    Nothing,
    /// Exactly one slave answered and was read.
    One,
    /// Answers collided (garbled bytes, bad checksum).
    Collision,
}

/// Depth-first search state: the masks still to probe.
#[derive(Debug, Clone)]
pub struct Search {
    pending: Vec<SecondaryAddress>,
    /// Masks probed so far.
    pub probes: u32,
    /// Fully specified ids that still collided: several slaves share an id (they differ
    /// only in manufacturer, version or medium, which this search leaves as wildcards).
    pub unresolved: Vec<SecondaryAddress>,
}

impl Search {
    /// A search below `start` (usually [`SecondaryAddress::ANY`]).
    pub fn new(start: SecondaryAddress) -> Self {
        Search {
            pending: vec![start],
            probes: 0,
            unresolved: Vec::new(),
        }
    }

    /// The next mask to select, or `None` when the search is complete.
    pub fn next_mask(&mut self) -> Option<SecondaryAddress> {
        let mask = self.pending.pop()?;
        self.probes += 1;
        Some(mask)
    }

    /// Records what probing `mask` showed.
    pub fn report(&mut self, mask: SecondaryAddress, probe: Probe) {
        if probe != Probe::Collision {
            return;
        }
        let Some(position) = mask.digits.iter().position(|&d| d == WILDCARD) else {
            self.unresolved.push(mask);
            return;
        };
        // Pushed in reverse so that 0 is probed first.
        for digit in (0..=9u8).rev() {
            let mut narrower = mask;
            if let Some(slot) = narrower.digits.get_mut(position) {
                *slot = digit;
            }
            self.pending.push(narrower);
        }
    }

    /// Masks still waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a set of ids: a mask matching several is a collision.
    fn run(ids: &[u32]) -> (Vec<u32>, Search) {
        let meters: Vec<SecondaryAddress> = ids
            .iter()
            .map(|&id| SecondaryAddress::from_id(id).unwrap())
            .collect();
        let mut search = Search::new(SecondaryAddress::ANY);
        let mut found = Vec::new();
        while let Some(mask) = search.next_mask() {
            let hits: Vec<&SecondaryAddress> = meters.iter().filter(|m| mask.matches(m)).collect();
            let probe = match hits.as_slice() {
                [] => Probe::Nothing,
                [one] => {
                    found.push(one.pattern().parse().unwrap());
                    Probe::One
                }
                _ => Probe::Collision,
            };
            search.report(mask, probe);
        }
        found.sort_unstable();
        (found, search)
    }

    #[test]
    fn finds_every_id_and_narrows_only_where_needed() {
        let ids = [12_345_678, 12_345_679, 12_399_999, 87_654_321, 5];
        let (found, search) = run(&ids);
        let mut want = ids.to_vec();
        want.sort_unstable();
        assert_eq!(found, want);
        assert!(search.unresolved.is_empty());
        // One slave: one probe.
        let (found, search) = run(&[44_444_444]);
        assert_eq!((found, search.probes), (vec![44_444_444], 1));
        // Empty bus: one probe.
        assert_eq!(run(&[]).1.probes, 1);
        // 12345678 and 12345679 share 7 digits: the search goes 8 levels deep there, but
        // probes at most 1 + 10 per level it narrows.
        assert!(search_depth_bound(&ids));
    }

    fn search_depth_bound(ids: &[u32]) -> bool {
        run(ids).1.probes <= 1 + 10 * 8 * ids.len() as u32
    }

    #[test]
    fn identical_ids_are_reported_unresolved() {
        let (found, search) = run(&[11_111_111, 11_111_111, 22_222_222]);
        assert_eq!(found, vec![22_222_222]);
        assert_eq!(search.unresolved.len(), 1);
        assert_eq!(search.unresolved[0].pattern(), "11111111");
        assert_eq!(search.pending(), 0);
    }
}
