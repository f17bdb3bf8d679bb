//! The ASA key set (to be built).

/// Keys (stub).
#[derive(Default)]
pub struct KeySet {}
