"""orgproxy: names beside the ids in OpenAI organization usage and costs."""
