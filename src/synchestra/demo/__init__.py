"""``synchestra demo`` and the example sources it and ``examples/fleet.toml`` use."""
