# A twistd dropin: `twistd orgproxy`. It must not import the reactor (or anything that
# does): twistd imports every dropin before it installs the reactor chosen with -r.
from twisted.application.service import ServiceMaker

orgproxy = ServiceMaker(
    "orgproxy",
    "orgproxy.tap",
    "Proxy for OpenAI's organization usage and costs API that adds key, project and user names.",
    "orgproxy",
)
