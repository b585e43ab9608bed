//! criterion benches live in `benches/`; see `docs/PERFORMANCE.md`.
