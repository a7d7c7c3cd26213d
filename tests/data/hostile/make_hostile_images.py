#!/usr/bin/env python3
"""Writes the hostile PNGs of tests/data/hostile/ (run from anywhere; standard library only).

Every file is a well-formed PNG (correct CRCs, correct zlib stream) except for the one flaw
its name describes. tests/test_image.cpp states the pixels each one must decode to, worked out
by hand from the palettes and indices below, not from glimpse's output.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png(width, height, depth, colour, rows, plte=None, trns=None, idat=None):
    """rows: list of lists of samples (palette indices here), packed at `depth` bits, filter 0."""
    raw = b""
    for row in rows:
        bits = "".join(format(v, "0%db" % depth) for v in row)
        bits += "0" * (-len(bits) % 8)
        raw += b"\x00" + bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    if plte is not None:
        out += chunk(b"PLTE", b"".join(bytes(c) for c in plte))
    if trns is not None:
        out += chunk(b"tRNS", bytes(trns))
    out += chunk(b"IDAT", zlib.compress(raw, 9) if idat is None else idat(raw))
    return out + chunk(b"IEND", b"")


RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)

FILES = {
    # The reproducer of issue 21: two palette entries, pixels using entry 200 (and 255).
    "palette_index200.png": png(4, 2, 8, 3, [[0, 1, 200, 1], [200, 0, 1, 255]], plte=[RED, BLUE]),
    # 4-bit palette with 3 entries; indices 3 and 15 are out of range; odd width (half-used byte).
    "palette4_short.png": png(5, 1, 4, 3, [[0, 1, 2, 3, 15]], plte=[RED, GREEN, BLUE]),
    # 1-bit palette with a single entry, index 1 out of range.
    "palette1_one_entry.png": png(3, 2, 1, 3, [[0, 1, 0], [1, 1, 0]], plte=[WHITE]),
    # With tRNS: stb takes its 4-channel palette path; alpha is dropped as for every image.
    "palette_trns_index200.png": png(3, 1, 8, 3, [[0, 200, 1]], plte=[RED, BLUE], trns=[0]),
    # The zlib stream stops halfway through the pixel rows (IDAT and IEND chunks are intact).
    "truncated_idat.png": png(8, 8, 8, 3, [[i % 2 for i in range(8)]] * 8, plte=[RED, BLUE],
                              idat=lambda raw: zlib.compress(raw, 0)[:40]),
    # A complete zlib stream that holds only 4 of the 8 rows.
    "short_idat.png": png(8, 8, 8, 3, [[1] * 8] * 8, plte=[RED, BLUE],
                          idat=lambda raw: zlib.compress(raw[:len(raw) // 2], 9)),
}

if __name__ == "__main__":
    for name, data in FILES.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print(name, len(data), "bytes")
