"""Secrets handed over by systemd's ``LoadCredential=``.

systemd copies each credential into a private directory only the service can read
and names that directory in ``$CREDENTIALS_DIRECTORY``; a file there stands in for an
option that names a file holding a secret, when that option is not given itself (by
flag or ``ORGPROXY_*`` variable). The credential names are those of the shipped unit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# option -> the credential (file name in $CREDENTIALS_DIRECTORY) that can stand in for it
CREDENTIAL_FOR_OPTION: Mapping[str, str] = {
    "admin-key-file": "openai-admin-key",
    "anthropic-admin-key-file": "anthropic-admin-key",
    "client-token-file": "client-token",
}


def credential_file(environ: Mapping[str, str], option: str) -> str | None:
    """The credential file standing in for ``option``, where systemd provides one."""
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = os.path.join(directory, CREDENTIAL_FOR_OPTION[option])
    return path if os.path.isfile(path) else None
