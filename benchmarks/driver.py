"""Driver benchmark (run by hand): acquisition overhead and stream-parser throughput.

1. Overhead of one ``Device.acquire()`` beyond integration time + wire time, through a real
   pseudo-terminal with the simulator pacing bytes at the line rate (Wasatch 921600 baud;
   OBP after switching to 115200 baud) and through ``sim://``. Peer: a naive exchange on the same
   line (write the request, one ``serial.read(n)`` with a fixed timeout, no validation).
   Target: <= 10 ms.
2. Parser throughput in MB/s on long streams of OBP spectrum frames and of Wasatch frames, fed in
   4 KiB chunks and in 64-byte chunks (what serial reads return). Peer: a naive parser that
   concatenates bytes (``buf = buf + chunk``) and re-slices from the start for every frame.

Usage: ``python benchmarks/driver.py [--repeats N]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from ramanid.drivers import obp, open_device
from ramanid.drivers import wasatch as w
from ramanid.drivers.crc import crc8_maxim
from ramanid.drivers.simulator import make_engine
from ramanid.drivers.simulator.servers import PtyServer
from ramanid.drivers.transport import wire_time


# -- 1. acquisition overhead --------------------------------------------------------------------
def _overhead(dev, reply_bytes: int, repeats: int) -> list[float]:
    out = []
    dev.acquire()  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        dev.acquire()
        dt = time.perf_counter() - t0
        ideal = dev.integration_ms / 1000 * dev.averages + wire_time(reply_bytes,
                                                                     dev.transport.baudrate)
        out.append((dt - ideal) * 1000)
    return out


def _naive_overhead(url: str, protocol: str, integration_ms: float, repeats: int) -> list[float]:
    """Peer: the same exchange with bare pyserial: write, one read(n), no checks."""
    import serial

    out = []
    if protocol == "wasatch":
        ser = serial.serial_for_url(url, baudrate=w.BAUD, timeout=2.0)
        ser.write(w.encode(w.CMD_INTEGRATION, int(integration_ms).to_bytes(3, "little"),
                           write=True))
        ser.read(6)
        req, n = w.encode(w.CMD_ACQUIRE), 2 * 1952
        baud = w.BAUD
    else:
        ser = serial.serial_for_url(url, baudrate=115200, timeout=2.0)
        req, n = obp.encode(obp.Message(obp.MSG_GET_RAW_SPECTRUM)), 2112
        baud = 115200
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        ser.write(req)
        data = ser.read(n)
        dt = time.perf_counter() - t0
        assert len(data) == n
        if i:
            out.append((dt - integration_ms / 1000 - wire_time(n, baud)) * 1000)
    ser.close()
    return out


def bench_acquisition(repeats: int) -> None:
    integ = 20.0
    print(f"1. acquisition overhead beyond integration ({integ:g} ms) + wire time, "
          f"median of {repeats} (ms)")
    print(f"   {'path':38s} {'ramanid':>9s} {'naive peer':>11s}")
    for prof, proto in (("wasatch", "wasatch"), ("sts", "obp")):
        engine = make_engine(prof, sample="Caffeine", pace=True)
        with PtyServer(engine) as srv:
            opts = {"integration_ms": integ}
            if proto == "obp":
                opts.update(laser_nm=785.0, target_baud=115200, checksum="none")
            with open_device(srv.path, protocol=proto, **opts) as dev:
                reply = 2 * dev.identity.n_pixels + (obp.MIN_FRAME if proto == "obp" else 0)
                ours = statistics.median(_overhead(dev, reply, repeats))
            peer = statistics.median(_naive_overhead(srv.path, proto, integ, repeats))
        print(f"   pty {proto:8s} @ {engine.device.baud:>6d} baud         {ours:9.2f} "
              f"{peer:11.2f}")
    for prof, proto in (("wasatch", "wasatch"), ("sts", "obp")):
        url = f"sim://{prof}?sample=Caffeine"
        opts = {"integration_ms": integ}
        if proto == "obp":
            opts.update(laser_nm=785.0, target_baud=115200)
        with open_device(url, **opts) as dev:
            reply = 2 * dev.identity.n_pixels + (obp.MIN_FRAME if proto == "obp" else 0)
            ours = statistics.median(_overhead(dev, reply, repeats))
        print(f"   sim:// {proto:8s} (paced, MD5 on for obp)    {ours:9.2f} {'-':>11s}")


# -- 2. parser throughput ------------------------------------------------------------------------
def naive_obp_parse(chunks: list[bytes]) -> int:
    """Peer: bytes concatenation, scan from the start, slice copies."""
    buf = b""
    n = 0
    for c in chunks:
        buf = buf + c
        while True:
            i = buf.find(obp.START)
            if i < 0 or len(buf) - i < obp.HEADER_LEN:
                break
            total = obp.HEADER_LEN + int.from_bytes(buf[i + 40:i + 44], "little")
            if len(buf) - i < total:
                break
            frame = buf[i:i + total]
            buf = buf[i + total:]
            if frame[-4:] == obp.FOOTER:
                n += 1
    return n


def naive_wasatch_parse(chunks: list[bytes]) -> int:
    """Peer: bytes concatenation and a CRC function call per frame."""
    buf = b""
    n = 0
    for c in chunks:
        buf = buf + c
        while True:
            i = buf.find(b"<")
            if i < 0 or len(buf) - i < 3:
                break
            length = (buf[i + 1] << 8) | buf[i + 2]
            if len(buf) - i < length + 5:
                break
            frame = buf[i:i + length + 5]
            buf = buf[i + length + 5:]
            if crc8_maxim(frame[1:3 + length]) == frame[3 + length] and frame[-1] == 0x3E:
                n += 1
    return n


def _chunks(stream: bytes, size: int = 4096) -> list[bytes]:
    return [stream[i:i + size] for i in range(0, len(stream), size)]


def _rate(fn, chunks: list[bytes], expect: int) -> float:
    total = sum(len(c) for c in chunks)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        got = fn(chunks)
        best = min(best, time.perf_counter() - t0)
        assert got == expect, (got, expect)
    return total / best / 1e6


def bench_parsers() -> None:
    rng = np.random.default_rng(0)
    print("2. stream-parser throughput (MB/s, best of 3)")
    n = 2000
    spectra = [obp.encode(obp.Message(obp.MSG_GET_RAW_SPECTRUM,
                                      rng.integers(0, 16383, 1024).astype("<u2").tobytes(),
                                      flags=1)) for _ in range(50)]
    stream = b"".join(spectra[i % 50] for i in range(n))

    def ours_obp(chunks: list[bytes]) -> int:
        p = obp.StreamParser()
        return sum(isinstance(e, obp.Message) for c in chunks for e in p.feed(c))

    for size in (4096, 64):
        ch = _chunks(stream, size)
        a, b = _rate(ours_obp, ch, n), _rate(naive_obp_parse, ch, n)
        print(f"   OBP 2112-byte spectrum frames ({len(stream) / 1e6:.1f} MB), {size:4d} B chunks: "
              f"ramanid {a:8.1f}   naive {b:8.1f}   ratio {a / b:5.2f}x")

    frames = [w.encode(rng.integers(0, 255), rng.integers(0, 256, rng.integers(0, 64))
                       .astype(np.uint8).tobytes()) for _ in range(200)]
    n = 40_000
    stream = b"".join(frames[i % 200] for i in range(n))

    def ours_w(chunks: list[bytes]) -> int:
        p = w.StreamParser()
        return sum(isinstance(e, w.Frame) for c in chunks for e in p.feed(c))

    for size in (4096, 64):
        ch = _chunks(stream, size)
        a, b = _rate(ours_w, ch, n), _rate(naive_wasatch_parse, ch, n)
        print(f"   Wasatch frames, mean {len(stream) / n:.0f} B ({len(stream) / 1e6:.1f} MB), "
              f"{size:4d} B chunks:    ramanid {a:8.1f}   naive {b:8.1f}   ratio {a / b:5.2f}x")


def main() -> None:
    """Run both benchmarks."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    bench_acquisition(args.repeats)
    bench_parsers()


if __name__ == "__main__":
    main()
