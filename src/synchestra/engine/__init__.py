"""The engine: orchestrator, the loop, one attempt of a run, scheduling, retries, health."""
