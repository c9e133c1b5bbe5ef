"""Where the repository and its neighbours are, for tests at any depth of this folder."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "synchestra"
EXAMPLES = REPO / "examples"
FMCSA_SAMPLES = REPO / "tests" / "data" / "fmcsa-samples"  # real payloads, kept with the tests
