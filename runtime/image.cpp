#include "runtime/image.h"

#include "runtime/mapped_file.h"

// Debian's libstb-dev ships the stb implementations compiled into libstb; these are declarations only.
#include <stb_image.h>
#include <stb_image_write.h>

// libjpeg-turbo (Debian's libjpeg62-turbo-dev): only checks a JPEG's entropy-coded data before
// stb decodes it (see jpeg_entropy_data_problem). jpeglib.h needs <cstdio> first.
#include <cstdio>
#include <jerror.h>
#include <jpeglib.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

namespace glimpse {

namespace {

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

struct StbiFree {
    void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

// Bounds-checked little/big-endian reads inside the TIFF block of an Exif segment.
struct TiffReader {
    const uint8_t* base;
    size_t size;
    bool big_endian;

    bool u16(size_t off, uint32_t* out) const {
        if (off > size || size - off < 2) return false;
        const uint8_t* p = base + off;
        *out = big_endian ? (uint32_t{p[0]} << 8 | p[1]) : (uint32_t{p[1]} << 8 | p[0]);
        return true;
    }
    bool u32(size_t off, uint32_t* out) const {
        if (off > size || size - off < 4) return false;
        const uint8_t* p = base + off;
        *out = big_endian ? (uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3])
                          : (uint32_t{p[3]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[1]} << 8 | p[0]);
        return true;
    }
};

// Orientation from the TIFF structure inside an Exif APP1 payload (after "Exif\0\0"); 0 if absent.
int tiff_ifd0_orientation(const uint8_t* tiff, size_t size) {
    if (size < 8) return 0;
    TiffReader r{tiff, size, false};
    if (tiff[0] == 'I' && tiff[1] == 'I') {
        r.big_endian = false;
    } else if (tiff[0] == 'M' && tiff[1] == 'M') {
        r.big_endian = true;
    } else {
        return 0;
    }
    uint32_t magic = 0, ifd0 = 0, n_entries = 0;
    if (!r.u16(2, &magic) || magic != 42) return 0;
    if (!r.u32(4, &ifd0)) return 0;
    if (!r.u16(ifd0, &n_entries)) return 0;
    constexpr uint32_t kTagOrientation = 0x0112;
    constexpr uint32_t kTypeShort = 3, kTypeLong = 4;
    for (uint32_t i = 0; i < n_entries; ++i) {
        const size_t entry = size_t{ifd0} + 2 + size_t{i} * 12;
        uint32_t tag = 0, type = 0, count = 0, value = 0;
        if (!r.u16(entry, &tag) || !r.u16(entry + 2, &type) || !r.u32(entry + 4, &count)) return 0;
        if (tag != kTagOrientation) continue;
        if (count < 1) return 0;
        // A single SHORT or LONG value is stored inline in the 4-byte value field.
        if (type == kTypeShort) {
            if (!r.u16(entry + 8, &value)) return 0;
        } else if (type == kTypeLong) {
            if (!r.u32(entry + 8, &value)) return 0;
        } else {
            return 0;
        }
        return (value >= 1 && value <= 8) ? static_cast<int>(value) : 0;
    }
    return 0;
}

}  // namespace

namespace {

// Where a JPEG's SOI marker ends: stb (stbi__jpeg_test -> stbi__get_marker) takes any file whose
// first byte is FF, followed by any number of FF fill bytes and then D8, for a JPEG, and the JPEG
// standard allows fill bytes before every marker (T.81 B.1.1.2). So `FF FF D8` is a JPEG to stb,
// and every check made for stb's sake must start where stb does. Returns 0 when not a JPEG.
size_t jpeg_soi_end(const uint8_t* data, size_t size) {
    if (data == nullptr || size < 2 || data[0] != 0xFF) return 0;
    size_t pos = 1;
    while (pos < size && data[pos] == 0xFF) ++pos;
    return pos < size && data[pos] == 0xD8 ? pos + 1 : 0;
}

// Calls visit(marker, payload, payload_size) for each marker segment of a JPEG up to the first
// scan, stopping early when visit returns true. Every length is checked against `size`.
template <class Visit>
void walk_jpeg_header_segments(const uint8_t* data, size_t size, Visit&& visit) {
    size_t pos = jpeg_soi_end(data, size);
    if (pos == 0 || size < 4) return;
    while (pos < size) {
        if (data[pos] != 0xFF) return;
        while (pos < size && data[pos] == 0xFF) ++pos;  // fill bytes
        if (pos >= size) return;
        const uint8_t marker = data[pos++];
        if (marker == 0xD9 || marker == 0xDA) return;                        // EOI, SOS: headers end
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
        if (size - pos < 2) return;
        const size_t length = size_t{data[pos]} << 8 | data[pos + 1];  // includes its own 2 bytes
        if (length < 2 || length > size - pos) return;
        if (visit(marker, data + pos + 2, length - 2)) return;
        pos += length;
    }
}

// Dimensions a PNG or JPEG header claims, read without stb (stb's info call can fail on
// oversized headers with an unrelated reason). False when not found.
bool sniff_claimed_size(const uint8_t* data, size_t size, int64_t* width, int64_t* height) {
    static constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (size >= 24 && std::memcmp(data, kPngSignature, 8) == 0 && std::memcmp(data + 12, "IHDR", 4) == 0) {
        auto be32 = [&](size_t off) {
            return int64_t{data[off]} << 24 | int64_t{data[off + 1]} << 16 | int64_t{data[off + 2]} << 8 |
                   int64_t{data[off + 3]};
        };
        *width = be32(16);
        *height = be32(20);
        return true;
    }
    bool found = false;
    walk_jpeg_header_segments(data, size, [&](uint8_t marker, const uint8_t* p, size_t n) {
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
        const bool is_sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (!is_sof || n < 5) return false;
        *height = int64_t{p[1]} << 8 | p[2];
        *width = int64_t{p[3]} << 8 | p[4];
        found = true;
        return true;
    });
    return found;
}

// Debian's stb_image is v2.27. Two classes of corrupt JPEG make that version misbehave before
// any later check can stop it (v2.28 fixed both; Debian has not picked the fix up):
//   - a DHT table declaring more than 256 codes: stb writes the code sizes and symbol values
//     past the end of its fixed tables (memory corruption inside its decoder state);
//   - a scan using a Huffman or quantization table that was never defined: stb's decoder
//     state is not zero-initialized, so it decodes with uninitialized memory (valgrind flags it;
//     the pixels are nondeterministic);
//   - a frame component that no scan codes (no DC first scan, in a progressive file): stb
//     mallocs each component's samples (coefficients, if progressive) without clearing them
//     and converts whatever the heap held (also in 2.28+).
// This pass follows the marker structure the way stb reads it and rejects exactly those files.
// Every valid JPEG passes (the JPEG standard forbids all three). Problems stb reports by itself
// (bad lengths, unknown markers, truncation) are left to stb. Returns "" or the reason.
std::string jpeg_unsafe_for_stb(const uint8_t* data, size_t size) {
    const size_t soi_end = jpeg_soi_end(data, size);
    if (soi_end == 0 || size < 4) return "";
    auto byte_at = [&](size_t off) -> uint32_t { return off < size ? data[off] : 0; };  // stb reads 0 past EOF
    bool dc_defined[4] = {}, ac_defined[4] = {}, dq_defined[4] = {};
    int comp_id[4] = {}, comp_tq[4] = {}, n_comp = 0;
    bool coded[4] = {};  // a scan sets every coefficient of the component (see the EOI check)
    bool progressive = false;
    size_t pos = soi_end;
    while (pos < size) {
        // stb skips stray bytes between segments while it looks for the frame header; follow it.
        if (data[pos] != 0xFF) {
            ++pos;
            continue;
        }
        while (pos < size && data[pos] == 0xFF) ++pos;
        if (pos >= size) return "";
        const uint8_t marker = data[pos++];
        if (marker == 0xD9) {  // EOI: stb decodes only now, whatever the scans covered
            for (int i = 0; i < n_comp; ++i) {
                if (!coded[i]) {
                    return str_printf("component %d (id %d) is not coded by any %s", i + 1, comp_id[i],
                                      progressive ? "DC first scan" : "scan");
                }
            }
            return "";
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
        const size_t length = byte_at(pos) << 8 | byte_at(pos + 1);
        const size_t seg = pos + 2, seg_end = pos + length;
        // A DHT is checked even when truncated: stb reads it anyway (zeros past the end).
        if (marker != 0xC4 && (length < 2 || length > size - pos)) return "";
        if (marker == 0xC4) {  // DHT: stb reads table after table from the stream while bytes remain
            long remaining = static_cast<long>(length) - 2;
            size_t p = seg;
            while (remaining > 0) {
                const uint32_t q = byte_at(p), tc = q >> 4, th = q & 15;
                if (tc > 1 || th > 3) return "";  // stb rejects it
                uint32_t n_codes = 0;
                for (size_t i = 1; i <= 16; ++i) n_codes += byte_at(p + i);
                if (n_codes > 256) return str_printf("Huffman table with %u codes (at most 256)", n_codes);
                (tc == 0 ? dc_defined : ac_defined)[th] = true;
                remaining -= 17 + static_cast<long>(n_codes);
                p += 17 + n_codes;
            }
            if (remaining != 0 || length > size - pos) return "";  // stb rejects the segment
        } else if (marker == 0xDB) {  // DQT
            size_t p = seg;
            while (p < seg_end) {
                const uint32_t q = data[p], precision = q >> 4, t = q & 15;
                if (precision > 1 || t > 3) return "";
                dq_defined[t] = true;
                p += precision ? 129 : 65;
            }
        } else if (marker == 0xC0 || marker == 0xC1 || marker == 0xC2) {  // the frames stb decodes
            if (length < 8) return "";
            const int n = data[seg + 5];
            if (n < 1 || n > 4 || length != 8 + 3 * static_cast<size_t>(n)) return "";
            n_comp = n;
            for (int i = 0; i < n; ++i) {
                coded[i] = false;
                comp_id[i] = data[seg + 6 + 3 * i];
                comp_tq[i] = data[seg + 8 + 3 * i];
                if (comp_tq[i] > 3) return "";
            }
            progressive = marker == 0xC2;
        } else if (marker == 0xDA) {  // SOS
            const int n = length >= 3 ? data[seg] : 0;
            if (n < 1 || n > 4 || length != 6 + 2 * static_cast<size_t>(n) || n_comp == 0) return "";
            const uint32_t spec_start = data[seg + 1 + 2 * n], approx_high = data[seg + 3 + 2 * n] >> 4;
            for (int i = 0; i < n; ++i) {
                const int id = data[seg + 1 + 2 * i];
                const uint32_t dc = data[seg + 2 + 2 * i] >> 4, ac = data[seg + 2 + 2 * i] & 15;
                if (dc > 3 || ac > 3) return "";
                int which = 0;
                while (which < n_comp && comp_id[which] != id) ++which;
                if (which == n_comp) return "";
                if (!dq_defined[comp_tq[which]]) {
                    return str_printf("scan uses quantization table %d, which is not defined", comp_tq[which]);
                }
                // Which tables the scan decodes with: baseline both; progressive DC first pass the
                // DC table, DC refinement none, AC passes the AC table.
                const bool needs_dc = progressive ? (spec_start == 0 && approx_high == 0) : true;
                // Baseline scans write every sample of their components; in a progressive file
                // the DC first scan is what clears a component's coefficients.
                if (needs_dc) coded[which] = true;
                const bool needs_ac = progressive ? spec_start != 0 : true;
                if (needs_dc && !dc_defined[dc]) {
                    return str_printf("scan uses Huffman DC table %u, which is not defined", dc);
                }
                if (needs_ac && !ac_defined[ac]) {
                    return str_printf("scan uses Huffman AC table %u, which is not defined", ac);
                }
            }
            // Skip the entropy-coded data: up to the next marker that is not a stuffed 0xFF00
            // or a restart marker.
            size_t p = seg_end;
            while (p + 1 < size) {
                if (data[p] == 0xFF && data[p + 1] != 0x00 && data[p + 1] != 0xFF &&
                    !(data[p + 1] >= 0xD0 && data[p + 1] <= 0xD7)) {
                    break;
                }
                ++p;
            }
            if (p + 1 >= size) return "";
            pos = p;
            continue;
        }
        pos = seg_end;
    }
    return "";
}

uint32_t crc32_png(const uint8_t* p, size_t n) {
    // The CRC of the PNG specification (ISO 3309 polynomial, reflected), bit by bit: it runs
    // only over the rare palette chunks rewritten below.
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

// stb 2.27 expands a palette PNG through `stbi_uc palette[1024]` on its stack, filling only the
// entries PLTE defines; a pixel index past them (legal to store, invalid per the PNG spec: a
// 2-entry palette with pixels of index 200) copies uninitialised stack bytes into the image.
// Checking the indices would need the inflated, unfiltered pixel data; instead, when a palette
// image's PLTE has fewer than 256 entries, this returns a copy of the file whose PLTE chunks
// are padded to 256 entries with black, so every index stb can meet reads a defined entry.
// Black is what libpng (which pads its palette the same way) and so most viewers show for
// such pixels. Valid files decode exactly as before: their indices never reach the padding.
// Returns an empty vector when no change is needed. Chunks are only followed while they are
// complete; a truncated file is left as is (stb then fails on it before expanding the palette).
// A second PLTE chunk (forbidden by the PNG spec; libpng refuses it too) sets *error: padding
// each of many tiny PLTE chunks would let a small file grow 65-fold.
std::vector<uint8_t> png_with_full_palette(const uint8_t* data, size_t size, std::string* error) {
    static constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (size < 8 || std::memcmp(data, kPngSignature, 8) != 0) return {};
    auto be32 = [&](size_t off) {
        return uint32_t{data[off]} << 24 | uint32_t{data[off + 1]} << 16 | uint32_t{data[off + 2]} << 8 |
               uint32_t{data[off + 3]};
    };
    bool palette_image = false;
    uint32_t entries = 0;
    int n_plte = 0;
    std::vector<size_t> short_plte;  // offsets of PLTE chunks to pad
    for (size_t pos = 8; size - pos >= 12;) {
        const uint32_t length = be32(pos);
        if (length > size - pos - 12) break;
        const uint8_t* type = data + pos + 4;
        if (std::memcmp(type, "IHDR", 4) == 0 && length == 13) {
            palette_image = data[pos + 8 + 9] == 3;
        } else if (std::memcmp(type, "PLTE", 4) == 0) {
            if (length > 768 || length % 3 != 0) return {};  // stb rejects it
            if (n_plte++ > 0) {
                *error = "more than one PLTE chunk";
                return {};
            }
            entries = length / 3;
            if (entries < 256) short_plte.push_back(pos);
        } else if (std::memcmp(type, "tRNS", 4) == 0) {
            // stb rejects a tRNS longer than the palette; padding must not make it acceptable.
            if (palette_image && length > entries) return {};
        } else if (std::memcmp(type, "IEND", 4) == 0) {
            break;
        }
        pos += size_t{length} + 12;
    }
    if (!palette_image || short_plte.empty()) return {};
    std::vector<uint8_t> out;
    out.reserve(size + short_plte.size() * 768);
    size_t copied = 0;
    for (size_t pos : short_plte) {
        const uint32_t length = be32(pos);
        out.insert(out.end(), data + copied, data + pos);
        const uint8_t header[8] = {0, 0, 0x03, 0x00, 'P', 'L', 'T', 'E'};  // length 768
        const size_t body = out.size() + 4;
        out.insert(out.end(), header, header + 8);
        out.insert(out.end(), data + pos + 8, data + pos + 8 + length);
        out.insert(out.end(), 768 - length, uint8_t{0});
        const uint32_t crc = crc32_png(out.data() + body, 4 + 768);
        for (int k = 3; k >= 0; --k) out.push_back(static_cast<uint8_t>(crc >> (8 * k)));
        copied = pos + 12 + length;
    }
    out.insert(out.end(), data + copied, data + size);
    return out;
}

// Radiance HDR (.hdr), which stb also decodes. Two defects of stb 2.27 on corrupt files:
//   - an RLE scanline holding a run count of 0 (or truncated: stb reads 0 past the end)
//     never advances, so stb loops forever;
//   - flat (non-RLE) pixel data cut short leaves the 4-byte pixel buffer of every missing
//     pixel uninitialised and converts it.
// This follows stb's reading exactly (header lines, then per scanline either the 2,2,len
// RLE header and 4 channels of runs, or stb's fall-back to flat pixels) and returns the
// reason when stb would hang or read past the end, "" otherwise (including when it is not an
// HDR or stb rejects the header by itself).
std::string hdr_unsafe_for_stb(const uint8_t* data, size_t size) {
    size_t pos = 0;
    auto line = [&]() {  // one header token, as stbi__hdr_gettoken: up to '\n' or the end
        std::string text;
        while (pos < size && data[pos] != '\n') text.push_back(static_cast<char>(data[pos++]));
        if (pos < size) ++pos;
        return text.substr(0, 1023);
    };
    const std::string magic = line();
    if (magic != "#?RADIANCE" && magic != "#?RGBE") return "";
    bool valid = false;
    for (;;) {
        const std::string token = line();
        if (token.empty()) break;
        if (token == "FORMAT=32-bit_rle_rgbe") valid = true;
    }
    if (!valid) return "";
    const std::string res = line();
    int height = 0, width = 0;
    char y_sign = 0, x_sign = 0;
    if (std::sscanf(res.c_str(), "%cY %d %cX %d", &y_sign, &height, &x_sign, &width) != 4 || y_sign != '-' ||
        x_sign != '+' || width <= 0 || height <= 0) {
        return "";  // stb rejects the layout, or the size checks do
    }
    const auto pixels = static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
    auto flat_needs = [&](uint64_t n_pixels) -> std::string {
        if (size - pos >= n_pixels * 4) return "";
        return str_printf("pixel data ends after %zu of %llu bytes", size - pos,
                          static_cast<unsigned long long>(n_pixels * 4));
    };
    if (width < 8 || width >= 32768) return flat_needs(pixels);
    for (int j = 0; j < height; ++j) {
        if (size - pos < 4) return str_printf("scanline %d is missing (file ends at byte %zu)", j, size);
        const uint8_t c1 = data[pos], c2 = data[pos + 1], len_hi = data[pos + 2];
        if (c1 != 2 || c2 != 2 || (len_hi & 0x80)) {
            pos += 4;  // stb decodes these 4 bytes as pixel 0, then reads the whole image flat
            return flat_needs(pixels - 1);
        }
        if ((uint32_t{len_hi} << 8 | data[pos + 3]) != static_cast<uint32_t>(width)) return "";  // stb rejects
        pos += 4;
        for (int k = 0; k < 4; ++k) {
            for (int i = 0; i < width;) {
                if (pos >= size) return str_printf("scanline %d ends early (file ends at byte %zu)", j, size);
                uint32_t count = data[pos++];
                if (count > 128) {
                    count -= 128;
                    if (pos >= size) return str_printf("scanline %d ends early (file ends at byte %zu)", j, size);
                    ++pos;
                } else {
                    if (count == 0) return str_printf("scanline %d holds a run of length 0", j);
                    if (count <= static_cast<uint32_t>(width - i) && size - pos < count) {
                        return str_printf("scanline %d ends early (file ends at byte %zu)", j, size);
                    }
                    pos += count;
                }
                if (count > static_cast<uint32_t>(width - i)) return "";  // stb rejects the run
                i += static_cast<int>(count);
            }
        }
    }
    return "";
}

// Binary PGM/PPM (P5/P6): stb 2.27 ignores the result of reading the pixel data, so a file
// cut short returns its malloc'd pixel buffer with the missing part never written (valgrind
// flags it). This reads the header as stbi__pnm_info does (whitespace, '#' comments, the
// character after the maximum value is the last header byte) and returns a reason when fewer
// bytes follow than width * height * channels * (1 or 2) bytes per sample; "" otherwise.
std::string pnm_unsafe_for_stb(const uint8_t* data, size_t size) {
    if (size < 2 || data[0] != 'P' || (data[1] != '5' && data[1] != '6')) return "";
    const int64_t channels = data[1] == '6' ? 3 : 1;
    size_t pos = 2;
    auto at_eof = [&] { return pos >= size; };
    auto get8 = [&]() -> char { return pos < size ? static_cast<char>(data[pos++]) : 0; };
    auto is_space = [](char ch) {
        return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
    };
    char c = get8();
    auto skip_whitespace = [&] {
        for (;;) {
            while (!at_eof() && is_space(c)) c = get8();
            if (at_eof() || c != '#') break;
            while (!at_eof() && c != '\n' && c != '\r') c = get8();
        }
    };
    auto get_integer = [&] {
        int64_t value = 0;
        while (!at_eof() && c >= '0' && c <= '9') {
            value = std::min<int64_t>(value * 10 + (c - '0'), int64_t{1} << 40);
            c = get8();
        }
        return value;
    };
    skip_whitespace();
    const int64_t width = get_integer();
    skip_whitespace();
    const int64_t height = get_integer();
    skip_whitespace();
    const int64_t max_value = get_integer();
    // stb parses each header number into an int with `value * 10 + digit` and no bound: more
    // digits than an int holds is a signed overflow inside stb (UB; fuzz_image found
    // "P5555...": tests/data/regressions/image/pnm_header_int_overflow.pgm).
    if (width > INT_MAX || height > INT_MAX || max_value > INT_MAX) {
        return str_printf("a header number is above %d (width, height or maximum sample value)", INT_MAX);
    }
    if (width <= 0 || height <= 0 || width > (int64_t{1} << 24) || height > (int64_t{1} << 24) || max_value > 65535) {
        return "";  // stb or the size checks reject it
    }
    // A maximum above 255 means 2 bytes per sample. stb 2.27 then reports 16 bits per channel
    // but converts P5's grey to RGB with its 8-bit routine, into a buffer of 1 byte per sample,
    // and its 16-to-8 reduction reads that buffer as 2 bytes per sample: a heap over-read
    // (tests/data/regressions/image/pnm_maxval_677_heap_overread.pgm). glimpse decodes to 8
    // bits anyway; 16-bit PGM/PPM files are refused (P6 alone would decode, but one rule is
    // clearer than a format-dependent one and such files are rare outside scientific tools).
    if (max_value > 255) {
        return str_printf("maximum sample value %lld needs 16-bit samples, which are not supported (at most 255)",
                          static_cast<long long>(max_value));
    }
    const uint64_t needed = static_cast<uint64_t>(width * height * channels);
    if (size - pos >= needed) return "";
    return str_printf("pixel data ends after %zu of %llu bytes", size - pos, static_cast<unsigned long long>(needed));
}

// PNG chunk list, as stb 2.27 reads it (stbi__parse_png_file), for two of its defects:
//   - stb grows its IDAT buffer to hold `offset + chunk length` (to the next power of two)
//     before it checks that the chunk's bytes exist, so a 153-byte file whose IDAT header
//     claims 1-2 GB makes it realloc 2 GiB (an OOM kill on a small device);
//   - a zero-length IDAT before any data computes `NULL + 0` (UB; stb_image.h:5130).
// Returns the reason for a chunk whose data runs past the end of the file (stb would fail
// on it later, "outofdata", after the allocation) or an empty IDAT before the first non-empty
// one (legal in PNG but never written by an encoder with data to write); "" otherwise,
// including for files that are not PNGs. Stops at IEND like stb; a CRC cut off is left to stb.
std::string png_unsafe_for_stb(const uint8_t* data, size_t size) {
    static constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (size < 8 || std::memcmp(data, kPngSignature, 8) != 0) return "";
    bool idat_data_seen = false;
    for (size_t pos = 8; size - pos >= 8;) {  // a chunk: length (4), type (4), data, CRC (4)
        const uint32_t length = uint32_t{data[pos]} << 24 | uint32_t{data[pos + 1]} << 16 |
                                uint32_t{data[pos + 2]} << 8 | uint32_t{data[pos + 3]};
        char type[5] = {};
        for (int k = 0; k < 4; ++k) {
            const uint8_t ch = data[pos + 4 + k];
            type[k] = (ch >= 0x20 && ch < 0x7F) ? static_cast<char>(ch) : '?';
        }
        if (length > size - pos - 8) {
            return str_printf("chunk '%s' at byte %zu declares %u bytes of data, but only %zu remain in the file",
                              type, pos, length, size - pos - 8);
        }
        if (std::memcmp(type, "IDAT", 4) == 0) {
            if (length == 0 && !idat_data_seen) return str_printf("empty IDAT chunk at byte %zu before any image data", pos);
            idat_data_seen = true;
        } else if (std::memcmp(type, "IEND", 4) == 0) {
            break;
        }
        pos += 8 + size_t{length};
        if (size - pos < 4) break;  // the CRC is missing: stb reads it as 0 and decides
        pos += 4;
    }
    return "";
}

// stb 2.27's JPEG entropy decoder has undefined behaviour on corrupt Huffman data: when a code
// matches no table entry, or a marker interrupts the data of an MCU, its bit count goes
// negative and the next refill shifts by 32 or more (stb_image.h:2065, UBSan "shift exponent
// 32"; tests/data/regressions/image/jpeg_huffman_shift_exponent_32.jpg). That depends on the
// entropy-coded data, so no header check can find it. libjpeg-turbo (hardened and fuzzed
// continuously by OSS-Fuzz) decodes the same data first, at 1/8 scale (only the DC
// coefficients are transformed, but every Huffman code of every block is parsed, and the
// output is one small row), and a file is refused when it reports corrupt entropy data:
// a bad Huffman code, a premature marker or end of file, a wrong restart marker or invalid
// progression. stb then decodes the pixels, so valid files give exactly llama.cpp's bitmap
// (libjpeg-turbo's own pixels differ by up to 3 levels: another IDCT rounding and upsampler).
// Benign warnings (extraneous bytes before a marker, an unknown JFIF revision, a bad ICC
// segment) are accepted, as stb accepts those files. Returns "" or the reason.
struct JpegCheckErrors {
    jpeg_error_mgr mgr;  // first member: libjpeg hands back &mgr as cinfo->err
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    bool corrupt;  // a corruption warning was recorded in message
};

// More scans than this in one file is refused: each scan of a progressive JPEG revisits the whole
// coefficient array, so a small file of thousands of tiny scans costs quadratic time (in stb as in
// libjpeg-turbo). Real encoders write at most a few dozen; 500 is libjpeg-turbo's own suggested
// limit (djpeg -maxscan, TJPARAM_SCANLIMIT).
constexpr int kJpegMaxScans = 500;

void jpeg_check_error_exit(j_common_ptr cinfo) {
    // libjpeg's default error_exit calls exit(); this returns to jpeg_entropy_data_problem instead.
    auto* errors = reinterpret_cast<JpegCheckErrors*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, errors->message);
    std::longjmp(errors->jump, 1);
}

void jpeg_check_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level >= 0) return;  // trace output: ignored, never printed
    auto* errors = reinterpret_cast<JpegCheckErrors*>(cinfo->err);
    ++errors->mgr.num_warnings;
    switch (errors->mgr.msg_code) {
        case JWRN_HUFF_BAD_CODE:
        case JWRN_HIT_MARKER:
        case JWRN_JPEG_EOF:
        case JWRN_MUST_RESYNC:
        case JWRN_NOT_SEQUENTIAL:
        case JWRN_BOGUS_PROGRESSION:
            if (!errors->corrupt) (*cinfo->err->format_message)(cinfo, errors->message);
            errors->corrupt = true;
            break;
        default:
            break;
    }
}

void jpeg_check_progress(j_common_ptr cinfo) {
    auto* dinfo = reinterpret_cast<j_decompress_ptr>(cinfo);
    if (dinfo->input_scan_number <= kJpegMaxScans) return;
    auto* errors = reinterpret_cast<JpegCheckErrors*>(cinfo->err);
    std::snprintf(errors->message, sizeof errors->message, "more than %d scans", kJpegMaxScans);
    std::longjmp(errors->jump, 1);
}

struct JpegCheck {
    jpeg_decompress_struct cinfo;
    JpegCheckErrors errors;
    jpeg_progress_mgr progress;
};

// The libjpeg calls, with the setjmp that error_exit returns to (false then). Only trivially
// destructible objects live in this frame (C++ allows a longjmp that skips no destructor), and
// the libjpeg state is the caller's, not local to this function, so it is well-defined after
// the longjmp. The caller destroys check->cinfo on both paths (safe also if creating it failed).
bool run_jpeg_check(JpegCheck* check, const uint8_t* start, size_t length) {
    if (setjmp(check->errors.jump) != 0) return false;
    jpeg_decompress_struct& cinfo = check->cinfo;
    jpeg_create_decompress(&cinfo);  // keeps cinfo.err; can fail (out of memory) only through error_exit
    cinfo.progress = &check->progress;
    jpeg_mem_src(&cinfo, start, static_cast<unsigned long>(length));
    jpeg_read_header(&cinfo, TRUE);
    // 1/8 scale: an 8x8 block becomes one pixel from its DC coefficient; every block's Huffman
    // codes are still decoded in full. Only the warnings are wanted, not the pixels.
    cinfo.scale_num = 1;
    cinfo.scale_denom = 8;
    cinfo.dct_method = JDCT_IFAST;
    cinfo.do_fancy_upsampling = FALSE;
    jpeg_start_decompress(&cinfo);  // a multi-scan file is read whole here
    const size_t row_bytes = size_t{cinfo.output_width} * static_cast<size_t>(cinfo.output_components);
    JSAMPARRAY row = (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo), JPOOL_IMAGE,
                                                static_cast<JDIMENSION>(row_bytes), 1);
    while (cinfo.output_scanline < cinfo.output_height && !check->errors.corrupt) jpeg_read_scanlines(&cinfo, row, 1);
    // Then the markers up to EOI. stb decodes every scan it meets before EOI, so a second scan
    // after a single-scan (baseline, all components) frame reaches stb's entropy decoder too,
    // where a short one drives its bit count negative (fuzz_image, CI of 2026-12-07:
    // tests/data/regressions/image/jpeg_second_scan_after_baseline.jpg); libjpeg-turbo refuses
    // it here ("Didn't expect more than one scan"). A multi-scan file was read whole by
    // jpeg_start_decompress already. Extraneous bytes before EOI stay a tolerated warning; a
    // missing EOI is a premature-end warning, and stb refuses such a file as well.
    if (!check->errors.corrupt) jpeg_finish_decompress(&cinfo);
    return true;
}

