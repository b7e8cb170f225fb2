"""Device API end to end: sim://, a real pseudo-terminal, socket:// on 127.0.0.1; faults; laser."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from ramanid.drivers import obp, open_device
from ramanid.drivers.errors import (
    DeviceDisconnected,
    DeviceError,
    DeviceNack,
    DeviceTimeout,
    LaserInterlockError,
)
from ramanid.drivers.simulator import make_engine
from ramanid.drivers.simulator.faults import FaultPlan
from ramanid.drivers.simulator.servers import PtyServer, TcpServer

from ramanid.errors import UsageError

pytestmark = [pytest.mark.timeout(30), pytest.mark.shared]

FAST = {"integration_ms": 5, "margin_s": 0.5}


def _opts(protocol: str) -> dict:
    # OBP: every open also runs the baud-change choreography (9600 -> 115200)
    return {**FAST, "laser_nm": 785.0, "target_baud": 115200} if protocol == "obp" else \
        dict(FAST)


def _url(protocol: str, extra: str = "") -> str:
    prof = "sts" if protocol == "obp" else "wasatch"
    return f"sim://{prof}?pace=0&sample=Caffeine{extra}"


@pytest.fixture(autouse=True)
def _needs_data(shared_data):
    return shared_data


def _check_scan(dev, protocol: str) -> None:
    ident = dev.identity
    assert ident.protocol == protocol
    assert ident.serial.startswith("SIM-")
    assert ident.n_pixels == (1024 if protocol == "obp" else 1952)
    dev.set_laser(True)
    scan = dev.acquire()
    assert scan.counts.shape == (ident.n_pixels,)
    assert scan.wavelength_nm[0] < scan.wavelength_nm[-1]
    assert scan.counts.max() > scan.counts.min() + 50  # Raman bands above the dark level
    batch = scan.to_batch()
    assert np.all(np.diff(batch.axis) > 0)
    assert batch.meta[0]["device_serial"] == ident.serial
    assert batch.meta[0]["simulated"] is True


@pytest.mark.parametrize("protocol", ["obp", "wasatch"])
def test_sim_url_end_to_end(protocol: str) -> None:
    with open_device(_url(protocol), **_opts(protocol)) as dev:
        _check_scan(dev, protocol)


@pytest.mark.parametrize("protocol", ["obp", "wasatch"])
def test_pty_end_to_end_paced(protocol: str) -> None:
    """pyserial opens the slave path of a real pty; the simulator paces bytes at the baud."""
    prof = "sts" if protocol == "obp" else "wasatch"
    engine = make_engine(prof, sample="Caffeine", pace=True)
    with PtyServer(engine) as srv:
        # OBP: leave 9600 for 115200 with the documented choreography (else 2.2 s per spectrum)
        with open_device(srv.path, protocol=None, **_opts(protocol)) as dev:
            if protocol == "obp":
                assert dev.transport.baudrate == 115200 and engine.device.baud == 115200
            _check_scan(dev, protocol)


@pytest.mark.parametrize("protocol", ["obp", "wasatch"])
def test_socket_end_to_end(protocol: str) -> None:
    prof = "sts" if protocol == "obp" else "wasatch"
    with TcpServer(make_engine(prof, sample="Caffeine", pace=False)) as srv:
        assert srv.url.startswith("socket://127.0.0.1:")
        with open_device(srv.url, protocol=protocol, **_opts(protocol)) as dev:
            _check_scan(dev, protocol)


def test_obp_wrong_host_baud_times_out() -> None:
    with pytest.raises(DeviceTimeout):
        open_device(_url("obp"), baud=19200, retries=0, **FAST)


def test_obp_baud_change_refused_rate() -> None:
    with pytest.raises(DeviceNack) as info:
        open_device(_url("obp"), **{**_opts("obp"), "target_baud": 12345})
    assert info.value.code == 6 and "payload data invalid" in str(info.value)


def test_obp_not_ready_until_integration_set() -> None:
    """STS quirk: a spectrum request before the integration time is set gets error 7."""
    engine = make_engine("sts", pace=False)
    engine.receive(obp.encode(obp.Message(obp.MSG_GET_RAW_SPECTRUM)))
    reply = obp.decode(engine.read())
    assert reply.is_nack and reply.errno == 7
    engine.receive(obp.encode(obp.Message(obp.MSG_SET_INTEGRATION, struct.pack("<I", 1000),
                                          flags=obp.FLAG_ACK_REQUESTED)))
    assert obp.decode(engine.read()).is_ack
    engine.receive(obp.encode(obp.Message(obp.MSG_GET_RAW_SPECTRUM)))
    import time

    time.sleep(0.01)
    reply = obp.decode(engine.read())
    assert not reply.is_nack and len(reply.data) == 2048


def test_obp_unknown_type_and_bad_md5_are_nacked() -> None:
    engine = make_engine("sts", pace=False)
    engine.receive(obp.encode(obp.Message(0x00ABCDEF)))
    assert obp.decode(engine.read()).errno == 2
    raw = bytearray(obp.encode(obp.Message(obp.MSG_GET_SERIAL, checksum_type=1)))
    raw[45] ^= 0xFF  # inside the MD5
    engine.receive(bytes(raw))
    reply = obp.decode(engine.read())
    assert reply.is_nack and reply.errno == 3


def _reference_scans(protocol: str, n: int) -> list[np.ndarray]:
    with open_device(_url(protocol), **_opts(protocol)) as dev:
        dev.set_laser(True)
        return [dev.acquire().counts for _ in range(n)]


def _faulty(protocol: str, spec: str):
    dev = open_device(_url(protocol), **_opts(protocol))
    dev.set_laser(True)
    dev.transport.raw.engine.set_faults(FaultPlan.parse(spec))
    return dev


FAULTS = {
    "obp": ["garbage=1", "drop=1", "corrupt=1", "truncate=1", "delay=0.1",
            "garbage=1,corrupt=1,on=any", "nack=1,nack_code=7"],
    "wasatch": ["garbage=1", "drop=1", "truncate=1", "delay=0.1", "corrupt=1,on=frame",
                "garbage=1,on=frame", "nack=1,nack_code=2"],
}


@pytest.mark.parametrize(("protocol", "spec"),
                         [(p, s) for p, specs in FAULTS.items() for s in specs])
def test_fault_recovered_never_corrupt(protocol: str, spec: str) -> None:
    """After each fault the driver returns a spectrum identical to one the undamaged device
    produces (same noise seed), never a damaged one."""
    refs = _reference_scans(protocol, 4)
    dev = _faulty(protocol, spec)
    with dev:
        if "on=frame" in spec or "on=any" in spec:
            dev.set_integration_ms(FAST["integration_ms"])  # a framed exchange takes the fault
        scan = dev.acquire().counts
        applied = dev.transport.raw.engine.faults.applied
    assert applied, "fault was not injected"
    assert any(np.array_equal(scan, r) for r in refs)


@pytest.mark.parametrize("protocol", ["obp", "wasatch"])
def test_nack_with_device_error_text(protocol: str) -> None:
    code = 6 if protocol == "obp" else 3
    dev = _faulty(protocol, f"nack=1,nack_code={code}")
    with dev, pytest.raises(DeviceNack) as info:
        dev.set_integration_ms(10)
    text = "payload data invalid" if protocol == "obp" else "unrecognized command"
    assert info.value.code == code and text in str(info.value)


@pytest.mark.parametrize("protocol", ["obp", "wasatch"])
def test_disconnect_mid_spectrum(protocol: str) -> None:
    dev = _faulty(protocol, "disconnect=1")
    with dev, pytest.raises(DeviceDisconnected):
        dev.acquire()


@pytest.mark.parametrize("protocol", ["obp", "wasatch"])
def test_disconnect_mid_spectrum_over_pty(protocol: str) -> None:
    prof = "sts" if protocol == "obp" else "wasatch"
    engine = make_engine(prof, pace=False)
    with PtyServer(engine) as srv:
        dev = open_device(srv.path, protocol=protocol, **_opts(protocol))
        engine.set_faults(FaultPlan.parse("disconnect=1"))
        with dev, pytest.raises(DeviceError):
            dev.acquire()


def test_persistent_damage_raises_clear_error() -> None:
    dev = _faulty("obp", "truncate=9")
    with dev, pytest.raises(DeviceTimeout, match="no reply"):
        dev.acquire()


def test_wasatch_laser_interlock_open() -> None:
    with open_device(_url("wasatch", "&interlock=open"), **FAST) as dev:
        with pytest.raises(LaserInterlockError, match="did not turn on"):
            dev.set_laser(True)
        assert dev.laser_enabled is False


def test_laser_off_gives_no_raman_and_dark_subtraction() -> None:
    with open_device(_url("wasatch"), **FAST) as dev:
        dev.set_laser(True)
        lit = dev.acquire()
        dark = dev.acquire_dark()
        assert dev.laser_enabled is True  # restored after the dark
        assert dark.extra.get("dark") is True and dark.laser_on is False
        net = lit.subtract_dark(dark)
    # dark: offset + noise only; lit: Raman bands far above it
    assert dark.counts.std() < 30
    assert net.counts.max() > 20 * dark.counts.std()
    assert net.dark_subtracted


def test_acquisition_timeout_scales_with_settings() -> None:
    with open_device(_url("obp"), **FAST) as dev:
        dev.set_integration_ms(40)
        dev.set_averages(3)
        t = dev.acquisition_timeout(2112)
        assert t == pytest.approx(0.12 + 1.1 * 2112 * 10 / 9600 + FAST["margin_s"])
        assert dev.acquire().averages == 3


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown OBP option"):
        open_device(_url("obp"), colour="red")
    with open_device(_url("wasatch"), **FAST) as dev, pytest.raises(UsageError):
        dev.set_integration_ms(0)


def test_unreachable_port_is_device_error(tmp_path) -> None:
    with pytest.raises(DeviceError, match="cannot open the port: No such file or directory"):
        open_device(str(tmp_path / "no-such-tty"), protocol="obp")


def _refused_url() -> str:
    """A socket:// URL on 127.0.0.1 where nothing listens (a port just released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"socket://127.0.0.1:{port}"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("protocol", [None, "wasatch", "obp"])
