//! Shared helpers for the espresso benchmarks.
