"""ramanid: identify substances from handheld Raman scans; an early warning for synthetic opioids.

The package is a pipeline of small stages, each working on a batch of spectra (a 2-D array on a
shared Raman-shift axis):

``ramanid.io`` (readers/writers) -> ``ramanid.calibration`` -> ``ramanid.preprocess`` ->
``ramanid.match`` -> ``ramanid.identify`` -> ``ramanid.cli`` / reports / ``ramanid.batch``.
"""

from ramanid._version import __version__
from ramanid.errors import InputError, RamanidError, UsageError
from ramanid.spectrum import SpectrumBatch

__all__ = ["InputError", "RamanidError", "SpectrumBatch", "UsageError", "__version__"]
