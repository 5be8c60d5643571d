//! Each app's state in the daemon, with a running count per state: `berth_apps{state}` and the
//! systemd status line are read from the counts, so a state change costs O(1) rather than a
//! recount of every app (which, once per reconcile, made a first sync O(apps²)).

use std::collections::{BTreeMap, HashMap};

use crate::daemon::app_state::AppState;
use crate::spec::AppKey;

/// The apps' states and how many apps are in each.
#[derive(Debug, Default)]
pub(super) struct AppStates {
    by_app: HashMap<AppKey, AppState>,
    /// Indexed by [`slot`]; always equal to a count over `by_app`.
    counts: [usize; AppState::ALL.len()],
}

/// Where `state` is counted.
fn slot(state: AppState) -> usize {
    AppState::ALL
        .iter()
        .position(|s| *s == state)
        .unwrap_or_default()
}

impl AppStates {
    /// Sets `key`'s state. Returns whether any count changed (the app is new or its state is).
    pub(super) fn set(&mut self, key: &AppKey, state: AppState) -> bool {
        // An app already known is updated in place: no copy of its key per change.
        let before = match self.by_app.get_mut(key) {
            Some(current) => Some(std::mem::replace(current, state)),
            None => {
                self.by_app.insert(key.clone(), state);
                None
            }
        };
        if before == Some(state) {
            return false;
        }
        if let Some(before) = before {
            self.counts[slot(before)] -= 1;
        }
        self.counts[slot(state)] += 1;
        true
    }

    /// Forgets `key`. Returns whether it was known.
    pub(super) fn remove(&mut self, key: &AppKey) -> bool {
        match self.by_app.remove(key) {
            Some(state) => {
                self.counts[slot(state)] -= 1;
                true
            }
            None => false,
        }
    }

    pub(super) fn get(&self, key: &AppKey) -> Option<&AppState> {
        self.by_app.get(key)
    }

    pub(super) fn len(&self) -> usize {
        self.by_app.len()
    }

    /// The states some app is in, with their counts, by state name.
    pub(super) fn counts(&self) -> BTreeMap<&'static str, usize> {
        AppState::ALL
            .iter()
            .map(|s| (s.as_str(), self.counts[slot(*s)]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Every state's count, 0 included: what `berth_apps{state}` is set from.
    pub(super) fn gauges(&self) -> BTreeMap<String, i64> {
        AppState::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), self.counts[slot(*s)] as i64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> AppKey {
        AppKey::new("default", name)
    }

    /// The counts as a recount of every app gives them: what the running counts replace.
    fn recount(states: &AppStates) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for state in states.by_app.values() {
            *counts.entry(state.as_str()).or_default() += 1;
        }
        counts
    }

    #[test]
    fn every_state_has_its_own_slot() {
        let slots: std::collections::BTreeSet<usize> =
            AppState::ALL.iter().map(|s| slot(*s)).collect();
        assert_eq!(slots.len(), AppState::ALL.len());
    }

    #[test]
    fn running_counts_equal_a_recount_through_sets_changes_and_removals() {
        let mut states = AppStates::default();
        // A fixed walk over every state, with repeats, re-sets and removals of known and
        // unknown apps.
        for step in 0..500usize {
            let app = key(&format!("app-{}", step * 7 % 23));
            let state = AppState::ALL[step * 5 % AppState::ALL.len()];
            if step % 11 == 0 {
                let known = states.get(&app).is_some();
                assert_eq!(states.remove(&app), known);
            } else {
                let before = states.get(&app).copied();
                assert_eq!(
                    states.set(&app, state),
                    before != Some(state),
                    "step {step}"
                );
            }
            assert_eq!(states.counts(), recount(&states), "step {step}");
            assert_eq!(
                states.counts().values().sum::<usize>(),
                states.len(),
                "step {step}"
            );
        }
    }

    #[test]
    fn gauges_report_every_state_and_counts_only_the_present_ones() {
        let mut states = AppStates::default();
        states.set(&key("a"), AppState::InSync);
        states.set(&key("b"), AppState::InSync);
        states.set(&key("c"), AppState::Held);
        states.set(&key("c"), AppState::Error);
        assert!(!states.remove(&key("unknown")));
        assert_eq!(
            states.counts(),
            BTreeMap::from([("error", 1), ("in-sync", 2)])
        );
        let gauges = states.gauges();
        assert_eq!(gauges.len(), AppState::ALL.len());
        assert_eq!(gauges["in-sync"], 2);
        assert_eq!(gauges["held"], 0);
        assert_eq!(gauges["error"], 1);
    }
}
