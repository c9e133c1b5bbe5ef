"""The built-in FMCSA connectors, for carriers keyed ``dot:<USDOT number>``.

========================  ==============  ===========================================
connector                 record kind     source
========================  ==============  ===========================================
``fmcsa.carrier``         ``carrier``     QCMobile ``/qc/services/carriers/{dot}``
``fmcsa.csa_scores``      ``basic``       QCMobile ``/qc/services/carriers/{dot}/basics``
``fmcsa.violations``      ``violation``   DataHub (Socrata) dataset ``8mt8-2mdr``
``fmcsa.inspections``     ``inspection``  SaferWebAPI ``/v2/usdot/snapshot/{dot}``
========================  ==============  ===========================================

Each connector lives in its own module and carries a ``default_api``. The
shared pieces: :mod:`.keys` (target keys), :mod:`.parsing` (the formats'
quirks), :mod:`.transport`, :mod:`.qcmobile` and :mod:`.socrata` (requests and
errors). See ``docs/fmcsa.md``.
"""

from __future__ import annotations

from synchestra.connectors.fmcsa.keys import dot_number, normalize_dot_key

__all__ = ["dot_number", "normalize_dot_key"]
