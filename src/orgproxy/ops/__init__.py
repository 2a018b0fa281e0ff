"""Running the daemon as a whole: reloading names (SIGHUP, the file changed), the workers
that share one listening socket, and a worker's ties to its first process."""
