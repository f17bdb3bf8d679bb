//! PAC tests: real Windows PACs, builder round trips, malformed input, signatures.

mod malformed;
mod real_samples;
mod round_trip;
mod signatures;
