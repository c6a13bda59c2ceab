//! Counted windows per key, in memory, never more keys than a fixed cap.
//!
//! Two generations of a map: hits go to the current one; a key found in the previous
//! one moves to the current one. When the current one is full, or a window's length has
//! passed since the last turn, the previous generation is dropped whole and the current
//! one becomes the previous: the keys dropped are those untouched the longest, and each
//! step is O(1) (clearing a map of plain values keeps its allocation and runs no
//! destructor). A timed turn drops only expired windows: a key left in the previous
//! generation was last touched before that generation was turned, so its window (which
//! opened no later than that touch) ended at least one length before the next timed turn.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// One key's window: hits counted since it opened, and when it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    /// Hits counted in the window, this one included.
    pub hits: u64,
    /// When the window closes and counting starts again.
    pub ends: Instant,
}

/// Counted windows of one length per key, at most `cap` keys.
#[derive(Debug)]
pub(super) struct Windows<K> {
    length: Duration,
    /// Keys a generation may hold: half the cap, so both together never exceed it.
    generation_cap: usize,
    current: HashMap<K, Window>,
    previous: HashMap<K, Window>,
    turned: Instant,
}

impl<K: Hash + Eq + Copy> Windows<K> {
    /// Windows of `length`, at most `cap` keys (at least 2).
    pub(super) fn new(length: Duration, cap: usize, now: Instant) -> Self {
        Windows {
            length,
            generation_cap: (cap / 2).max(1),
            current: HashMap::new(),
            previous: HashMap::new(),
            turned: now,
        }
    }

    /// Counts a hit for `key` (opening a window when it has none open) and returns its
    /// window.
    pub(super) fn hit(&mut self, key: K, now: Instant) -> Window {
        self.expire(now);
        let fresh = Window {
            hits: 0,
            ends: now + self.length,
        };
        if let Some(window) = self.current.get_mut(&key) {
            if window.ends <= now {
                *window = fresh;
            }
            window.hits = window.hits.saturating_add(1);
            return *window;
        }
        let carried = self.previous.remove(&key).filter(|w| w.ends > now);
        if self.current.len() >= self.generation_cap {
            self.turn(now);
        }
        let mut window = carried.unwrap_or(fresh);
        window.hits = window.hits.saturating_add(1);
        self.current.insert(key, window);
        window
    }

    /// `key`'s open window, if any.
    pub(super) fn get(&self, key: &K, now: Instant) -> Option<Window> {
        self.current
            .get(key)
            .or_else(|| self.previous.get(key))
            .filter(|w| w.ends > now)
            .copied()
    }

    /// Forgets `key`.
    pub(super) fn remove(&mut self, key: &K) {
        self.current.remove(key);
        self.previous.remove(key);
    }

    /// Drops the previous generation once a window's length has passed since the last
    /// turn (all of it expired by then); the periodic sweep calls this as well as every hit.
    pub(super) fn expire(&mut self, now: Instant) {
        if now.saturating_duration_since(self.turned) >= self.length {
            self.turn(now);
        }
    }

    /// Keys held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    fn turn(&mut self, now: Instant) {
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
        self.turned = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn hits_count_within_a_window_and_start_again_after_it() {
        let t0 = Instant::now();
        let mut windows = Windows::new(MINUTE, 10, t0);
        assert_eq!(windows.hit(1, t0).hits, 1);
        assert_eq!(windows.hit(1, t0 + Duration::from_secs(30)).hits, 2);
        let window = windows.get(&1, t0 + Duration::from_secs(59)).unwrap();
        assert_eq!(
            window.ends,
            t0 + MINUTE,
            "the window is fixed from its first hit"
        );
        assert_eq!(windows.get(&1, t0 + MINUTE), None, "closed at its end");
        assert_eq!(windows.hit(1, t0 + MINUTE).hits, 1, "a new window");
    }

    #[test]
    fn a_flood_of_distinct_keys_never_holds_more_than_the_cap() {
        let t0 = Instant::now();
        let mut windows = Windows::new(MINUTE, 1000, t0);
        for key in 0..100_000u32 {
            windows.hit(key, t0);
            assert!(windows.len() <= 1000, "{} keys after {key}", windows.len());
        }
        // The newest keys are kept, the oldest gone.
        assert!(windows.get(&99_999, t0).is_some());
        assert!(windows.get(&0, t0).is_none());
    }

    #[test]
    fn a_key_in_use_survives_turns_and_keeps_its_count() {
        let t0 = Instant::now();
        let mut windows = Windows::new(MINUTE, 4, t0);
        windows.hit(7, t0);
        for key in 100..110u32 {
            windows.hit(key, t0);
            // Touched between every other key: it moves to the current generation.
            windows.hit(7, t0);
        }
        assert_eq!(windows.get(&7, t0).unwrap().hits, 11);
        assert!(windows.len() <= 4);
    }

    #[test]
    fn the_sweep_drops_expired_keys_without_any_hit() {
        let t0 = Instant::now();
        let mut windows = Windows::new(MINUTE, 100, t0);
        for key in 0..50u32 {
            windows.hit(key, t0);
        }
        windows.expire(t0 + MINUTE);
        windows.expire(t0 + 2 * MINUTE);
        assert_eq!(windows.len(), 0);
    }

    #[test]
    fn removing_a_key_forgets_its_hits() {
        let t0 = Instant::now();
        let mut windows = Windows::new(MINUTE, 100, t0);
        windows.hit(3, t0);
        windows.remove(&3);
        assert_eq!(windows.get(&3, t0), None);
        assert_eq!(windows.hit(3, t0).hits, 1);
    }
}
