"""Where names come from and the snapshot they make: the operator's alias file, discovery
from the Admin API, the history of every name ever learned, and the ids still unnamed."""
