"""``make demo``: orgproxy in front of a local fake OpenAI and Anthropic organization (see
``demo/__main__.py``). Not part of the package: it runs from a clone, beside the tests whose
fakes it serves."""
