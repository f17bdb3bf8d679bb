//! cli (to be built)
