//! The engine: the single writer that owns the mirror and publishes every
//! write, the published state readers share, the read side (status,
//! history, events, paging), and the persisted index. It runs flows and
//! speaks git through `repo`; it never knows how a request arrived.

pub mod data_dir;
pub mod events;
pub mod paging;
pub mod prepare;
pub mod published;
pub mod reads;
pub mod snapshots;
pub mod wire;
pub mod writer;