std::string jpeg_entropy_data_problem(const uint8_t* data, size_t size) {
    const size_t soi_end = jpeg_soi_end(data, size);
    if (soi_end == 0) return "";
    // libjpeg wants FF D8 at byte 0; stb skipped the fill bytes before it (jpeg_soi_end).
    const uint8_t* start = data + soi_end - 2;
    const size_t length = size - (soi_end - 2);

    auto check = std::make_unique<JpegCheck>();  // zeroed: jpeg_destroy_decompress is safe on it
    check->cinfo.err = jpeg_std_error(&check->errors.mgr);
    check->errors.mgr.error_exit = jpeg_check_error_exit;
    check->errors.mgr.emit_message = jpeg_check_emit_message;
    check->progress.progress_monitor = jpeg_check_progress;
    const bool finished = run_jpeg_check(check.get(), start, length);
    jpeg_destroy_decompress(&check->cinfo);
    if (!finished || check->errors.corrupt) {
        std::string message = check->errors.message;
        const std::string redundant = "Corrupt JPEG data: ";  // the caller says "corrupt JPEG"
        if (message.rfind(redundant, 0) == 0) message.erase(0, redundant.size());
        return message.empty() ? std::string("rejected by libjpeg-turbo") : message;
    }
    return "";
}

}  // namespace

