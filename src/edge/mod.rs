//! edge (to be built)
