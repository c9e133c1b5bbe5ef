"""Seeded randomness: one private RNG per (seed, topic, key).

Each carrier (and each API's fault stream) gets its own generator, so the data
of one carrier never depends on how many others exist or in which order they
were asked for. String seeds are hashed with SHA-512 by :mod:`random`, so the
values are stable across processes and ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import random


def rng_for(seed: int, *parts: object) -> random.Random:
    """A generator determined only by ``seed`` and ``parts``."""
    return random.Random(":".join(str(part) for part in (seed, *parts)))
