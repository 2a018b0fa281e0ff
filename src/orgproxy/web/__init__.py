"""HTTP in: the site, its resource tree and the request's deferred pipeline.

``make_site`` builds the whole tree in one place, behind a site that admits connections
(source addresses, connection caps) and an access guard at the root (client token):
``health``, ``metrics``, ``orgproxy/unknown`` and the proxy leaf under
``v1/organization``; every other path is an OpenAI-shaped 404.
"""
