"""Simulator physics, pacing (with a fake clock: no wall-clock timings), faults spec, CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ramanid.calibration.units import pixel_to_wavelength, wavelength_to_shift
from ramanid.drivers import obp, wasatch
from ramanid.drivers.simulator import STS_WAVECAL, make_engine
from ramanid.drivers.simulator.engine import SimEngine
from ramanid.drivers.simulator.faults import FaultPlan
from ramanid.drivers.simulator.obp_sim import ObpSimDevice
from ramanid.drivers.simulator.physics import DetectorModel
from ramanid.drivers.simulator.samples import load_sample

from ramanid.errors import InputError, UsageError

pytestmark = [pytest.mark.timeout(30), pytest.mark.shared]


@pytest.fixture(scope="module")
def caffeine(shared_data):
    return load_sample("Caffeine")


def _detector(sample, **kw) -> DetectorModel:
    return DetectorModel(sample, STS_WAVECAL, 785.0, 1024, adc_bits=14, **kw)


def test_sample_is_measured_file(caffeine) -> None:
    assert "caffeine" in caffeine.source.lower() and "enlighten" in caffeine.source.lower()
    assert np.all(np.diff(caffeine.shift) > 0)
    with pytest.raises(InputError, match="no measured spectrum") as exc:
        load_sample("no such substance 42")
    msg = exc.value.one_line()
    assert "ramanid library list" in msg and "shared/data" not in msg  # no checkout paths


@pytest.mark.timeout(60)
def test_unknown_sample_on_the_command_line_is_one_clear_line(capsys) -> None:
    from ramanid.cli import main

    assert main(["scan", "--device", "sim://wasatch?pace=0&sample=Fentanyl"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    line = lines[0]
    assert line.startswith("ramanid: error: sim://wasatch: no measured spectrum called 'Fentanyl'")
    assert "modelled entries are not simulated" in line and "ramanid library list" in line
    # one hint only: none of the port-opening advice glued on
    assert "cannot open port" not in line and "no other program" not in line
    assert "shared/data" not in line and "pace=0" not in line


def test_reference_band_lands_where_calibration_puts_it(caffeine) -> None:
    """The strongest band appears at the pixel whose calibrated shift is the reference's."""
    det = _detector(caffeine, fluorescence_rate=0.0, read_noise=0.0)
    mu = det.expected(1.0, laser_on=True)
    shift = wavelength_to_shift(pixel_to_wavelength(STS_WAVECAL, 1024), 785.0)
    inside = (caffeine.shift > shift[0] + 20) & (caffeine.shift < shift[-1] - 20)
    ref_peak = caffeine.shift[inside][np.argmax(caffeine.intensity[inside])]
    pixel_spacing = float(np.max(np.abs(np.diff(shift))))
    assert abs(shift[np.argmax(mu)] - ref_peak) <= pixel_spacing
    # a different excitation wavelength moves the band on the detector
    other = DetectorModel(caffeine, STS_WAVECAL, 780.0, 1024, fluorescence_rate=0.0)
    assert np.argmax(other.expected(1.0, True)) != np.argmax(mu)


def test_laser_off_has_no_raman_or_fluorescence(caffeine) -> None:
    det = _detector(caffeine)
    off = det.expected(0.5, laser_on=False)
    assert np.allclose(off, det.dark_current * 0.5)
    on = det.expected(0.5, laser_on=True)
    assert (on - off).max() > 1000


def test_noise_scales_with_integration_and_averaging(caffeine) -> None:
    det = _detector(caffeine, seed=3, read_noise=5.0)
    short = np.std([det.acquire(0.05, 1, True) for _ in range(40)], axis=0)
    long = np.std([det.acquire(0.2, 1, True) for _ in range(40)], axis=0)
    averaged = np.std([det.acquire(0.2, 16, True) for _ in range(40)], axis=0)
    strong = det.expected(0.05, True) > 500
    # shot noise grows like sqrt(signal): x4 integration -> about x2 noise on strong pixels
    ratio = np.median(long[strong] / short[strong])
    assert 1.6 < ratio < 2.4
    # averaging 16 frames divides it by about 4
    assert 3.0 < np.median(long[strong] / averaged[strong]) < 5.0


def test_saturation_and_dark_level(caffeine) -> None:
    det = _detector(caffeine, seed=1)
    sat = det.acquire(5.0, 1, True)
    assert sat.max() == det.max_count == 16383
    dark = det.acquire(0.01, 1, False)
    assert abs(dark.mean() - det.dark_offset) < 5 * det.read_noise


def test_fluorescence_raises_background(caffeine) -> None:
    low = _detector(caffeine, fluorescence_rate=0.0).expected(0.1, True)
    high = _detector(caffeine, fluorescence_rate=50_000.0).expected(0.1, True)
    assert np.median(high - low) > 1000


