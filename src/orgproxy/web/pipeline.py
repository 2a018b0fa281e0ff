"""What happens to an upstream answer on its way back, one named step at a time.

The proxy chains these on the upstream call's Deferred:

    validate -> amend_names -> (the proxy notes the ids) -> regroup_rows -> respond

Each step takes the ``Answer`` and returns it, so each can be called (and tested) on its
own. Pure: no I/O; the steps that write to the client or to logs belong to the proxy.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from orgproxy.body.amend import amend_valid_json
from orgproxy.body.insertion import Amended
from orgproxy.body.grouping import regroup
from orgproxy.body.validate import Validity, validity
from orgproxy.fields import OPENAI_FIELDS, FieldSet
from orgproxy.snapshot import Names
from orgproxy.upstream.client import UpstreamResponse


@dataclass(slots=True)
class Answer:
    """An upstream response on its way to the client, and what was done to it."""

    response: UpstreamResponse
    body: bytes
    labelled_json: bool = False  # the upstream said JSON (and sent a body)
    valid_json: bool = False  # ... and it is
    too_deep: bool = False  # ... or it is nested too deeply to tell, or to amend
    amended: Amended | None = None  # what amending found, when it ran

    @property
    def unparsable(self) -> bool:
        """Labelled JSON that does not parse: passed through untouched, and worth a warning."""
        return self.labelled_json and not self.valid_json and not self.too_deep


def is_json_type(content_type: bytes | None) -> bool:
    """``application/json`` or any ``+json`` media type, parameters aside."""
    if not content_type:
        return False
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


def validate(response: UpstreamResponse) -> Answer:
    """Whether the body is JSON that may be amended: labelled so, and valid."""
    labelled = bool(response.body) and is_json_type(response.header(b"content-type"))
    found = validity(response.body) if labelled else Validity.INVALID
    return Answer(response, response.body, labelled, found is Validity.VALID, found is Validity.TOO_DEEP)


def amend_names(answer: Answer, names: Names, fields: FieldSet = OPENAI_FIELDS,
                named_nulls: Collection[str] = ()) -> Answer:
    """A name beside every id (of the provider's ``fields``) of a valid JSON body,
    spliced into its own bytes; a null id of a field in ``named_nulls`` (an answer grouped
    by it) gets the provider's name for what that null stands for."""
    if answer.valid_json:
        answer.amended = amend_valid_json(answer.body, names, fields, named_nulls)
        if len(answer.body) >= LET_GO_BYTES and answer.amended.body is not answer.body:
            # The upstream's body is not sent: let it go now rather than hold it (10 MB
            # for a large page) beside the amended one while that is written out.
            answer.response = replace(answer.response, body=b"")
        answer.body = answer.amended.body
    return answer


# Below this size, holding the upstream's body a little longer costs less than the copy
# of the response that lets it go.
LET_GO_BYTES = 64 * 1024


def regroup_rows(answer: Answer, grouped: Collection[str], names: Names, replace_ids: bool,
                 fields: FieldSet = OPENAI_FIELDS) -> Answer:
    """Rows merged by name over the ``grouped`` id fields, and names written into the id
    fields when ``replace_ids``; the body as it was when neither applies."""
    if answer.amended is not None and (grouped or replace_ids):
        answer.body = regroup(answer.body, grouped, names, replace_ids, fields) or answer.body
    return answer