int jpeg_exif_orientation(const uint8_t* data, size_t size) {
    int orientation = 1;
    static constexpr uint8_t kExifId[6] = {'E', 'x', 'i', 'f', 0, 0};
    walk_jpeg_header_segments(data, size, [&](uint8_t marker, const uint8_t* payload, size_t n) {
        if (marker != 0xE1 || n < 6 || std::memcmp(payload, kExifId, 6) != 0) return false;
        const int o = tiff_ifd0_orientation(payload + 6, n - 6);
        if (o == 0) return false;  // another APP1 (XMP) or a broken one: keep looking
        orientation = o;
        return true;
    });
    return orientation;
}

ImageU8 image_apply_exif_orientation(const ImageU8& image, int orientation) {
    if (orientation < 2 || orientation > 8) return image;
    const int w = image.width, h = image.height;
    const bool swaps = orientation >= 5;
    ImageU8 out;
    out.width = swaps ? h : w;
    out.height = swaps ? w : h;
    out.rgb.resize(out.n_bytes());
    for (int oy = 0; oy < out.height; ++oy) {
        for (int ox = 0; ox < out.width; ++ox) {
            int ix = ox, iy = oy;
            switch (orientation) {
                case 2: ix = w - 1 - ox; iy = oy; break;
                case 3: ix = w - 1 - ox; iy = h - 1 - oy; break;
                case 4: ix = ox; iy = h - 1 - oy; break;
                case 5: ix = oy; iy = ox; break;
                case 6: ix = oy; iy = h - 1 - ox; break;
                case 7: ix = w - 1 - oy; iy = h - 1 - ox; break;
                case 8: ix = w - 1 - oy; iy = ox; break;
                default: break;
            }
            std::memcpy(out.pixel(ox, oy), image.pixel(ix, iy), 3);
        }
    }
    return out;
}

