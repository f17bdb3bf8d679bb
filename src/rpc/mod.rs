//! rpc (to be built)
