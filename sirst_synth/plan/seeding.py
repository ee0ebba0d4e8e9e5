"""Random generators keyed by the item they serve (docs/method.md section 7).

Every random choice comes from ``rng_for(seed, *key)``: a numpy generator seeded with a
``SeedSequence`` built from the user's seed and a stable digest of the key (e.g.
``("displace", round, image_id)``). Results never depend on global state, worker order or
Python's per-process hash randomisation.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np


def rng_for(seed: int, *key: str | int) -> np.random.Generator:
    """A generator determined by ``seed`` and ``key`` alone."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    digest = hashlib.sha256(json.dumps(list(key)).encode("utf-8")).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))
