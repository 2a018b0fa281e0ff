"""``orgproxy-report``: cost and usage per name from a running orgproxy. It talks HTTP to
the daemon and imports nothing heavy from it (no numpy, simdjson or Twisted)."""
