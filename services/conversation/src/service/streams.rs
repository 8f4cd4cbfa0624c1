//! The replies each user follows at once on this instance (`quotas.open_streams_per_user`): every
//! stream of a reply's events, and every request waiting for a whole reply, holds a slot until it
//! ends, however it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::ConversationService;
use crate::error::ConversationError;

#[derive(Default)]
pub struct OpenStreams(Mutex<HashMap<Uuid, usize>>);

/// One reply followed; the slot is given back when this is dropped.
pub struct StreamSlot {
    streams: Arc<OpenStreams>,
    owner: Uuid,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.owner);
            }
        }
    }
}

impl ConversationService {
    /// A slot for one more reply followed by `owner`, unless they hold as many as allowed.
    pub fn open_stream(&self, owner: Uuid) -> Result<StreamSlot, ConversationError> {
        let most = self.config.quotas.open_streams_per_user;
        let mut open = self.streams.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(owner).or_default();
        if *n >= most {
            return Err(ConversationError::TooManyStreams(most));
        }
        *n += 1;
        Ok(StreamSlot { streams: self.streams.clone(), owner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let streams = Arc::new(OpenStreams::default());
        let owner = Uuid::now_v7();
        let slot = || {
            *streams.0.lock().unwrap().entry(owner).or_default() += 1;
            StreamSlot { streams: streams.clone(), owner }
        };
        let (a, b) = (slot(), slot());
        assert_eq!(streams.0.lock().unwrap()[&owner], 2);
        drop(a);
        assert_eq!(streams.0.lock().unwrap()[&owner], 1);
        drop(b);
        assert!(streams.0.lock().unwrap().is_empty(), "no entry is left for a user without streams");
    }
}
