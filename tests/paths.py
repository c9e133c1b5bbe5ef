"""Where the repository and its neighbours are, for tests at any depth of this folder."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "synchestra"
EXAMPLES = REPO / "examples"
SHARED = REPO.parent / "shared"  # the product's shared folder: FMCSA samples, the contract
