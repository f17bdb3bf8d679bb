//! Configuration (to be built)
