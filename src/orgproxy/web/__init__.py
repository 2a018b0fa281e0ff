"""HTTP in: the site, its resource tree and the request's deferred pipeline.

``make_site`` builds the whole tree in one place: an access guard at the root (source
addresses, client token), then ``health``, ``metrics``, ``orgproxy/unknown`` and the proxy
leaf under ``v1/organization``; every other path is an OpenAI-shaped 404.
"""