def test_engine_paces_bytes_at_the_baud_rate(caffeine) -> None:
    """Fake clock: a 64-byte reply at 9600 baud is released over 64 * 10 / 9600 s."""
    now = [100.0]
    dev = ObpSimDevice(_detector(caffeine))
    eng = SimEngine(dev, pace=True, clock=lambda: now[0])
    eng.receive(obp.encode(obp.Message(obp.MSG_GET_SERIAL)))
    first = eng.read()
    assert len(first) == 1
    now[0] += 31.5 * 10 / 9600
    middle = eng.read()
    assert len(first + middle) == 32
    now[0] += 1.0
    reply = first + middle + eng.read(1 << 20)
    assert obp.decode(reply).data == b"SIM-STS-0001"
    assert eng.next_due() is None


def test_engine_holds_spectrum_for_integration_times_averages(caffeine) -> None:
    now = [0.0]
    dev = ObpSimDevice(_detector(caffeine))
    eng = SimEngine(dev, pace=False, clock=lambda: now[0])
    eng.receive(obp.encode(obp.Message(obp.MSG_SET_INTEGRATION, (200_000).to_bytes(4, "little"))))
    eng.receive(obp.encode(obp.Message(obp.MSG_SET_AVERAGES, (3).to_bytes(2, "little"))))
    eng.receive(obp.encode(obp.Message(obp.MSG_GET_RAW_SPECTRUM)))
    assert eng.next_due() == pytest.approx(0.6)
    now[0] = 0.59
    assert eng.read() == b""
    now[0] = 0.61
    assert len(obp.decode(eng.read()).data) == 2048


def test_wasatch_sim_status_codes() -> None:
    eng = make_engine("wasatch", pace=False)
    bad = bytearray(wasatch.encode(wasatch.CMD_INTEGRATION, b"\x10\x00\x00", write=True))
    bad[-2] ^= 1
    eng.receive(bytes(bad))
    assert wasatch.decode(eng.read()).data == bytes([wasatch.STATUS_CRC])
    eng.receive(wasatch.encode(0x7E, b"", write=True))
    assert wasatch.decode(eng.read()).data == bytes([wasatch.STATUS_UNRECOGNIZED])
    eng.receive(wasatch.encode(wasatch.CMD_INTEGRATION, b"\x10", write=True))
    assert wasatch.decode(eng.read()).data == bytes([wasatch.STATUS_LENGTH])


def test_wasatch_laser_watchdog() -> None:
    now = [10.0]
    eng = make_engine("wasatch", pace=False, watchdog=2)
    eng.clock = lambda: now[0]
    eng.receive(wasatch.encode(wasatch.CMD_LASER, b"\x01", write=True))
    eng.read()
    assert eng.device.laser_firing
    now[0] += 3.0
    eng.receive(wasatch.encode(wasatch.CMD_LASER))
    assert wasatch.decode(eng.read()).data == b"\x00"


def test_fault_spec_parsing() -> None:
    plan = FaultPlan.parse("garbage=2, corrupt=1,delay=0.5,on=any,after=3,nack_code=7")
    assert (plan.garbage, plan.corrupt, plan.delay, plan.on, plan.after, plan.nack_code) == (
        2, 1, 0.5, "any", 3, 7)
    with pytest.raises(UsageError, match="bad fault item"):
        FaultPlan.parse("explode=1")


def test_sim_url_rejects_unknown_option() -> None:
    import serial
    from ramanid.drivers.transport import register_sim_scheme

    register_sim_scheme()
    with pytest.raises(serial.SerialException, match="unknown simulator option"):
        serial.serial_for_url("sim://sts?colour=red")


def test_simulate_cli_serves_tcp_until_interrupted() -> None:
    """`ramanid simulate --tcp 0` prints where to connect; a scan over it works; SIGINT stops."""
    import signal

    from ramanid.drivers import open_device

    proc = subprocess.Popen([sys.executable, "-m", "ramanid", "simulate", "--protocol", "wasatch",
                             "--sample", "Caffeine", "--tcp", "0", "--no-pace"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "socket://127.0.0.1:" in line
        url = line.split(" at ")[1].split()[0]
        with open_device(url, integration_ms=5) as dev:
            assert dev.identity.serial == "SIM-WP-0001"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_simulate_cli_pty_and_scan_cli_on_it() -> None:
    """`ramanid simulate --pty` serves a real pseudo-terminal; `ramanid scan` reads it."""
    import json
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "ramanid", "simulate", "--protocol", "obp",
                             "--sample", "lactose", "--pty", "--no-pace"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        path = line.split(" at ")[1].split()[0]
        assert path.startswith("/dev/")
        scan = subprocess.run([sys.executable, "-m", "ramanid", "scan", "--device", path,
                               "--protocol", "obp", "--laser-nm", "785", "--integration-ms",
                               "20", "--json", "--option", "target_baud=115200"],
                              capture_output=True, text=True, timeout=40)
        assert scan.returncode == 0, scan.stderr
        record = json.loads(scan.stdout.splitlines()[0])
        assert record["candidates"][0]["name"].lower() == "lactose"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_simulate_cli_bad_fault_spec_is_usage_error() -> None:
    res = subprocess.run([sys.executable, "-m", "ramanid", "simulate", "--faults", "boom=1",
                          "--tcp", "0"], capture_output=True, text=True, timeout=20)
    assert res.returncode == 2 and "bad fault item" in res.stderr
    assert "Traceback" not in res.stderr