Result<ImageU8> image_decode_memory(const uint8_t* data, size_t size, const std::string& name_for_errors,
                                    const ImageDecodeOptions& options) {
    const char* name = name_for_errors.c_str();
    GLIMPSE_CHECK_OR_RETURN(size == 0 || data != nullptr, invalid_argument, "%s: null data pointer with %zu bytes",
                            name, size);
    GLIMPSE_CHECK_OR_RETURN(size > 0, parse_error, "%s: empty file (0 bytes), not an image", name);
    GLIMPSE_CHECK_OR_RETURN(size <= static_cast<size_t>(INT_MAX) && static_cast<int64_t>(size) <= kImageMaxFileBytes,
                            out_of_range, "%s: %zu bytes, above the image file limit of %lld bytes", name, size,
                            static_cast<long long>(kImageMaxFileBytes));
    const int len = static_cast<int>(size);

    // Before any stb call: even stbi_info parses the JPEG tables that precede the frame header.
    const std::string unsafe = jpeg_unsafe_for_stb(data, size);
    GLIMPSE_CHECK_OR_RETURN(unsafe.empty(), parse_error, "%s: corrupt JPEG: %s", name, unsafe.c_str());
    const std::string unsafe_hdr = hdr_unsafe_for_stb(data, size);
    GLIMPSE_CHECK_OR_RETURN(unsafe_hdr.empty(), parse_error, "%s: corrupt Radiance HDR: %s", name, unsafe_hdr.c_str());
    const std::string unsafe_pnm = pnm_unsafe_for_stb(data, size);
    GLIMPSE_CHECK_OR_RETURN(unsafe_pnm.empty(), parse_error, "%s: corrupt PGM/PPM: %s", name, unsafe_pnm.c_str());
    const std::string unsafe_png = png_unsafe_for_stb(data, size);
    GLIMPSE_CHECK_OR_RETURN(unsafe_png.empty(), parse_error, "%s: corrupt PNG: %s", name, unsafe_png.c_str());

    // Header only: dimensions are checked before stb allocates the pixel buffer.
    int64_t claimed_w = 0, claimed_h = 0;
    if (sniff_claimed_size(data, size, &claimed_w, &claimed_h)) {
        GLIMPSE_CHECK_OR_RETURN(claimed_w <= options.max_side && claimed_h <= options.max_side &&
                                    claimed_w * claimed_h <= options.max_pixels,
                                out_of_range,
                                "%s: image header claims %lldx%lld pixels, above the limit of %d pixels per side and "
                                "%lld pixels in total",
                                name, static_cast<long long>(claimed_w), static_cast<long long>(claimed_h),
                                options.max_side, static_cast<long long>(options.max_pixels));
    }
    int info_w = 0, info_h = 0, info_comp = 0;
    if (!stbi_info_from_memory(data, len, &info_w, &info_h, &info_comp)) {
        const char* why = stbi_failure_reason();
        return Status::error(StatusCode::parse_error, "%s: not a decodable image (%zu bytes; stb_image: %s)", name, size,
                             why ? why : "unknown reason");
    }
    GLIMPSE_CHECK_OR_RETURN(info_w > 0 && info_h > 0, parse_error, "%s: image header gives invalid size %dx%d", name,
                            info_w, info_h);
    GLIMPSE_CHECK_OR_RETURN(info_w <= options.max_side && info_h <= options.max_side &&
                                int64_t{info_w} * info_h <= options.max_pixels,
                            out_of_range,
                            "%s: image header claims %dx%d pixels, above the limit of %d pixels per side and %lld "
                            "pixels in total",
                            name, info_w, info_h, options.max_side, static_cast<long long>(options.max_pixels));

    GLIMPSE_CHECK_OR_RETURN(int64_t{info_w} * info_h <= static_cast<int64_t>(size) * kImageMaxPixelsPerFileByte,
                            parse_error,
                            "%s: image header claims %dx%d pixels but the file has only %zu bytes (more than %lld "
                            "pixels per byte: corrupt or hostile)",
                            name, info_w, info_h, size, static_cast<long long>(kImageMaxPixelsPerFileByte));

    // Pin the per-thread stb flags to their defaults (what llama.cpp runs with), whatever
    // another part of the process may have set globally.
    stbi_set_flip_vertically_on_load_thread(0);
    stbi_convert_iphone_png_to_rgb_thread(0);

    // After the size checks, so that libjpeg-turbo never sees a header above the limits.
    const std::string bad_entropy_data = jpeg_entropy_data_problem(data, size);
    GLIMPSE_CHECK_OR_RETURN(bad_entropy_data.empty(), parse_error, "%s: corrupt JPEG: %s (libjpeg-turbo)", name,
                            bad_entropy_data.c_str());

    std::string png_error;
    const std::vector<uint8_t> padded = png_with_full_palette(data, size, &png_error);  // at most size + 768
    GLIMPSE_CHECK_OR_RETURN(png_error.empty(), parse_error, "%s: corrupt PNG: %s", name, png_error.c_str());
    const uint8_t* decode_data = padded.empty() ? data : padded.data();
    const int decode_len = padded.empty() ? len : static_cast<int>(padded.size());

    int w = 0, h = 0, channels_in_file = 0;
    std::unique_ptr<stbi_uc, StbiFree> pixels(
        stbi_load_from_memory(decode_data, decode_len, &w, &h, &channels_in_file, 3));
    if (!pixels) {
        const char* why = stbi_failure_reason();
        return Status::error(StatusCode::parse_error, "%s: cannot decode %dx%d image (%zu bytes; stb_image: %s)", name,
                             info_w, info_h, size, why ? why : "unknown reason");
    }
    GLIMPSE_CHECK_OR_RETURN(w == info_w && h == info_h, parse_error,
                            "%s: decoded size %dx%d differs from the header's %dx%d", name, w, h, info_w, info_h);

    ImageU8 image;
    image.width = w;
    image.height = h;
    image.rgb.assign(pixels.get(), pixels.get() + image.n_bytes());

    if (options.apply_exif_orientation) {
        const int orientation = jpeg_exif_orientation(data, size);
        if (orientation != 1) image = image_apply_exif_orientation(image, orientation);
    }
    return image;
}

