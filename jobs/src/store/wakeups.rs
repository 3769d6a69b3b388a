//! Wake-ups for idle lane pools, so that pickup latency is not a poll
//! interval, and for heartbeats, so that a cancel is not a heartbeat period.

use std::collections::HashMap;

use tokio::sync::Notify;

use crate::model::Lane;

/// One [`Notify`] per lane. Inserts call [`Wakeups::notify`]; idle pools wait
/// on [`Wakeups::lane`] with a poll interval as the fallback.
#[derive(Debug)]
pub struct Wakeups {
    lanes: HashMap<Lane, Notify>,
    cancels: Notify,
    outbox: Notify,
    dispatch: Notify,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            lanes: Lane::ALL.into_iter().map(|lane| (lane, Notify::new())).collect(),
            cancels: Notify::new(),
            outbox: Notify::new(),
            dispatch: Notify::new(),
        }
    }
}

impl Wakeups {
    pub fn notify(&self, lane: Lane) {
        if let Some(notify) = self.lanes.get(&lane) {
            // notify_one stores a permit when nobody waits, so a wake-up that
            // lands between a claim and the wait is not lost.
            notify.notify_one();
        }
        // Work for a lane may be a dispatch row for SQS.
        self.dispatch.notify_one();
    }

    /// Jobs were queued: on SQS, their dispatch rows are waiting to be sent.
    pub fn dispatch(&self) -> &Notify {
        &self.dispatch
    }

    pub fn lane(&self, lane: Lane) -> Option<&Notify> {
        self.lanes.get(&lane)
    }

    /// A running job was asked to cancel. Heartbeats wake early to look, so
    /// a cancel takes effect in a round trip rather than a heartbeat period.
    pub fn notify_cancel(&self) {
        self.cancels.notify_waiters();
    }

    pub fn cancels(&self) -> &Notify {
        &self.cancels
    }

    /// Events were written: a publisher in this process may go at once.
    pub fn notify_outbox(&self) {
        self.outbox.notify_one();
    }

    pub fn outbox(&self) -> &Notify {
        &self.outbox
    }
}
