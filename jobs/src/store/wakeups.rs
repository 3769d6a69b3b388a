//! Wake-ups for idle lane pools, so that pickup latency is not a poll interval.

use std::collections::HashMap;

use tokio::sync::Notify;

use crate::model::Lane;

/// One [`Notify`] per lane. Inserts call [`Wakeups::notify`]; idle pools wait
/// on [`Wakeups::lane`] with a poll interval as the fallback.
#[derive(Debug)]
pub struct Wakeups {
    lanes: HashMap<Lane, Notify>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups { lanes: Lane::ALL.into_iter().map(|lane| (lane, Notify::new())).collect() }
    }
}

impl Wakeups {
    pub fn notify(&self, lane: Lane) {
        if let Some(notify) = self.lanes.get(&lane) {
            // notify_one stores a permit when nobody waits, so a wake-up that
            // lands between a claim and the wait is not lost.
            notify.notify_one();
        }
    }

    pub fn lane(&self, lane: Lane) -> Option<&Notify> {
        self.lanes.get(&lane)
    }
}
