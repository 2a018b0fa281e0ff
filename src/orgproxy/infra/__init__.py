"""What the daemon runs on, below every feature: its logs, file watching, the run directory
its processes share, periodic calls with backoff, signal handlers, the allocator's
settings, and the metrics registry. Nothing here imports a feature (names, costs, web,
upstream, body)."""
