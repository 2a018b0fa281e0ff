"""Running the daemon: reloads, file watching, signals, workers, logs, metrics and the
allocator's settings."""
