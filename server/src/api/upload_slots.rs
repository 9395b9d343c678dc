//! The slots of uploads received at once, shared fairly between callers
//! (told apart by their address): a caller may hold at most its share,
//! the slots divided by the callers holding some plus one, so that a
//! caller that opens upload after upload (or leaves them idle) always
//! leaves room for another. Refusals are at once, never a wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tonic::Status;

use crate::domain::Reason;

/// Uploads received at once. Each holds a blocking thread (shared with
/// reads) for as long as it lasts; more are refused at once, not queued.
pub(crate) const MAX_CONCURRENT_UPLOADS: usize = 64;

/// The slots, and who holds how many.
#[derive(Debug)]
pub(crate) struct UploadSlots {
    total: usize,
    held: Mutex<HashMap<Option<IpAddr>, usize>>,
}

/// One slot, given back when dropped.
pub(crate) struct Slot {
    slots: Arc<UploadSlots>,
    caller: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().expect("slots lock not poisoned");
        if let Some(count) = held.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.caller);
            }
        }
    }
}

impl UploadSlots {
    /// `total` slots.
    pub(crate) fn new(total: usize) -> Arc<Self> {
        Arc::new(UploadSlots {
            total: total.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `caller` (its address; `None` when unknown), or a
    /// refusal saying why.
    pub(crate) fn take(self: &Arc<Self>, caller: Option<IpAddr>) -> Result<Slot, Status> {
        let mut held = self.held.lock().expect("slots lock not poisoned");
        let in_use: usize = held.values().sum();
        if in_use >= self.total {
            return Err(busy(
                self.total,
                format!(
                    "the server is receiving {} uploads already; try again shortly",
                    self.total
                ),
            ));
        }
        let mine = held.get(&caller).copied().unwrap_or(0);
        let callers = held.len() + usize::from(mine == 0);
        let share = (self.total / (callers + 1)).max(1);
        if mine >= share {
            return Err(busy(share, format!(
                "this client is sending {mine} uploads already, its share of the {} the server receives at once; try again shortly",
                self.total
            )));
        }
        *held.entry(caller).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            caller,
        })
    }
}

/// UPLOADS_BUSY, with the number of uploads allowed as its `limit`.
fn busy(limit: usize, message: String) -> Status {
    crate::api::errors::limit_reached(Reason::UploadsBusy, limit, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn one_caller_leaves_room_for_others() {
        let slots = UploadSlots::new(64);
        let hog: Vec<Slot> = (0..32).map(|_| slots.take(caller(1)).unwrap()).collect();
        let refused = slots.take(caller(1)).err().expect("over its share");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("its share"), "{refused:?}");
        // Another caller gets in, up to its own share.
        let other: Vec<Slot> = (0..21).map(|_| slots.take(caller(2)).unwrap()).collect();
        assert!(slots.take(caller(2)).is_err());
        // A third still finds room.
        let third: Vec<Slot> = (0..11).map(|_| slots.take(caller(3)).unwrap()).collect();
        let full = slots.take(caller(4)).err().expect("all taken");
        assert!(full.message().contains("64 uploads already"), "{full:?}");
        drop(hog);
        assert!(slots.take(caller(4)).is_ok(), "given back when done");
        drop((other, third));
        assert!(slots.held.lock().unwrap().is_empty());
    }
}
