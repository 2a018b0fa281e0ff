"""HTTP out: the pooled, TLS-verified client that forwards to the upstream byte for byte,
bounded in time and size; treq's ``HTTPClient`` for the Admin API calls of discovery; the
response cache."""
