//! A fair share of the hashing pool: at most a few password checks in flight per user.
//!
//! bcrypt is the one thing a request can make the service spend a quarter of a second
//! of a core on, and the pool that runs it is shared. Without a share per user, one
//! client with a fresh token (or one username under attack) can keep every hashing
//! thread and queue place busy, and everyone else's logins wait or are shed (OWASP
//! Denial of Service Cheat Sheet: limit the resources one user can take).

use std::collections::HashMap;
use std::sync::Mutex;

use super::Target;

/// Why a turn was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// This subject has its share in flight already.
    Busy,
    /// As many subjects as the cap have checks in flight.
    Full,
}

/// Password checks in flight per subject, at most `per_subject` each and `cap` subjects.
#[derive(Debug)]
pub(super) struct Turns {
    per_subject: u32,
    cap: usize,
    /// Only subjects with a check in flight: an entry goes with its last turn.
    in_flight: Mutex<HashMap<Target, u32>>,
}

/// A turn at the hashing pool, given back when dropped.
#[derive(Debug)]
pub struct HashingTurn<'a> {
    turns: Option<&'a Turns>,
    subject: Target,
}

impl Turns {
    /// At most `per_subject` checks in flight per subject (0: no limit), `cap` subjects.
    pub(super) fn new(per_subject: u32, cap: usize) -> Self {
        Turns {
            per_subject,
            cap,
            in_flight: Mutex::default(),
        }
    }

    /// The most a subject may have in flight (0: no limit).
    pub(super) fn per_subject(&self) -> u32 {
        self.per_subject
    }

    /// A turn for `subject`, or why not.
    pub(super) fn take(&self, subject: Target) -> Result<HashingTurn<'_>, Refused> {
        if self.per_subject == 0 {
            return Ok(HashingTurn {
                turns: None,
                subject,
            });
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let known = in_flight.len();
        match in_flight.get_mut(&subject) {
            Some(n) if *n >= self.per_subject => return Err(Refused::Busy),
            Some(n) => *n += 1,
            None if known >= self.cap => return Err(Refused::Full),
            None => {
                in_flight.insert(subject, 1);
            }
        }
        Ok(HashingTurn {
            turns: Some(self),
            subject,
        })
    }

    /// Targets with a check in flight.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.in_flight.lock().map(|m| m.len()).unwrap_or(0)
    }

    fn give_back(&self, subject: &Target) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_flight.get_mut(subject) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.remove(subject);
            }
        }
    }
}

impl Drop for HashingTurn<'_> {
    fn drop(&mut self) {
        if let Some(turns) = self.turns {
            turns.give_back(&self.subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_gets_its_share_and_no_more_until_a_turn_comes_back() {
        let turns = Turns::new(2, 100);
        let alice = Target::User(1);
        let first = turns.take(alice).unwrap();
        let _second = turns.take(alice).unwrap();
        assert_eq!(turns.take(alice).unwrap_err(), Refused::Busy);
        assert!(
            turns.take(Target::User(2)).is_ok(),
            "others are not affected"
        );
        drop(first);
        assert!(turns.take(alice).is_ok());
    }

    #[test]
    fn entries_go_with_their_last_turn_and_never_exceed_the_cap() {
        let turns = Turns::new(1, 10);
        let held: Vec<_> = (0..10)
            .map(|id| turns.take(Target::User(id)).unwrap())
            .collect();
        assert_eq!(turns.take(Target::User(99)).unwrap_err(), Refused::Full);
        assert_eq!(turns.len(), 10);
        drop(held);
        assert_eq!(turns.len(), 0);
    }

    #[test]
    fn zero_turns_the_share_off() {
        let turns = Turns::new(0, 1);
        let held: Vec<_> = (0..100)
            .map(|_| turns.take(Target::User(1)).unwrap())
            .collect();
        assert_eq!(held.len(), 100);
        assert_eq!(turns.len(), 0);
    }
}
