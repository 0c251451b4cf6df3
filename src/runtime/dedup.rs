//! Duplicate events (sans-IO): the first answer given to an `event_id` under the configuration
//! in force, kept so that the same id sent again gets that answer again instead of a second
//! decision (a second order, a second position in the canary book).
//!
//! Invariants: while one configuration stays in force, an id present here is decided at most
//! once (the slot is handed out before the decision is made, so a repeat arriving while the
//! first is still being decided waits for it rather than deciding again); a change of
//! configuration forgets every id (the same event under another configuration is another
//! decision); at most `capacity` ids are held: past that, the oldest id is forgotten first
//! (FIFO), and a repeat of a forgotten id is decided afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Ids held by the decision service: 65,536 (each an id and one decision, well under 1 KiB, so
/// at most a few tens of MiB). Events older than `--max-event-age` (300 s by default) are
/// suppressed anyway, so an id is forgotten before its repeat could still be decided only above
/// about 218 distinct events a second sustained over that age.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// First answers by id, for one configuration at a time. `K` identifies the configuration,
/// `S` is the slot an answer is (or will be) kept in.
#[derive(Debug)]
pub struct FirstAnswers<K, S> {
    capacity: usize,
    config: Option<K>,
    slots: HashMap<String, Arc<S>>,
    /// Ids in the order they were first seen (the eviction order).
    order: VecDeque<String>,
}

/// What [`FirstAnswers::slot`] found.
#[derive(Debug)]
pub struct Slot<S> {
    pub slot: Arc<S>,
    /// The id was already held under this configuration: a repeat.
    pub repeat: bool,
}

impl<K: PartialEq + Clone, S: Default> FirstAnswers<K, S> {
    /// Holds at most `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            config: None,
            slots: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The slot of `id` under `config`: the one handed out before (a repeat), or a new empty one.
    /// A configuration other than the last one seen forgets every id first.
    pub fn slot(&mut self, config: &K, id: &str) -> Slot<S> {
        if self.config.as_ref() != Some(config) {
            self.config = Some(config.clone());
            self.slots.clear();
            self.order.clear();
        }
        if let Some(slot) = self.slots.get(id) {
            return Slot {
                slot: slot.clone(),
                repeat: true,
            };
        }
        while self.slots.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.slots.remove(&oldest);
                }
                None => break,
            }
        }
        let slot = Arc::new(S::default());
        self.slots.insert(id.to_string(), slot.clone());
        self.order.push_back(id.to_string());
        Slot {
            slot,
            repeat: false,
        }
    }

    /// Forgets `id` if it still holds `slot` (an answer that is not a decision, such as a halt,
    /// is not kept: the event is decided when it is sent again).
    pub fn forget(&mut self, id: &str, slot: &Arc<S>) {
        if self.slots.get(id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            self.slots.remove(id);
            self.order.retain(|i| i != id);
        }
    }

    /// Ids held now.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No id is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Answers = FirstAnswers<u8, Mutex<Option<&'static str>>>;

    #[test]
    fn a_repeat_gets_the_first_slot_until_the_configuration_changes() {
        let mut a = Answers::new(10);
        let first = a.slot(&1, "e1");
        assert!(!first.repeat);
        *first.slot.lock().unwrap() = Some("long");
        let again = a.slot(&1, "e1");
        assert!(again.repeat);
        assert_eq!(*again.slot.lock().unwrap(), Some("long"));
        assert!(!a.slot(&1, "e2").repeat);
        // Another configuration: nothing is a repeat any more.
        assert!(!a.slot(&2, "e1").repeat);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn past_the_capacity_the_oldest_id_is_forgotten_first() {
        let mut a = Answers::new(3);
        for id in ["a", "b", "c", "d"] {
            assert!(!a.slot(&1, id).repeat);
        }
        assert_eq!(a.len(), 3);
        // "a" was the oldest: forgotten, so decided afresh (and "b" is now the oldest).
        assert!(!a.slot(&1, "a").repeat);
        assert!(!a.slot(&1, "b").repeat);
        assert!(a.slot(&1, "d").repeat);
    }

    #[test]
    fn an_answer_that_is_not_kept_is_forgotten_only_from_its_own_slot() {
        let mut a = Answers::new(3);
        let s = a.slot(&1, "a");
        a.forget("a", &s.slot);
        assert!(a.is_empty());
        let fresh = a.slot(&1, "a");
        // A stale forget (the old slot) leaves the new one alone.
        a.forget("a", &s.slot);
        assert!(a.slot(&1, "a").repeat);
        assert!(Arc::ptr_eq(&fresh.slot, &a.slot(&1, "a").slot));
    }
}
