"""CRC-8/Maxim (Dallas 1-Wire) as used by the Wasatch OEM serial protocol.

Polynomial x^8 + x^5 + x^4 + 1, reflected (0x8C), initial value 0, no final XOR; the check value
of ``b"123456789"`` is ``0xA1``. The table starts 0, 94, 188, 226, 97, 63, 221, 131, the same as
Wasatch's CRC.cs and crcmod's ``crc-8-maxim`` (fact recorded in shared/docs/protocols.md §2.2).
"""

from __future__ import annotations


def _make_table() -> bytes:
    table = bytearray(256)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
        table[i] = crc
    return bytes(table)


CRC8_MAXIM_TABLE = _make_table()


def crc8_maxim(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Return the CRC-8/Maxim of ``data``.

    Parameters
    ----------
    data
        Bytes to checksum.
    crc
        Running value to continue from (0 to start).

    Returns
    -------
    int
        The CRC, 0..255.
    """
    table = CRC8_MAXIM_TABLE
    for b in bytes(data):
        crc = table[crc ^ b]
    return crc
