"""The benchmark's usage pages and alias map, generated deterministically.

Pages are shaped like OpenAI's ``/v1/organization/usage/completions`` answers:

    small:  1 bucket  x    3 results   (~1 KB)
    medium: 7 buckets x   50 results   (~120 KB)
    large:  31 buckets x 1000 results  (~10 MB)

Rows cycle through ``KEY_COUNT`` API key ids ``key_%016x``; every other one (the even
indices) is named in the alias map, so half the rows of a page get a real name and half
get "unknown". The same inputs give the same bytes on every machine and every run.
"""

from __future__ import annotations

import json
import random

SIZES: dict[str, tuple[int, int]] = {"small": (1, 3), "medium": (7, 50), "large": (31, 1000)}
KEY_COUNT = 200
MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "o3-2025-04-16")
START = 1730419200  # 2024-11-01T00:00:00Z


def key_ids() -> list[str]:
    return [f"key_{i:016x}" for i in range(KEY_COUNT)]


def aliases() -> dict[str, str]:
    """id -> name for half of the ids (the even ones)."""
    return {key: f"service-{i}-production" for i, key in enumerate(key_ids()) if i % 2 == 0}


def alias_toml() -> str:
    """The alias map as an orgproxy alias file."""
    return "[api_keys]\n" + "".join(f'{key} = "{name}"\n' for key, name in aliases().items())


def page(size: str) -> bytes:
    """The JSON body of one page, as bytes."""
    buckets, per_bucket = SIZES[size]
    rnd = random.Random(f"orgproxy-bench/{size}")  # str seeds are stable across runs and machines
    keys = key_ids()
    data = []
    for b in range(buckets):
        results = []
        for r in range(per_bucket):
            i = b * per_bucket + r
            results.append({
                "object": "organization.usage.completions.result",
                "input_tokens": rnd.randint(0, 10**7), "output_tokens": rnd.randint(0, 10**6),
                "input_cached_tokens": rnd.randint(0, 10**6), "input_audio_tokens": 0,
                "output_audio_tokens": 0, "num_model_requests": rnd.randint(1, 10**4),
                "project_id": f"proj_{i % 7:08x}", "user_id": None, "api_key_id": keys[i % len(keys)],
                "model": rnd.choice(MODELS), "batch": None,
            })
        data.append({"object": "bucket", "start_time": START + 86400 * b,
                     "end_time": START + 86400 * (b + 1), "results": results})
    return json.dumps({"object": "page", "data": data, "has_more": False, "next_page": None}).encode()


def parse_sizes(text: str) -> list[str]:
    """``"small,large"`` -> ["small", "large"], checked, in the order given, no repeats."""
    sizes: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part not in SIZES:
            raise ValueError(f"unknown page size {part!r} (choose from {', '.join(SIZES)})")
        if part not in sizes:
            sizes.append(part)
    if not sizes:
        raise ValueError("no page size given")
    return sizes
