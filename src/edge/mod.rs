//! edge (to be built)

pub mod rpc;
