"""Device simulator: protocol models, physics, fault injection, pty/TCP servers and ``sim://``.

``make_engine(profile, **options)`` builds a ready :class:`~.engine.SimEngine`:

``profile``  ``sts`` (Ocean STS, OBP over RS-232) or ``wasatch`` (Wasatch OEM WP Raman UART)
``sample``   measured reference spectrum, library name or file (default acetaminophen)
``pace``     release bytes at the baud rate (default true)
``faults``   fault SPEC (see :mod:`.faults`)
``seed``     noise seed; ``signal`` Raman counts/s at the strongest band; ``fluorescence``
             counts/s of background; ``dark`` offset counts; ``laser_nm`` excitation;
             ``baud`` (sts power-up rate), ``baud_ack`` (old/none), ``interlock`` (closed/open),
             ``byte_order`` (little/big), ``watchdog`` (s), ``serial``, ``lamp`` (sts: lamp line
             drives the laser), ``echo`` (sts: echo the ``regarding`` tag)

The same options are the query of a ``sim://PROFILE?key=value&...`` URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ramanid.errors import UsageError

PROFILES = ("sts", "wasatch")
PROTOCOL_OF_PROFILE = {"sts": "obp", "wasatch": "wasatch"}
PROFILE_OF_PROTOCOL = {"obp": "sts", "wasatch": "wasatch"}

# STS-class detector behind a 785 nm Raman front end: 795-955 nm over 1024 pixels.
STS_WAVECAL = (795.0, 0.158, -1.2e-6, 0.0)
# Coefficients and excitation of the real WP-785XS unit that measured the bundled library
# (ENLIGHTEN CSV header of ../shared/data/enlighten/library: CCD C0..C4, 784.896 nm, 1952 px).
WASATCH_WAVECAL = (756.0833740234375, 0.1774686872959137, -4.1083956602960825e-05,
                   1.0994865462521375e-08, -1.4183285622360042e-12)
WASATCH_LASER_NM = 784.896

_TRUE = {"1", "true", "yes", "on"}


def _bool(v: Any) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() in _TRUE


def parse_sim_url(url: str) -> tuple[str, dict[str, str]]:
    """Split ``sim://PROFILE?k=v&...`` into the profile and its options."""
    parts = urlsplit(url)
    if parts.scheme != "sim":
        raise UsageError(f"not a sim:// URL: {url}")
    profile = (parts.netloc or parts.path.strip("/")).lower() or "sts"
    return profile, dict(parse_qsl(parts.query, keep_blank_values=True))


def make_engine(profile: str = "sts", **options: Any):
    """Build a simulated device with its paced, fault-injecting engine.

    Parameters
    ----------
    profile
        ``"sts"`` or ``"wasatch"`` (``"obp"`` is accepted for ``"sts"``).
    **options
        See the module docstring.

    Returns
    -------
    SimEngine
    """
    from ramanid.drivers import wasatch_eeprom
    from ramanid.drivers.simulator.engine import SimEngine
    from ramanid.drivers.simulator.faults import FaultPlan
    from ramanid.drivers.simulator.obp_sim import ObpSimDevice
    from ramanid.drivers.simulator.physics import DetectorModel
    from ramanid.drivers.simulator.samples import DEFAULT_SAMPLE, load_sample
    from ramanid.drivers.simulator.wasatch_sim import WasatchSimDevice

    profile = PROFILE_OF_PROTOCOL.get(profile.lower(), profile.lower())
    if profile not in PROFILES:
        raise UsageError(f"unknown simulator profile {profile!r}", hint="use sts or wasatch")
    opts: Mapping[str, Any] = options
    known = {"sample", "pace", "faults", "seed", "signal", "fluorescence", "dark", "laser_nm",
             "baud", "baud_ack", "interlock", "byte_order", "watchdog", "serial", "lamp",
             "echo"}
    unknown = set(opts) - known
    if unknown:
        raise UsageError(f"unknown simulator option(s): {', '.join(sorted(unknown))}",
                         hint=f"known: {', '.join(sorted(known))}")
    faults = opts.get("faults")
    plan = faults if isinstance(faults, FaultPlan) else FaultPlan.parse(faults)
    sample = load_sample(opts.get("sample") or DEFAULT_SAMPLE)
    seed = int(opts.get("seed", 0))
    common = {"seed": seed, "raman_rate": float(opts.get("signal", 40_000.0)),
              "fluorescence_rate": float(opts.get("fluorescence", 4_000.0)),
              "dark_offset": float(opts.get("dark", 800.0))}
    if profile == "sts":
        laser = float(opts.get("laser_nm", 785.0))
        det = DetectorModel(sample, STS_WAVECAL, laser, 1024, adc_bits=14, **common)
        dev = ObpSimDevice(det, serial=str(opts.get("serial", "SIM-STS-0001")),
                           baud=int(opts.get("baud", 9600)),
                           baud_ack=str(opts.get("baud_ack", "old")),
                           lamp_drives_laser=_bool(opts.get("lamp", True)), faults=plan,
                           echo_regarding=_bool(opts.get("echo", True)))
    else:
        laser = float(opts.get("laser_nm", WASATCH_LASER_NM))
        det = DetectorModel(sample, WASATCH_WAVECAL, laser, 1952, adc_bits=16, **common)
        ee = wasatch_eeprom.Eeprom(model="SIM-WP-785", serial=str(opts.get("serial",
                                                                          "SIM-WP-0001")),
                                   excitation_nm=laser, wavelength_coeffs=WASATCH_WAVECAL,
                                   active_pixels=1952, has_laser=True, detector="SIM-IMX385",
                                   min_integration_ms=1, max_integration_ms=0xFFFFFF,
                                   laser_watchdog_s=int(opts.get("watchdog", 0)))
        dev = WasatchSimDevice(det, ee, byte_order=str(opts.get("byte_order", "little")),
                               interlock_closed=str(opts.get("interlock", "closed")) != "open",
                               faults=plan)
    return SimEngine(dev, plan, pace=_bool(opts.get("pace", True)))
