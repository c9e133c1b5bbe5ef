"""Value types and pure helpers: models, errors, the clock, durations, masking, events. No I/O."""