Result<ImageU8> image_decode_file(const std::string& path, const ImageDecodeOptions& options) {
    // Checked with fstat before a byte is read: a FIFO would block forever, /dev/zero would
    // stream until the size cap.
    GLIMPSE_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_regular_file(path, "an image", kImageMaxFileBytes));
    return image_decode_memory(bytes.data(), bytes.size(), path, options);
}

Status image_write_png(const std::string& path, const ImageU8& image) {
    GLIMPSE_CHECK_OR_RETURN(image.width > 0 && image.height > 0, invalid_argument,
                            "%s: cannot write a %dx%d image", path.c_str(), image.width, image.height);
    GLIMPSE_CHECK_OR_RETURN(image.width <= INT_MAX / 3, invalid_argument, "%s: image width %d too large for PNG output",
                            path.c_str(), image.width);
    GLIMPSE_CHECK_OR_RETURN(image.rgb.size() == image.n_bytes(), invalid_argument,
                            "%s: image is %dx%d but holds %zu bytes (expected %zu)", path.c_str(), image.width,
                            image.height, image.rgb.size(), image.n_bytes());
    // Encode to memory, then write with checked I/O: stbi_write_png does not report short writes.
    std::vector<uint8_t> png;
    auto append = [](void* context, void* bytes, int n) {
        auto* out = static_cast<std::vector<uint8_t>*>(context);
        const auto* p = static_cast<const uint8_t*>(bytes);
        out->insert(out->end(), p, p + n);
    };
    if (!stbi_write_png_to_func(append, &png, image.width, image.height, 3, image.rgb.data(), image.width * 3) ||
        png.empty()) {
        return Status::error(StatusCode::internal, "%s: PNG encoding of a %dx%d image failed", path.c_str(),
                             image.width, image.height);
    }
    std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
    if (!file) {
        return Status::error(StatusCode::io_error, "%s: cannot create: %s", path.c_str(), std::strerror(errno));
    }
    if (std::fwrite(png.data(), 1, png.size(), file.get()) != png.size()) {
        return Status::error(StatusCode::io_error, "%s: short write of %zu bytes: %s", path.c_str(), png.size(),
                             std::strerror(errno));
    }
    if (std::fclose(file.release()) != 0) {
        return Status::error(StatusCode::io_error, "%s: write failed on close: %s", path.c_str(), std::strerror(errno));
    }
    return Status::ok();
}

}  // namespace glimpse
