"""What ``twistd orgproxy`` is made of: its options (``options.py``, coerced by
``coercions.py``), its service (``service.py``), and one builder per concern (``process.py``,
``names.py``, ``upstreams.py``, ``discovery.py``, ``costs.py``, ``site.py``, ``workers.py``),
put together by ``parts.py`` for ``tap.makeService`` to compose."""
