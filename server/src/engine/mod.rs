//! The engine: the single writer that owns the mirror and publishes every
//! write, the published state readers share, the read side (status,
//! history, events, paging), and the persisted index. It runs flows and
//! speaks git through `repo`; it never knows how a request arrived.

pub(crate) mod compare;
pub(crate) mod data_dir;
pub(crate) mod events;
pub(crate) mod paging;
pub(crate) mod prepare;
pub(crate) mod published;
pub(crate) mod reads;
pub(crate) mod snapshots;
pub(crate) mod wire;
pub(crate) mod writer;
