//! Metrics names and recording helpers (to be built)