def test_port_that_cannot_be_opened_reports_the_real_cause(tmp_path, protocol) -> None:
    from ramanid.drivers.errors import PortUnavailable

    cases = [(str(tmp_path / "ttyNONE"), "No such file or directory", "ramanid devices"),
             (_refused_url(), "Connection refused", "host and port")]
    for url, cause, hint in cases:
        with pytest.raises(PortUnavailable) as exc:
            open_device(url, protocol)  # without a protocol: no probing of a dead port
        msg = exc.value.one_line()
        assert cause in msg and hint in msg, msg
        assert "no known protocol" not in msg and "Errno" not in msg
        assert msg.count(";") == 1  # message; one hint


@pytest.mark.timeout(30)
def test_silent_port_hint_names_the_cli_flag() -> None:
    import os
    import pty

    master, slave = pty.openpty()  # a real terminal on which no device answers
    try:
        with pytest.raises(DeviceError) as exc:
            open_device(os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
    msg = exc.value.one_line()
    assert "no known protocol answered" in msg and "--protocol obp|wasatch" in msg
    assert "protocol=" not in msg


def test_obp_silent_baud_switch_profile() -> None:
    """speclib's assumption: the device switches without ACK; the driver waits and verifies."""
    url = _url("obp", "&baud_ack=none")
    with open_device(url, **{**_opts("obp"), "baud_ack": "none"}) as dev:
        assert dev.transport.baudrate == 115200
        assert dev.transport.raw.engine.device.baud == 115200
        assert dev.acquire().counts.shape == (1024,)


def test_wasatch_big_endian_profile() -> None:
    with open_device(_url("wasatch", "&byte_order=big"), byte_order="big", **FAST) as big, \
            open_device(_url("wasatch"), **FAST) as little:
        big.set_laser(True)
        little.set_laser(True)
        assert np.array_equal(big.acquire().counts, little.acquire().counts)


def test_obp_md5_fallback_when_device_refuses_checksums() -> None:
    """checksum='auto': a device that NACKs MD5 requests (error 8) is used without MD5."""
    dev = open_device(_url("obp"), **_opts("obp"))
    with dev:
        dev.transport.raw.engine.set_faults(FaultPlan.parse("nack=1,nack_code=8"))
        dev.set_integration_ms(7)
        assert dev._md5 is False and dev.integration_ms == 7


def test_obp_reopen_finds_device_already_at_target_baud() -> None:
    """The STS keeps a changed rate until power-off: a second session must still connect."""
    engine = make_engine("sts", pace=False)
    with PtyServer(engine) as srv:
        with open_device(srv.path, protocol="obp", **_opts("obp")):
            pass
        assert engine.device.baud == 115200
        with open_device(srv.path, protocol="obp", **_opts("obp")) as dev:
            assert dev.transport.baudrate == 115200
            assert dev.identity.serial == "SIM-STS-0001"


def test_transport_deadlines_on_loopback() -> None:
    """pyserial loop://: reads end at their deadline with DeviceTimeout, never hang."""
    import time

    from ramanid.drivers.transport import Transport

    with Transport("loop://", baudrate=115200) as t:
        t.write(b"hello", time.monotonic() + 1.0)
        assert t.read_exact(5, time.monotonic() + 1.0) == b"hello"
        assert t.read_some(10, time.monotonic() + 0.05) == b""
        with pytest.raises(DeviceTimeout, match="0 of 4 bytes"):
            t.read_exact(4, time.monotonic() + 0.05)
        t.write(b"xyz", time.monotonic() + 1.0)
        assert t.drain(quiet_s=0.02) == 3


def test_obp_device_that_does_not_echo_regarding() -> None:
    with open_device(_url("obp", "&echo=0"), **_opts("obp")) as dev:
        dev.set_laser(True)
        assert dev.acquire().counts.max() > 1000


@pytest.mark.timeout(30)
def test_no_laser_control_hints_name_cli_options_not_python() -> None:
    from ramanid.drivers.errors import DeviceUnsupported

    with open_device(_url("obp"), **{**_opts("obp"), "laser_line": "none"}) as dev:
        assert dev.laser_enabled is None
        for action in (dev.acquire_dark, lambda: dev.set_laser(True)):
            with pytest.raises(DeviceUnsupported) as exc:
                action()
            msg = exc.value.one_line()
            assert "--option laser_line=lamp" in msg
            assert "()" not in msg and "dark=" not in msg and "'lamp'" not in msg
