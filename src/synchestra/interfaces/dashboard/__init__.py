"""The dashboard at ``/``: server-rendered HTML, a small script, live through the event stream.

Modules: :mod:`.routes` (the pages, fragments and actions), :mod:`.session`
(signing in with the API token), and the views' shapes: :mod:`.grid`
(targets x sources), :mod:`.timeline` (recent runs in lanes), :mod:`.carrier`
(an FMCSA carrier's BASIC history and violations).
"""

from synchestra.interfaces.dashboard.routes import install

__all__ = ["install"]
