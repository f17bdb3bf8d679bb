//! pool (to be built)
