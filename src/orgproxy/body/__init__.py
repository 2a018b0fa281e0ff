"""Pure work on response bodies: validate the JSON, splice names beside ids into the
upstream's own bytes, and merge rows by name. No I/O, no clock, no Twisted."""
