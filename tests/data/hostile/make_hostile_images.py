#!/usr/bin/env python3
"""Writes the hostile images of tests/data/hostile/ (run from anywhere; standard library only).

Every PNG is well-formed (correct CRCs, correct zlib stream) except for the one flaw its name
describes. The JPEGs are 8x8, 3 components, built segment by segment below with one-code
Huffman tables, so every block is "DC difference 0, end of block": a decoder that gets all
components gives mid-grey (128, 128, 128). tests/test_image.cpp states the pixels each file
must decode to, worked out by hand from the values below, not from glimpse's output.
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


def jpeg(progressive, scans):
    """scans: list of (component ids, entropy bytes). Frame: 8x8, components 1, 2, 3 at 1x1."""
    def seg(marker, body):
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body
    out = b"\xff\xd8"
    out += seg(0xDB, b"\x00" + b"\x01" * 64)  # quantization table 0: all ones
    out += seg(0xC2 if progressive else 0xC0, struct.pack(">BHHB", 8, 8, 8, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00")
    one_code = bytes([1] + [0] * 15)  # a single code, '0', of length 1
    out += seg(0xC4, b"\x00" + one_code + b"\x00")  # DC table 0: '0' -> category 0 (difference 0)
    out += seg(0xC4, b"\x10" + one_code + b"\x00")  # AC table 0: '0' -> end of block
    for ids, entropy in scans:
        spectral = b"\x00\x00\x00" if progressive else b"\x00\x3f\x00"  # DC-only first scan / whole block
        out += seg(0xDA, bytes([len(ids)]) + b"".join(bytes([i, 0x00]) for i in ids) + spectral) + entropy
    return out + b"\xff\xd9"


def hdr(width, height, body):
    """Radiance HDR: the header stb requires, then `body` (pixel data) as given."""
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (height, width) + body


def hdr_rle_row(channels):
    """One RLE scanline of width 8: per channel a (kind, value) run: 'run' = one run of 8
    equal bytes, 'dump' = 8 literal bytes."""
    out = bytes([2, 2, 0, 8])
    for kind, value in channels:
        out += bytes([128 + 8, value]) if kind == "run" else bytes([8] + [value] * 8)
    return out


# RGBE (128, 128, 128, 129) is 128 * 2^(129-136) = 1.0 in each channel: stb's HDR-to-8-bit
# conversion (gamma 1/2.2, x255, +0.5) gives 255. RGBE (0, 0, 0, 0) is 0.0: gives 0.
ONE = [("dump", 128), ("run", 128), ("run", 128), ("run", 129)]
ZERO = [("run", 0)] * 4
HDR_VALID = hdr(8, 2, hdr_rle_row(ONE) + hdr_rle_row(ZERO))

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
    # Baseline, one interleaved scan: per block '0' (DC) '0' (EOB), 6 bits + 1-padding = 0x03.
    "jpeg_all_components.jpg": jpeg(False, [([1, 2, 3], b"\x03")]),
    # Baseline, a scan for component 1 only ('00' + padding = 0x3F): components 2 and 3 are
    # never coded; stb leaves their planes as uninitialised heap memory.
    "jpeg_missing_components.jpg": jpeg(False, [([1], b"\x3f")]),
    # Progressive, DC first scan of all three ('000' + padding = 0x1F), no AC scans: mid-grey.
    "jpeg_progressive_dc.jpg": jpeg(True, [([1, 2, 3], b"\x1f")]),
    # Progressive, DC first scan of component 1 only: the others' coefficients are never set.
    "jpeg_progressive_missing.jpg": jpeg(True, [([1], b"\x7f")]),
    # Radiance HDR, 8x2 RLE: row 0 white (1.0 -> 255), row 1 black.
    "hdr_valid.hdr": HDR_VALID,
    # The second scanline's first run count is 0: stb 2.27 loops forever on it.
    "hdr_zero_run.hdr": hdr(8, 2, hdr_rle_row(ONE) + bytes([2, 2, 0, 8, 0]) + bytes(20)),
    # Cut inside the second scanline: stb reads zeros past the end, i.e. runs of length 0.
    "hdr_truncated.hdr": HDR_VALID[:len(HDR_VALID) - 5],
    # 4x2 flat (width < 8 is never RLE) with 5 of the 8 pixels: stb converts 3 uninitialised ones.
    "hdr_flat_truncated.hdr": hdr(4, 2, bytes([128, 128, 128, 129]) * 5),
    # Binary PPM, 2x1: (10,20,30) (40,50,60); a comment in the header, as stb allows.
    "ppm_valid.ppm": b"P6\n# hostile test\n2 1\n255\n" + bytes([10, 20, 30, 40, 50, 60]),
    # 2x2 with 7 of its 12 sample bytes: stb 2.27 returns the other 5 unwritten.
    "ppm_truncated.ppm": b"P6 2 2 255\n" + bytes([1, 2, 3, 4, 5, 6, 7]),
}

if __name__ == "__main__":
    for name, data in FILES.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print(name, len(data), "bytes")
