// The image path: decoding (runtime/image.h), resamplers (ops/image_resize.h) and projector
// preprocessing (models/image_preprocess.h), checked against llama.cpp's golden bitmaps and
// encoder inputs, hand-worked cases, and hostile files.
#include <doctest/doctest.h>

#include "models/image_preprocess.h"
#include "ops/image_resize.h"
#include "runtime/image.h"
#include "test_util.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace glimpse;
namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
    std::vector<uint8_t> bytes = test::read_file_bytes(path);
    return std::string(bytes.begin(), bytes.end());
}

// Integer value of the first `"key": N` in a small JSON text, or -1. Enough for the sidecars.
long json_int(const std::string& text, const std::string& key) {
    const std::string needle = "\"" + key + "\"";
    size_t pos = text.find(needle);
    if (pos == std::string::npos) return -1;
    pos = text.find(':', pos + needle.size());
    if (pos == std::string::npos) return -1;
    return std::strtol(text.c_str() + pos + 1, nullptr, 10);
}

int count_occurrences(const std::string& text, const std::string& needle) {
    int n = 0;
    for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size())) ++n;
    return n;
}

// bitmap_<i>.u8 of a golden case, with its size from the .json sidecar.
ImageU8 load_golden_bitmap(const std::string& case_dir, int i) {
    const std::string base = case_dir + "/bitmap_" + std::to_string(i);
    const std::string meta = read_text(base + ".json");
    ImageU8 img;
    img.width = static_cast<int>(json_int(meta, "nx"));
    img.height = static_cast<int>(json_int(meta, "ny"));
    img.rgb = test::read_file_bytes(base + ".u8");
    REQUIRE(img.width > 0);
    REQUIRE(img.height > 0);
    REQUIRE(img.rgb.size() == img.n_bytes());
    return img;
}

// Image parameters of the tiny golden mmproj files, as the golden README ("Models") states them.
Idefics3Params tiny_idefics3_params() {
    Idefics3Params p;
    p.tile_size = 64;      // clip.vision.image_size
    p.longest_edge = 128;  // clip.vision.preproc_image_size
    p.mean = {0.5f, 0.5f, 0.5f};
    p.std = {0.5f, 0.5f, 0.5f};
    return p;
}

LlavaParams tiny_llava_params() {
    LlavaParams p;
    p.image_size = 64;
    p.mean = {0.48145466f, 0.4578275f, 0.40821073f};
    p.std = {0.26862954f, 0.26130258f, 0.27577711f};
    return p;
}

ImageU8 image_from(int w, int h, const std::function<std::array<uint8_t, 3>(int, int)>& f) {
    ImageU8 img;
    img.width = w;
    img.height = h;
    img.rgb.resize(img.n_bytes());
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const auto px = f(x, y);
            std::memcpy(img.pixel(x, y), px.data(), 3);
        }
    return img;
}

// A grey image: R = G = B = grey(x, y).
ImageU8 grey_from(int w, int h, const std::function<uint8_t(int, int)>& grey) {
    return image_from(w, h, [&](int x, int y) {
        const uint8_t v = grey(x, y);
        return std::array<uint8_t, 3>{v, v, v};
    });
}

ImageU8 solid(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    return image_from(w, h, [&](int, int) { return std::array<uint8_t, 3>{r, g, b}; });
}

int max_abs_diff_u8(const ImageU8& a, const ImageU8& b) {
    if (a.width != b.width || a.height != b.height || a.rgb.size() != b.rgb.size()) return 256;
    int m = 0;
    for (size_t i = 0; i < a.rgb.size(); ++i) m = std::max(m, std::abs(int{a.rgb[i]} - int{b.rgb[i]}));
    return m;
}

using test::write_bytes;

// A scratch directory for this binary, removed at the end of the test.
struct TempDir : test::TempDir {
    TempDir() : test::TempDir("test_image") {}
};

// Deterministic pseudo-random bytes (64-bit LCG, high bits).
struct Lcg {
    uint64_t state;
    explicit Lcg(uint64_t seed) : state(seed) {}
    uint32_t next() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<uint32_t>(state >> 33);
    }
};

uint32_t crc32(const uint8_t* data, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
        crc ^= data[i];
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void append_png_chunk(std::vector<uint8_t>& png, const char type[4], const std::vector<uint8_t>& payload) {
    put_be32(png, static_cast<uint32_t>(payload.size()));
    std::vector<uint8_t> typed(type, type + 4);
    typed.insert(typed.end(), payload.begin(), payload.end());
    png.insert(png.end(), typed.begin(), typed.end());
    put_be32(png, crc32(typed.data(), typed.size()));
}

// A complete PNG: IHDR, optional PLTE, and the filtered rows (filter byte 0 each) in one IDAT
// holding a zlib stream of stored (uncompressed) deflate blocks.
std::vector<uint8_t> make_png(uint32_t width, uint32_t height, uint8_t depth, uint8_t colour_type,
                              const std::vector<uint8_t>& rows, const std::vector<uint8_t>& palette = {}) {
    std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    std::vector<uint8_t> ihdr;
    put_be32(ihdr, width);
    put_be32(ihdr, height);
    for (uint8_t b : {depth, colour_type, uint8_t{0}, uint8_t{0}, uint8_t{0}}) ihdr.push_back(b);
    append_png_chunk(png, "IHDR", ihdr);
    if (!palette.empty()) append_png_chunk(png, "PLTE", palette);
    std::vector<uint8_t> z = {0x78, 0x01};
    size_t done = 0;
    do {
        const size_t n = std::min<size_t>(rows.size() - done, 65535);
        const bool last = done + n == rows.size();
        z.push_back(last ? 1 : 0);
        z.push_back(static_cast<uint8_t>(n));
        z.push_back(static_cast<uint8_t>(n >> 8));
        z.push_back(static_cast<uint8_t>(~n));
        z.push_back(static_cast<uint8_t>(~n >> 8));
        for (size_t i = 0; i < n; ++i) z.push_back(rows[done + i]);
        done += n;
    } while (done < rows.size());
    uint32_t a = 1, b = 0;  // Adler-32 of the uncompressed data
    for (uint8_t v : rows) {
        a = (a + v) % 65521;
        b = (b + a) % 65521;
    }
    put_be32(z, b << 16 | a);
    append_png_chunk(png, "IDAT", z);
    append_png_chunk(png, "IEND", {});
    return png;
}

// A PNG whose IHDR claims width x height 8-bit RGB, followed by a tiny (stored, empty) IDAT.
std::vector<uint8_t> png_with_header(uint32_t width, uint32_t height) {
    std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    std::vector<uint8_t> ihdr;
    put_be32(ihdr, width);
    put_be32(ihdr, height);
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // depth 8, colour type RGB, deflate, filter 0, no interlace
    append_png_chunk(png, "IHDR", ihdr);
    append_png_chunk(png, "IDAT", {0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01});
    append_png_chunk(png, "IEND", {});
    return png;
}

// Byte offset of the first JPEG marker `marker` (the 0xFF byte), or npos.
size_t find_jpeg_marker(const std::vector<uint8_t>& jpg, uint8_t marker) {
    size_t pos = 2;
    while (pos + 4 <= jpg.size() && jpg[pos] == 0xFF) {
        if (jpg[pos + 1] == marker) return pos;
        if (jpg[pos + 1] == 0xDA) break;
        pos += 2 + (size_t{jpg[pos + 2]} << 8 | jpg[pos + 3]);
    }
    return std::string::npos;
}

// dst += src, element by element (GCC 12 warns falsely on vector::insert of small ranges).
void append(std::vector<uint8_t>& dst, const std::vector<uint8_t>& src) {
    dst.reserve(dst.size() + src.size());
    for (uint8_t b : src) dst.push_back(b);
}

// An Exif APP1 segment whose IFD0 holds only the Orientation tag.
std::vector<uint8_t> exif_app1(int orientation, bool big_endian) {
    std::vector<uint8_t> tiff;
    auto u16 = [&](uint32_t v) {
        if (big_endian) tiff.insert(tiff.end(), {uint8_t(v >> 8), uint8_t(v)});
        else tiff.insert(tiff.end(), {uint8_t(v), uint8_t(v >> 8)});
    };
    auto u32 = [&](uint32_t v) {
        if (big_endian) tiff.insert(tiff.end(), {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)});
        else tiff.insert(tiff.end(), {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)});
    };
    tiff.insert(tiff.end(), big_endian ? std::initializer_list<uint8_t>{'M', 'M'} : std::initializer_list<uint8_t>{'I', 'I'});
    u16(42);
    u32(8);       // IFD0 right after the header
    u16(1);       // one entry
    u16(0x0112);  // Orientation
    u16(3);       // SHORT
    u32(1);       // count
    u16(static_cast<uint32_t>(orientation));
    u16(0);       // padding of the 4-byte value field
    u32(0);       // no next IFD
    const size_t length = 2 + 6 + tiff.size();
    const uint8_t header[10] = {0xFF, 0xE1, uint8_t(length >> 8), uint8_t(length), 'E', 'x', 'i', 'f', 0, 0};
    std::vector<uint8_t> seg(std::begin(header), std::end(header));
    append(seg, tiff);
    return seg;
}

std::vector<uint8_t> with_segment_after_soi(const std::vector<uint8_t>& jpg, const std::vector<uint8_t>& seg) {
    std::vector<uint8_t> out(jpg.begin(), jpg.begin() + 2);
    append(out, seg);
    append(out, std::vector<uint8_t>(jpg.begin() + 2, jpg.end()));
    return out;
}

// Reconstructs the u8 canvas pixel from a normalized value: v*std + mean = u8/255.
int denormalize(float v, float mean, float std) { return static_cast<int>(std::lround((v * std + mean) * 255.0f)); }

// Where a resampled image sits on its padded canvas: [x, x + w) x [y, y + h).
struct CanvasRect {
    int x, y, w, h;
};

// The values of one normalized chunk (3,S,S) that do not denormalize to `colour` where the canvas
// shows the image and to `pad` elsewhere; the chunk's top-left is canvas pixel (tile_x, tile_y).
int count_canvas_mismatches(const float* chunk, int S, int tile_x, int tile_y, const CanvasRect& image,
                            const std::array<uint8_t, 3>& colour, const std::array<uint8_t, 3>& pad,
                            const std::array<float, 3>& mean, const std::array<float, 3>& std) {
    int mismatches = 0;
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < S; ++y)
            for (int x = 0; x < S; ++x) {
                const int cx = tile_x + x, cy = tile_y + y;
                const bool inside = cx >= image.x && cx < image.x + image.w && cy >= image.y && cy < image.y + image.h;
                const int v = denormalize(chunk[(c * S + y) * S + x], mean[c], std[c]);
                if (v != (inside ? colour[c] : pad[c])) ++mismatches;
            }
    return mismatches;
}

struct GoldenSet {
    const char* dir;
    bool idefics3;
};
const GoldenSet kGoldenSets[] = {
    {"smolvlm-tiny-f32", true},  {"smolvlm-tiny-f32-wstd0.2", true}, {"smolvlm-tiny-f16", true},
    {"smolvlm-tiny-q8_0", true}, {"smolvlm-tiny-q4_0", true},        {"llava-tiny-f32", false},
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Decoding

TEST_CASE("decoding the golden images reproduces llama.cpp's stb_image bitmaps exactly") {
    const std::string g = test::golden_dir();
    struct Item {
        const char* file;
        const char* case_dir;
        int bitmap;
    };
    const Item items[] = {
        {"smolvlm-tiny-f32/tiny.png", "smolvlm-tiny-f32/tiny__describe", 0},
        {"smolvlm-tiny-f32/tiny_wide.png", "smolvlm-tiny-f32/tiny_wide__describe", 0},
        {"smolvlm-tiny-f32/chelsea_300x200.jpg", "smolvlm-tiny-f32/chelsea__describe", 0},
        {"llava-tiny-f32/tiny_wide.png", "llava-tiny-f32/two-images__describe", 0},
        {"llava-tiny-f32/chelsea_300x200.jpg", "llava-tiny-f32/two-images__describe", 1},
    };
    for (const Item& item : items) {
        CAPTURE(item.file);
        Result<ImageU8> decoded = image_decode_file(g + "/" + item.file);
        REQUIRE_MESSAGE(decoded.is_ok(), decoded.status().to_string());
        const ImageU8 ref = load_golden_bitmap(g + "/" + item.case_dir, item.bitmap);
        CHECK(decoded->width == ref.width);
        CHECK(decoded->height == ref.height);
        // PNG is exact by definition. For the JPEG too: Debian's stb_image is v2.27, llama.cpp
        // vendors v2.30, but the JPEG arithmetic (integer IDCT incl. its SSE2 path, chroma
        // upsampling, YCbCr->RGB) is the same in both; 2.28-2.30 changed error checks and PNG
        // filtering code only. Measured: 0 differing bytes, so the bound is 0.
        CHECK(max_abs_diff_u8(*decoded, ref) == 0);

        // These files carry no EXIF orientation, so the option changes nothing.
        ImageDecodeOptions exif;
        exif.apply_exif_orientation = true;
        Result<ImageU8> oriented = image_decode_file(g + "/" + item.file, exif);
        REQUIRE(oriented.is_ok());
        CHECK(max_abs_diff_u8(*oriented, ref) == 0);
    }
}

TEST_CASE("PNG colour types decode to RGB as llama.cpp's stb call does") {
    // stbi_load_from_memory(..., 3), as mtmd_helper_bitmap_init_from_buf calls it: grey is
    // replicated to R=G=B, alpha is dropped (not composited over a background), 16-bit samples
    // keep their high byte, palettes are expanded.
    auto decode = [](const std::vector<uint8_t>& png) {
        auto r = image_decode_memory(png.data(), png.size(), "synthetic.png");
        REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
        REQUIRE(r->width == 2);
        REQUIRE(r->height == 1);
        return *r;
    };
    auto expect = [](const ImageU8& img, std::array<uint8_t, 3> p0, std::array<uint8_t, 3> p1) {
        CHECK(std::memcmp(img.pixel(0, 0), p0.data(), 3) == 0);
        CHECK(std::memcmp(img.pixel(1, 0), p1.data(), 3) == 0);
    };
    expect(decode(make_png(2, 1, 8, 0, {0, 17, 230})), {17, 17, 17}, {230, 230, 230});                 // grey
    expect(decode(make_png(2, 1, 8, 4, {0, 17, 0, 230, 128})), {17, 17, 17}, {230, 230, 230});         // grey+alpha
    expect(decode(make_png(2, 1, 8, 6, {0, 1, 2, 3, 0, 200, 100, 50, 255})), {1, 2, 3}, {200, 100, 50});  // RGBA
    expect(decode(make_png(2, 1, 16, 2, {0, 0x12, 0x34, 0xAB, 0xFF, 0x00, 0x01, 0x80, 0x00, 0x7F, 0xFF, 0xFF, 0xFF})),
           {0x12, 0xAB, 0x00}, {0x80, 0x7F, 0xFF});  // 16-bit RGB
    expect(decode(make_png(2, 1, 16, 0, {0, 0xC0, 0x01, 0x3F, 0xFF})), {0xC0, 0xC0, 0xC0}, {0x3F, 0x3F, 0x3F});
    expect(decode(make_png(2, 1, 8, 3, {0, 1, 0}, {9, 8, 7, 250, 5, 60})), {250, 5, 60}, {9, 8, 7});  // palette
}

TEST_CASE("image_write_png round-trips through the decoder") {
    TempDir tmp;
    const ImageU8 img = image_from(37, 11, [](int x, int y) {
        return std::array<uint8_t, 3>{uint8_t(x * 7), uint8_t(y * 23), uint8_t((x * y) ^ 0x5A)};
    });
    const std::string path = tmp.file("roundtrip.png");
    Status s = image_write_png(path, img);
    REQUIRE_MESSAGE(s.is_ok(), s.to_string());
    Result<ImageU8> back = image_decode_file(path);
    REQUIRE(back.is_ok());
    CHECK(max_abs_diff_u8(*back, img) == 0);

    Status bad_dir = image_write_png(tmp.file("no/such/dir/x.png"), img);
    CHECK(!bad_dir.is_ok());
    CHECK(bad_dir.message().find("no/such/dir/x.png") != std::string::npos);

    ImageU8 inconsistent = img;
    inconsistent.rgb.pop_back();
    CHECK(!image_write_png(tmp.file("inconsistent.png"), inconsistent).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Preprocessing against llama.cpp

TEST_CASE("preprocessing the golden bitmaps reproduces every preproc_<k>.f32 bit for bit") {
    const std::string g = test::golden_dir();
    // Image chunks per image, from the golden README's case table ("N image chunks"):
    // idefics3 tiles + overview; LLaVA one chunk per image.
    const std::map<std::string, int> idefics3_chunks_by_size = {{"64x64", 5}, {"96x40", 3}, {"300x200", 5}};
    int n_cases = 0, n_chunks_checked = 0;
    for (const GoldenSet& set : kGoldenSets) {
        std::vector<fs::path> cases;
        for (const auto& entry : fs::directory_iterator(g + "/" + set.dir)) {
            if (entry.is_directory() && fs::exists(entry.path() / "tokens.json")) cases.push_back(entry.path());
        }
        std::sort(cases.begin(), cases.end());
        CHECK(!cases.empty());
        for (const fs::path& case_path : cases) {
            const std::string case_dir = case_path.string();
            CAPTURE(case_dir);
            ++n_cases;
            const int n_image_chunks = count_occurrences(read_text(case_dir + "/tokens.json"), "\"type\": \"image\"");

            std::vector<float> all;  // every chunk of every image, in prompt order
            int n_chunks = 0;
            for (int i = 0; fs::exists(case_dir + "/bitmap_" + std::to_string(i) + ".u8"); ++i) {
                const ImageU8 bitmap = load_golden_bitmap(case_dir, i);
                Result<PreprocessedImage> pre = set.idefics3 ? idefics3_preprocess(bitmap, tiny_idefics3_params())
                                                             : llava_preprocess(bitmap, tiny_llava_params());
                REQUIRE_MESSAGE(pre.is_ok(), pre.status().to_string());
                CHECK(pre->tile_size == 64);
                CHECK(pre->data.size() == static_cast<size_t>(pre->n_chunks) * 3 * 64 * 64);
                if (set.idefics3) {
                    const std::string size = std::to_string(bitmap.width) + "x" + std::to_string(bitmap.height);
                    REQUIRE(idefics3_chunks_by_size.count(size) == 1);
                    CHECK(pre->n_chunks == idefics3_chunks_by_size.at(size));
                    CHECK(pre->has_overview);
                    CHECK(pre->grid_rows * pre->grid_cols + 1 == pre->n_chunks);
                } else {
                    CHECK(pre->n_chunks == 1);
                }
                n_chunks += pre->n_chunks;
                all.insert(all.end(), pre->data.begin(), pre->data.end());
            }
            CHECK(n_chunks == n_image_chunks);

            const size_t tile = 3 * 64 * 64;
            for (int k = 0; k < n_image_chunks; ++k) {
                CAPTURE(k);
                const std::vector<float> ref = test::read_f32_file(case_dir + "/preproc_" + std::to_string(k) + ".f32");
                REQUIRE(ref.size() == tile);
                REQUIRE(all.size() >= (k + 1) * tile);
                const test::ErrorStats st = test::compare(all.data() + k * tile, ref.data(), tile);
                CHECK(st.max_abs_diff == 0.0);
                CHECK(std::memcmp(all.data() + k * tile, ref.data(), tile * sizeof(float)) == 0);
                ++n_chunks_checked;
            }
            CHECK(!fs::exists(case_dir + "/preproc_" + std::to_string(n_image_chunks) + ".f32"));
        }
    }
    // 18 cases in the README table, 71 image chunks in all (sum of its "N image chunks").
    CHECK(n_cases == 18);
    CHECK(n_chunks_checked == 71);
}

TEST_CASE("idefics3 geometry: the golden README's geometries and SmolVLM-256M by hand") {
    const Idefics3Params tiny = tiny_idefics3_params();
    // An image size, the parameters that matter to the geometry, and the geometry worked out by
    // hand from llama.cpp's rule (the comment of each row).
    struct Case {
        const char* what;
        int image_w, image_h;
        int tile_size, longest_edge, max_pixels;
        int canvas_w, canvas_h, grid_rows, grid_cols, resized_w, resized_h, offset_x, offset_y, n_chunks;
    };
    const Case cases[] = {
        {"64x64 -> 128x128 canvas, 2x2 tiles + overview", 64, 64, 64, 128, 0, 128, 128, 2, 2, 128, 128, 0, 0, 5},
        // s = min(128/96, 128/40) = 4/3: 128 x 53.3 -> canvas 128 x 64. Inside it
        // s = min(128/96, 64/40) = 4/3 again: 128 x ceil(53.33) = 54, y offset (64-54)/2 = 5.
        {"96x40 -> 128x64 canvas, 2x1 tiles + overview", 96, 40, 64, 128, 0, 128, 64, 1, 2, 128, 54, 0, 5, 3},
        {"300x200 -> 128x128 canvas, image 128x86 at y=21, 2x2 tiles + overview", 300, 200, 64, 128, 0, 128, 128, 2, 2,
         128, 86, 0, 21, 5},
        // s = min(2048/1024, 2048/768) = 2: 2048 x 1536, both multiples of 512: 4 columns, 3 rows.
        // The image fills the canvas exactly (s = min(2048/1024, 1536/768) = 2), no padding.
        {"SmolVLM-256M: 1024x768, tile 512, longest edge 2048 -> 4x3 tiles + overview", 1024, 768, 512, 2048, 0, 2048,
         1536, 3, 4, 2048, 1536, 0, 0, 13},
        // 2048*1536 > 2^20: beta = sqrt(768*1024/2^20) = 0.866; h = floor(886.8/512)*512 = 512,
        // w = floor(1182.4/512)*512 = 1024 (2x1 tiles). Inside 1024x512: s = min(1, 2/3): 683 x 512 at x = 170.
        {"max pixel budget shrinks the canvas as llama.cpp does", 1024, 768, 512, 2048, 1024 * 1024, 1024, 512, 1, 2,
         683, 512, 170, 0, 3},
    };
    SUBCASE("the hand-worked geometries") {
        for (const Case& c : cases) {
            CAPTURE(c.what);
            Idefics3Params p;
            p.tile_size = c.tile_size;
            p.longest_edge = c.longest_edge;
            p.max_pixels = c.max_pixels;
            auto g = idefics3_geometry(c.image_w, c.image_h, p);
            REQUIRE(g.is_ok());
            CHECK(g->canvas_w == c.canvas_w);
            CHECK(g->canvas_h == c.canvas_h);
            CHECK(g->grid_rows == c.grid_rows);
            CHECK(g->grid_cols == c.grid_cols);
            CHECK(g->resized_w == c.resized_w);
            CHECK(g->resized_h == c.resized_h);
            CHECK(g->offset_x == c.offset_x);
            CHECK(g->offset_y == c.offset_y);
            CHECK(g->n_chunks() == c.n_chunks);
            CHECK(g->n_tiles() == c.n_chunks - 1);  // the overview is the one chunk that is not a tile
        }
    }
    SUBCASE("a small image is upscaled to the longest edge too (llama.cpp always tiles idefics3)") {
        // 100x50 -> s = 20.48 -> 2048 x 1024 -> 4x2 tiles.
        Idefics3Params p;
        p.tile_size = 512;
        p.longest_edge = 2048;
        auto small = idefics3_geometry(100, 50, p);
        REQUIRE(small.is_ok());
        CHECK(small->grid_cols == 4);
        CHECK(small->grid_rows == 2);
    }
    SUBCASE("smallest images still give one tile plus the overview") {
        Idefics3Params p;
        p.tile_size = 64;
        p.longest_edge = 64;
        auto g = idefics3_geometry(30, 20, p);  // s = 64/30: 64 x 42.7 -> 64 x 64
        REQUIRE(g.is_ok());
        CHECK(g->grid_rows == 1);
        CHECK(g->grid_cols == 1);
        CHECK(g->n_chunks() == 2);
        auto one = idefics3_geometry(1, 1, tiny);  // s = 128: 128 x 128
        REQUIRE(one.is_ok());
        CHECK(one->n_tiles() == 4);
    }
    SUBCASE("no longest edge: sides rounded to the nearest tile multiple, at least one tile") {
        Idefics3Params p;
        p.tile_size = 64;
        p.longest_edge = 0;
        auto g = idefics3_geometry(100, 30, p);  // round(1.5625) = 2 -> 128; round(0.47) = 0 -> 64
        REQUIRE(g.is_ok());
        CHECK(g->canvas_w == 128);
        CHECK(g->canvas_h == 64);
    }
    SUBCASE("invalid parameters and sizes are errors") {
        Idefics3Params p = tiny;
        p.tile_size = 0;
        CHECK(!idefics3_geometry(64, 64, p).is_ok());
        CHECK(!idefics3_geometry(0, 64, tiny).is_ok());
        CHECK(!idefics3_geometry(64, -1, tiny).is_ok());
        CHECK(!idefics3_geometry(kResizeMaxSide + 1, 64, tiny).is_ok());
        p = tiny;
        p.longest_edge = -5;
        CHECK(!idefics3_geometry(64, 64, p).is_ok());
        p = tiny;
        p.std = {0.5f, 0.0f, 0.5f};
        CHECK(!idefics3_preprocess(solid(8, 8, 1, 2, 3), p).is_ok());
        ImageU8 broken = solid(8, 8, 1, 2, 3);
        broken.rgb.resize(10);
        CHECK(!idefics3_preprocess(broken, tiny).is_ok());
        CHECK(!llava_preprocess(broken, tiny_llava_params()).is_ok());
    }
}

TEST_CASE("llava geometry by hand") {
    const LlavaParams p = tiny_llava_params();
    struct Case {
        int image_w, image_h;
        int resized_w, resized_h, offset_x, offset_y;
    };
    const Case cases[] = {
        // 96x40 into 64: s = min(64/96, 64/40) = 2/3 -> 64 x ceil(26.67) = 27, y offset (64-27)/2 = 18.
        {96, 40, 64, 27, 0, 18},
        // 300x200: s = 64/300 -> 64 x ceil(42.67) = 43, y offset (64-43)/2 = 10.
        {300, 200, 64, 43, 0, 10},
        // Portrait 200x300 puts the bars left and right.
        {200, 300, 43, 64, 10, 0},
    };
    for (const Case& c : cases) {
        CAPTURE(c.image_w);
        CAPTURE(c.image_h);
        auto g = llava_geometry(c.image_w, c.image_h, p);
        REQUIRE(g.is_ok());
        CHECK(g->canvas == 64);
        CHECK(g->resized_w == c.resized_w);
        CHECK(g->resized_h == c.resized_h);
        CHECK(g->offset_x == c.offset_x);
        CHECK(g->offset_y == c.offset_y);
        CHECK(g->n_chunks() == 1);
    }
    LlavaParams bad = p;
    bad.image_size = 0;
    CHECK(!llava_geometry(10, 10, bad).is_ok());
}

TEST_CASE("the geometry-only functions agree with the pixel path") {
    // A constant image stays exactly constant under both resamplers (all cubic/linear
    // differences are 0), so the padded canvas tells where the image landed: colour inside,
    // pad colour outside. Rebuild it from the tiles and compare with the geometry.
    const std::array<uint8_t, 3> colour = {200, 100, 50};
    struct Size {
        int w, h;
    };
    const Size sizes[] = {{1, 1},   {1, 300},  {300, 1}, {64, 64},  {65, 64}, {96, 40},  {40, 96},
                          {300, 200}, {200, 300}, {127, 129}, {500, 20}, {129, 3}, {640, 480}};
    // The tiny golden tiling, a small tile with a longest edge that is not a tile multiple, and
    // no longest edge (sides rounded to tile multiples).
    Idefics3Params idefics3_variants[3] = {tiny_idefics3_params(), tiny_idefics3_params(), tiny_idefics3_params()};
    idefics3_variants[1].tile_size = 16;
    idefics3_variants[1].longest_edge = 40;
    idefics3_variants[2].tile_size = 32;
    idefics3_variants[2].longest_edge = 0;
    for (const Size& sz : sizes) {
        CAPTURE(sz.w);
        CAPTURE(sz.h);
        const ImageU8 image = solid(sz.w, sz.h, colour[0], colour[1], colour[2]);
        for (const Idefics3Params& p : idefics3_variants) {
            CAPTURE(p.tile_size);
            CAPTURE(p.longest_edge);
            auto g = idefics3_geometry(sz.w, sz.h, p);
            REQUIRE(g.is_ok());
            auto pre = idefics3_preprocess(image, p);
            REQUIRE(pre.is_ok());
            CHECK(pre->n_chunks == g->n_chunks());
            CHECK(pre->grid_rows == g->grid_rows);
            CHECK(pre->grid_cols == g->grid_cols);
            const int S = p.tile_size;
            int mismatches = 0;
            const CanvasRect placed{g->offset_x, g->offset_y, g->resized_w, g->resized_h};
            for (int k = 0; k < g->n_tiles(); ++k) {
                mismatches += count_canvas_mismatches(pre->chunk(k), S, (k % g->grid_cols) * S, (k / g->grid_cols) * S,
                                                      placed, colour, {0, 0, 0}, p.mean, p.std);
            }
            // The overview (last chunk) is the stretched image: constant everywhere.
            mismatches += count_canvas_mismatches(pre->chunk(g->n_tiles()), S, 0, 0, {0, 0, S, S}, colour, {0, 0, 0},
                                                  p.mean, p.std);
            CHECK(mismatches == 0);
        }
        // LLaVA: one chunk, the canvas itself, padded with pad_rgb.
        const LlavaParams lp = tiny_llava_params();
        auto lg = llava_geometry(sz.w, sz.h, lp);
        REQUIRE(lg.is_ok());
        auto lpre = llava_preprocess(image, lp);
        REQUIRE(lpre.is_ok());
        CHECK(lpre->n_chunks == 1);
        CHECK(count_canvas_mismatches(lpre->chunk(0), lp.image_size, 0, 0,
                                      {lg->offset_x, lg->offset_y, lg->resized_w, lg->resized_h}, colour, lp.pad_rgb,
                                      lp.mean, lp.std) == 0);
    }
}

TEST_CASE("SmolVLM-256M sized preprocessing: 1024x768 photo -> 12 tiles of 512 + overview") {
    Idefics3Params p;
    p.tile_size = 512;
    p.longest_edge = 2048;
    // Left half 40, right half 220: after the 2x upscale the boundary lands between canvas
    // columns 1023 and 1024, i.e. between tile columns 1 and 2, so tile columns 0-1 hold 40 and
    // 2-3 hold 220 except near the boundary where the cubic rings.
    const ImageU8 img = grey_from(1024, 768, [](int x, int) { return static_cast<uint8_t>(x < 512 ? 40 : 220); });
    auto pre = idefics3_preprocess(img, p);
    REQUIRE(pre.is_ok());
    CHECK(pre->n_chunks == 13);
    CHECK(pre->grid_rows == 3);
    CHECK(pre->grid_cols == 4);
    CHECK(pre->tile_size == 512);
    for (int k = 0; k < 12; ++k) {
        const int col = k % 4;
        const float* t = pre->chunk(k);
        // Far from the boundary (tile columns 0 and 3 entirely, at x = 0 and 511 of the tile).
        if (col == 0) CHECK(denormalize(t[100 * 512 + 0], 0.5f, 0.5f) == 40);
        if (col == 3) CHECK(denormalize(t[100 * 512 + 511], 0.5f, 0.5f) == 220);
    }
}

// ---------------------------------------------------------------------------------------------
// Resamplers on hand-worked cases

TEST_CASE("resizing a constant image gives the constant") {
    const ImageU8 img = solid(7, 5, 12, 130, 250);
    for (auto [w, h] : {std::pair{1, 1}, {3, 2}, {7, 5}, {16, 9}, {64, 64}, {2, 40}}) {
        CAPTURE(w);
        CAPTURE(h);
        for (ResizeFilter f : {ResizeFilter::bilinear, ResizeFilter::bicubic}) {
            Result<ImageU8> out = f == ResizeFilter::bilinear ? resize_bilinear_u8(img, w, h) : resize_bicubic_u8(img, w, h);
            REQUIRE(out.is_ok());
            CHECK(max_abs_diff_u8(*out, solid(w, h, 12, 130, 250)) == 0);
        }
    }
}

TEST_CASE("bilinear 2x2 -> 4x4 by hand from llama.cpp's formula") {
    // R channel corners 0 (top-left), 100 (top-right), 200 (bottom-left), 250 (bottom-right);
    // G and B constant. Output x samples source x*(2-1)/(4-1) = 0, 1/3, 2/3, 1 (same for y);
    // value = lerp(lerp(top row), lerp(bottom row), fy), truncated. E.g. (1,1): top 33.33,
    // bottom 216.67, 33.33 + 183.33/3 = 94.44 -> 94.
    const ImageU8 src = image_from(2, 2, [](int x, int y) {
        const uint8_t r[2][2] = {{0, 100}, {200, 250}};
        return std::array<uint8_t, 3>{r[y][x], 7, 250};
    });
    auto out = resize_bilinear_u8(src, 4, 4);
    REQUIRE(out.is_ok());
    const int expected[4][4] = {
        {0, 33, 66, 100},
        {66, 94, 122, 150},
        {133, 155, 177, 200},
        {200, 216, 233, 250},
    };
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) {
            CAPTURE(x);
            CAPTURE(y);
            CHECK(int{out->pixel(x, y)[0]} == expected[y][x]);
            CHECK(int{out->pixel(x, y)[1]} == 7);
            CHECK(int{out->pixel(x, y)[2]} == 250);
        }
    // A 1-pixel output side samples source index 0.
    auto one = resize_bilinear_u8(src, 1, 1);
    REQUIRE(one.is_ok());
    CHECK(int{one->pixel(0, 0)[0]} == 0);
}

TEST_CASE("bicubic by hand: the cubic through 4 samples, top-left aligned, clamped edges") {
    // Horizontal ramp 0,30,60,90 -> 8 wide: output j samples x = j/2. At x.5 the cubic through
    // p(-1..2) gives p0 + (-d0/3 + d2 - d3/6)/2 + (d0/2 + d2/2)/4 + (-d0/6 - d2/2 + d3/6)/8,
    // d0 = p(-1)-p0, d2 = p1-p0, d3 = p2-p0, with p(-1) and p(4) clamped to the edge:
    //   j=1: [0,0,30,60]   -> 0 + 10 + 3.75 - 0.625 = 13.125 -> 13
    //   j=3: [0,30,60,90]  -> 45 (a cubic reproduces a straight line)
    //   j=5: [30,60,90,90] -> 60 + 17.5 + 0 - 0.625 = 76.875 -> 77
    //   j=7: [60,90,90,90] -> 90 + 5 - 3.75 + 0.625 = 91.875 -> 92
    const int expected[8] = {0, 13, 30, 45, 60, 77, 90, 92};
    const ImageU8 row = grey_from(4, 2, [](int x, int) { return static_cast<uint8_t>(30 * x); });
    auto wide = resize_bicubic_u8(row, 8, 2);
    REQUIRE(wide.is_ok());
    for (int j = 0; j < 8; ++j) {
        CAPTURE(j);
        for (int y = 0; y < 2; ++y)
            for (int c = 0; c < 3; ++c) CHECK(int{wide->pixel(j, y)[c]} == expected[j]);
    }
    // The same along y (vertical pass).
    const ImageU8 col = grey_from(2, 4, [](int, int y) { return static_cast<uint8_t>(30 * y); });
    auto tall = resize_bicubic_u8(col, 2, 8);
    REQUIRE(tall.is_ok());
    for (int i = 0; i < 8; ++i) {
        CAPTURE(i);
        CHECK(int{tall->pixel(0, i)[0]} == expected[i]);
        CHECK(int{tall->pixel(1, i)[2]} == expected[i]);
    }
    // Downscaling 8 -> 4 samples x = 0, 2, 4, 6 exactly (fraction 0): plain decimation, no
    // anti-aliasing, as in llama.cpp.
    const ImageU8 eight = grey_from(8, 1, [](int x, int) {
        const uint8_t v[8] = {5, 250, 17, 3, 99, 180, 42, 77};
        return v[x];
    });
    auto four = resize_bicubic_u8(eight, 4, 1);
    REQUIRE(four.is_ok());
    CHECK(int{four->pixel(0, 0)[0]} == 5);
    CHECK(int{four->pixel(1, 0)[0]} == 17);
    CHECK(int{four->pixel(2, 0)[0]} == 99);
    CHECK(int{four->pixel(3, 0)[0]} == 42);
    // Overshoot is clamped: [255,255,0,0] at x = 0.5 sees [255,255,255,0]:
    // 255 + 42.5/2 - 42.5/8 = 270.9 -> 255; [0,0,255,255] undershoots to -15.9 -> 0.
    const ImageU8 step_down = grey_from(4, 1, [](int x, int) { return static_cast<uint8_t>(x < 2 ? 255 : 0); });
    auto sd = resize_bicubic_u8(step_down, 8, 1);
    REQUIRE(sd.is_ok());
    CHECK(int{sd->pixel(1, 0)[0]} == 255);
    CHECK(int{sd->pixel(6, 0)[0]} == 0);
    const ImageU8 step_up = grey_from(4, 1, [](int x, int) { return static_cast<uint8_t>(x < 2 ? 0 : 255); });
    auto su = resize_bicubic_u8(step_up, 8, 1);
    REQUIRE(su.is_ok());
    CHECK(int{su->pixel(1, 0)[0]} == 0);
}

TEST_CASE("padding, cropping and normalization by hand") {
    // fit: 4x2 in 4x4 -> s = min(1, 2) = 1: 4x2 at y = 1. 3x1 in 8x8 -> s = 8/3: 8 x ceil(2.67) = 3 at y = 2.
    PadFit a = fit_with_padding(4, 2, 4, 4);
    CHECK(a.resized_w == 4);
    CHECK(a.resized_h == 2);
    CHECK(a.offset_x == 0);
    CHECK(a.offset_y == 1);
    PadFit b = fit_with_padding(3, 1, 8, 8);
    CHECK(b.resized_w == 8);
    CHECK(b.resized_h == 3);
    CHECK(b.offset_y == 2);

    const ImageU8 red = solid(4, 2, 255, 0, 0);
    auto padded = resize_with_padding_u8(red, 4, 4, ResizeFilter::bicubic, {1, 2, 3});
    REQUIRE(padded.is_ok());
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) {
            const bool inside = y == 1 || y == 2;
            CHECK(int{padded->pixel(x, y)[0]} == (inside ? 255 : 1));
            CHECK(int{padded->pixel(x, y)[1]} == (inside ? 0 : 2));
            CHECK(int{padded->pixel(x, y)[2]} == (inside ? 0 : 3));
        }
    // Same size: a copy, whatever the filter.
    const ImageU8 grad = image_from(5, 3, [](int x, int y) {
        return std::array<uint8_t, 3>{uint8_t(x * 50), uint8_t(y * 90), uint8_t(x + y)};
    });
    auto same = resize_u8(grad, 5, 3, ResizeFilter::bilinear);
    REQUIRE(same.is_ok());
    CHECK(max_abs_diff_u8(*same, grad) == 0);

    auto crop = crop_u8(grad, 2, 1, 3, 2);
    REQUIRE(crop.is_ok());
    CHECK(crop->width == 3);
    CHECK(crop->height == 2);
    CHECK(int{crop->pixel(0, 0)[0]} == 100);
    CHECK(int{crop->pixel(2, 1)[1]} == 180);
    CHECK(!crop_u8(grad, 3, 0, 3, 1).is_ok());
    CHECK(!crop_u8(grad, -1, 0, 1, 1).is_ok());
    CHECK(!crop_u8(grad, 0, 0, 0, 1).is_ok());

    // (v/255 - 0.5)/0.5: 0 -> -1, 255 -> 1, 51 -> -0.6; planar layout (3,H,W).
    const ImageU8 px = image_from(2, 1, [](int x, int) {
        return x == 0 ? std::array<uint8_t, 3>{0, 255, 51} : std::array<uint8_t, 3>{255, 0, 51};
    });
    float out[6] = {};
    REQUIRE(normalize_to_planar_f32(px, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, out).is_ok());
    CHECK(out[0] == -1.0f);
    CHECK(out[1] == 1.0f);
    CHECK(out[2] == 1.0f);
    CHECK(out[3] == -1.0f);
    CHECK(out[4] == doctest::Approx(-0.6).epsilon(1e-6));
    CHECK(out[5] == doctest::Approx(-0.6).epsilon(1e-6));
    CHECK(!normalize_to_planar_f32(px, {0.5f, 0.5f, 0.5f}, {0.5f, 0.0f, 0.5f}, out).is_ok());

    // Invalid sizes are errors, not crashes.
    CHECK(!resize_bicubic_u8(grad, 0, 3).is_ok());
    CHECK(!resize_bilinear_u8(grad, 3, -1).is_ok());
    CHECK(!resize_bicubic_u8(ImageU8{}, 3, 3).is_ok());
    CHECK(!resize_bilinear_u8(grad, kResizeMaxSide + 1, 1).is_ok());
}

// ---------------------------------------------------------------------------------------------
// EXIF orientation (off by default; llama.cpp ignores it)

TEST_CASE("EXIF orientation: the 8 transforms match the tag's definition") {
    // EXIF tag semantics: where the stored image's row 0 and column 0 appear on display.
    //   1 top/left 2 top/right 3 bottom/right 4 bottom/left 5 left/top 6 right/top 7 right/bottom 8 left/bottom
    enum Side { top, bottom, left, right };
    const Side row0[9] = {top, top, top, bottom, bottom, left, right, right, left};
    const Side col0[9] = {left, left, right, right, left, top, top, bottom, bottom};
    const int w = 3, h = 2;
    const ImageU8 img = image_from(w, h, [](int x, int y) {
        return std::array<uint8_t, 3>{uint8_t(10 * y + x), uint8_t(x), uint8_t(y)};
    });
    for (int o = 1; o <= 8; ++o) {
        CAPTURE(o);
        const ImageU8 out = image_apply_exif_orientation(img, o);
        const bool rows_vertical = row0[o] == top || row0[o] == bottom;
        const int W = rows_vertical ? w : h, H = rows_vertical ? h : w;
        REQUIRE(out.width == W);
        REQUIRE(out.height == H);
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                int dx, dy;
                if (rows_vertical) {
                    dy = row0[o] == top ? y : H - 1 - y;
                    dx = col0[o] == left ? x : W - 1 - x;
                } else {
                    dx = row0[o] == left ? y : W - 1 - y;
                    dy = col0[o] == top ? x : H - 1 - x;
                }
                CHECK(std::memcmp(out.pixel(dx, dy), img.pixel(x, y), 3) == 0);
            }
    }
    CHECK(max_abs_diff_u8(image_apply_exif_orientation(img, 0), img) == 0);
    CHECK(max_abs_diff_u8(image_apply_exif_orientation(img, 9), img) == 0);
}

TEST_CASE("EXIF orientation is parsed from JPEG APP1 and applied only when asked") {
    const std::string g = test::golden_dir();
    const std::vector<uint8_t> jpg = test::read_file_bytes(g + "/smolvlm-tiny-f32/chelsea_300x200.jpg");
    REQUIRE(jpg.size() > 4);
    const ImageU8 ref = load_golden_bitmap(g + "/smolvlm-tiny-f32/chelsea__describe", 0);
    CHECK(jpeg_exif_orientation(jpg.data(), jpg.size()) == 1);

    for (bool big_endian : {false, true}) {
        for (int o = 1; o <= 8; ++o) {
            CAPTURE(big_endian);
            CAPTURE(o);
            const std::vector<uint8_t> tagged = with_segment_after_soi(jpg, exif_app1(o, big_endian));
            CHECK(jpeg_exif_orientation(tagged.data(), tagged.size()) == o);
            // Default: llama.cpp's pixels, orientation ignored.
            auto plain = image_decode_memory(tagged.data(), tagged.size(), "tagged.jpg");
            REQUIRE(plain.is_ok());
            CHECK(max_abs_diff_u8(*plain, ref) == 0);
            ImageDecodeOptions opt;
            opt.apply_exif_orientation = true;
            auto oriented = image_decode_memory(tagged.data(), tagged.size(), "tagged.jpg", opt);
            REQUIRE(oriented.is_ok());
            CHECK(oriented->width == (o >= 5 ? 200 : 300));
            CHECK(max_abs_diff_u8(*oriented, image_apply_exif_orientation(ref, o)) == 0);
        }
    }
    // Malformed Exif data means "no orientation", never a read past the segment.
    std::vector<uint8_t> seg = exif_app1(6, false);
    for (size_t cut = 4; cut < seg.size(); ++cut) {
        std::vector<uint8_t> shortened(seg.begin(), seg.begin() + cut);
        shortened[2] = static_cast<uint8_t>((cut - 2) >> 8);  // consistent segment length
        shortened[3] = static_cast<uint8_t>(cut - 2);
        const std::vector<uint8_t> tagged = with_segment_after_soi(jpg, shortened);
        const int o = jpeg_exif_orientation(tagged.data(), tagged.size());
        CHECK((o == 1 || o == 6));
        // The file itself, cut at the same point, must not make the parser overrun.
        std::vector<uint8_t> head(tagged.begin(), tagged.begin() + 2 + cut);
        CHECK(jpeg_exif_orientation(head.data(), head.size()) >= 1);
    }
    std::vector<uint8_t> bad_offset = exif_app1(6, false);
    bad_offset[4 + 6 + 4] = 0xF0;  // IFD0 offset far past the segment
    const std::vector<uint8_t> t1 = with_segment_after_soi(jpg, bad_offset);
    CHECK(jpeg_exif_orientation(t1.data(), t1.size()) == 1);
    std::vector<uint8_t> many_entries = exif_app1(6, false);
    many_entries[4 + 6 + 8] = 0xFF;  // entry count 0xFFFF with one entry present: tag found first
    many_entries[4 + 6 + 9] = 0xFF;
    const std::vector<uint8_t> t2 = with_segment_after_soi(jpg, many_entries);
    CHECK(jpeg_exif_orientation(t2.data(), t2.size()) == 6);
    CHECK(jpeg_exif_orientation(nullptr, 0) == 1);
    const uint8_t not_jpeg[] = {0x89, 'P', 'N', 'G'};
    CHECK(jpeg_exif_orientation(not_jpeg, sizeof not_jpeg) == 1);
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken input

TEST_CASE("bad input gives a clear error naming the file, never a crash") {
    TempDir tmp;
    const std::string g = test::golden_dir();
    auto expect_error = [](const Result<ImageU8>& r, const std::string& name) {
        CHECK(!r.is_ok());
        CHECK_MESSAGE(r.status().message().find(name) != std::string::npos, r.status().to_string());
    };

    SUBCASE("missing file, directory, empty file") {
        const std::string missing = tmp.file("does_not_exist.png");
        auto r = image_decode_file(missing);
        expect_error(r, missing);
        CHECK(r.status().code() == StatusCode::io_error);

        expect_error(image_decode_file(tmp.path.string()), tmp.path.string());

        const std::string empty = tmp.file("empty.jpg");
        write_bytes(empty, {});
        auto e = image_decode_file(empty);
        expect_error(e, empty);
        CHECK(e.status().code() == StatusCode::parse_error);
        CHECK(!image_decode_memory(nullptr, 0, "null.png").is_ok());
        CHECK(!image_decode_memory(nullptr, 10, "null.png").is_ok());
    }
    SUBCASE("random bytes and text") {
        Lcg rng(1234);
        for (int n : {1, 2, 7, 64, 1000, 20000}) {
            std::vector<uint8_t> junk(n);
            for (auto& b : junk) b = static_cast<uint8_t>(rng.next());
            const std::string path = tmp.file("junk_" + std::to_string(n) + ".png");
            write_bytes(path, junk);
            expect_error(image_decode_file(path), path);
        }
        const std::string text = "this is not an image, just some text\n";
        expect_error(image_decode_memory(reinterpret_cast<const uint8_t*>(text.data()), text.size(), "notes.txt"),
                     "notes.txt");
    }
    SUBCASE("truncated PNG") {
        const std::vector<uint8_t> png = test::read_file_bytes(g + "/smolvlm-tiny-f32/tiny.png");
        REQUIRE(png.size() > 100);
        // Cut in the signature, in IHDR, right after IHDR, inside IDAT, and just before IEND.
        for (size_t len : {size_t{1}, size_t{8}, size_t{16}, size_t{33}, size_t{41}, size_t{100}, png.size() / 2,
                           png.size() - 100, png.size() - 12}) {
            CAPTURE(len);
            std::vector<uint8_t> cut(png.begin(), png.begin() + len);
            const std::string path = tmp.file("cut_" + std::to_string(len) + ".png");
            write_bytes(path, cut);
            auto r = image_decode_file(path);
            expect_error(r, path);
        }
        // stb ignores chunk CRCs, so a file missing only the IEND CRC still holds every pixel
        // and decodes to the same image (a property of stb, and of llama.cpp).
        std::vector<uint8_t> no_crc(png.begin(), png.end() - 4);
        auto r = image_decode_memory(no_crc.data(), no_crc.size(), "no_crc.png");
        REQUIRE(r.is_ok());
        CHECK(max_abs_diff_u8(*r, load_golden_bitmap(g + "/smolvlm-tiny-f32/tiny__describe", 0)) == 0);
    }
    SUBCASE("truncated JPEG") {
        const std::vector<uint8_t> jpg = test::read_file_bytes(g + "/smolvlm-tiny-f32/chelsea_300x200.jpg");
        REQUIRE(jpg.size() > 1000);
        for (size_t len : {size_t{2}, size_t{3}, size_t{20}, size_t{200}, size_t{600}, jpg.size() / 2, jpg.size() - 2,
                           jpg.size() - 1}) {
            CAPTURE(len);
            std::vector<uint8_t> cut(jpg.begin(), jpg.begin() + len);
            const std::string path = tmp.file("cut_" + std::to_string(len) + ".jpg");
            write_bytes(path, cut);
            expect_error(image_decode_file(path), path);
        }
    }
    SUBCASE("headers claiming absurd dimensions are rejected before decoding") {
        const std::string huge = tmp.file("huge_100000x100000.png");
        write_bytes(huge, png_with_header(100000, 100000));
        auto r = image_decode_file(huge);
        expect_error(r, huge);
        CHECK(r.status().code() == StatusCode::out_of_range);

        // Within stb's own limit but above ours: 16385 px wide.
        auto wide = png_with_header(kImageMaxSide + 1, 16);
        auto w = image_decode_memory(wide.data(), wide.size(), "wide.png");
        expect_error(w, "wide.png");
        CHECK(w.status().code() == StatusCode::out_of_range);
        CHECK(w.status().message().find("16385x16") != std::string::npos);

        // A JPEG whose SOF0 claims 20000x20000 (1.2 GB of RGB; stb's header check accepts it).
        std::vector<uint8_t> jpg = test::read_file_bytes(g + "/smolvlm-tiny-f32/chelsea_300x200.jpg");
        const size_t sof = find_jpeg_marker(jpg, 0xC0);
        REQUIRE(sof != std::string::npos);
        jpg[sof + 5] = 20000 >> 8;  // height
        jpg[sof + 6] = 20000 & 0xFF;
        jpg[sof + 7] = 20000 >> 8;  // width
        jpg[sof + 8] = 20000 & 0xFF;
        auto j = image_decode_memory(jpg.data(), jpg.size(), "big.jpg");
        expect_error(j, "big.jpg");
        CHECK(j.status().code() == StatusCode::out_of_range);
        CHECK(j.status().message().find("20000x20000") != std::string::npos);

        // Within every size limit, but 4000x4000 pixels cannot come out of a 68-byte file.
        auto dense = png_with_header(4000, 4000);
        auto d = image_decode_memory(dense.data(), dense.size(), "dense.png");
        expect_error(d, "dense.png");
        CHECK(d.status().message().find("4000x4000") != std::string::npos);

        // A caller may lower the limits.
        ImageDecodeOptions small;
        small.max_side = 100;
        auto s = image_decode_file(g + "/smolvlm-tiny-f32/chelsea_300x200.jpg", small);
        CHECK(!s.is_ok());
        CHECK(s.status().code() == StatusCode::out_of_range);
    }
}

TEST_CASE("JPEGs that Debian's stb 2.27 would mishandle are rejected before stb sees them") {
    // stb 2.27 (fixed in 2.28) writes past its Huffman tables for a DHT declaring more than 256
    // codes, and decodes with uninitialized tables when a scan uses one never defined. Both are
    // invalid JPEG; glimpse refuses them with a parse error instead of calling stb.
    const std::string g = test::golden_dir();
    const std::vector<uint8_t> jpg = test::read_file_bytes(g + "/smolvlm-tiny-f32/chelsea_300x200.jpg");
    const size_t dht = find_jpeg_marker(jpg, 0xC4);
    REQUIRE(dht != std::string::npos);

    std::vector<uint8_t> oversized = jpg;
    for (size_t i = 0; i < 16; ++i) oversized[dht + 5 + i] = 0xFF;  // 16 x 255 = 4080 codes
    auto a = image_decode_memory(oversized.data(), oversized.size(), "oversized_dht.jpg");
    CHECK(!a.is_ok());
    CHECK(a.status().code() == StatusCode::parse_error);
    CHECK(a.status().message().find("oversized_dht.jpg") != std::string::npos);
    CHECK(a.status().message().find("Huffman table with 4080 codes") != std::string::npos);

    // Drop every DHT segment: the scan then refers to tables that do not exist.
    std::vector<uint8_t> no_tables(jpg.begin(), jpg.begin() + 2);
    size_t pos = 2;
    while (pos + 4 <= jpg.size() && jpg[pos] == 0xFF && jpg[pos + 1] != 0xDA) {
        const size_t len = size_t{jpg[pos + 2]} << 8 | jpg[pos + 3];
        if (jpg[pos + 1] != 0xC4) append(no_tables, std::vector<uint8_t>(jpg.begin() + pos, jpg.begin() + pos + 2 + len));
        pos += 2 + len;
    }
    append(no_tables, std::vector<uint8_t>(jpg.begin() + pos, jpg.end()));
    REQUIRE(no_tables.size() < jpg.size());
    auto b = image_decode_memory(no_tables.data(), no_tables.size(), "no_dht.jpg");
    CHECK(!b.is_ok());
    CHECK(b.status().message().find("not defined") != std::string::npos);
}

TEST_CASE("corrupted images never crash the decoder") {
    // Deterministic byte mutations of the golden PNG and JPEG. Whatever stb makes of them, the
    // result is either a consistent image or an error naming the input. (Run under valgrind or
    // ASan to check for out-of-bounds reads; see the commit message.)
    const std::string g = test::golden_dir();
    Lcg rng(42);
    int n_ok = 0, n_err = 0;
    for (const char* file : {"smolvlm-tiny-f32/tiny.png", "smolvlm-tiny-f32/chelsea_300x200.jpg"}) {
        const std::vector<uint8_t> orig = test::read_file_bytes(g + "/" + file);
        REQUIRE(!orig.empty());
        for (int trial = 0; trial < 150; ++trial) {
            std::vector<uint8_t> bytes = orig;
            const int n_flips = 1 + static_cast<int>(rng.next() % 8);
            for (int f = 0; f < n_flips; ++f) {
                // Half the mutations hit the headers, where the structure lives.
                const size_t span = (rng.next() & 1) ? std::min<size_t>(bytes.size(), 700) : bytes.size();
                bytes[rng.next() % span] = static_cast<uint8_t>(rng.next());
            }
            if (rng.next() % 4 == 0) bytes.resize(1 + rng.next() % bytes.size());
            auto r = image_decode_memory(bytes.data(), bytes.size(), "mutant");
            if (r.is_ok()) {
                ++n_ok;
                CHECK(r->width > 0);
                CHECK(r->height > 0);
                CHECK(r->rgb.size() == r->n_bytes());
            } else {
                ++n_err;
                CHECK(r.status().message().find("mutant") != std::string::npos);
            }
        }
    }
    CHECK(n_ok + n_err == 300);
    MESSAGE("mutated images: " << n_ok << " decoded, " << n_err << " rejected");
}

namespace {

// Fills `n` bytes of stack below the caller's frame with `byte` (the frames of a decoder called
// next from the same depth reuse them), so stack memory a decoder reads without writing it first
// holds `byte` instead of whatever the fresh pages held (zeros).
__attribute__((noinline)) void poison_stack(uint8_t byte) {
    volatile uint8_t area[256 * 1024];
    for (size_t i = 0; i < sizeof(area); ++i) area[i] = byte;
}

// Decodes with both stack and heap (glibc M_PERTURB: fresh allocations filled with ~byte)
// poisoned with `byte`, then restores the heap default.
Result<ImageU8> decode_poisoned(const std::string& path, uint8_t byte) {
    mallopt(M_PERTURB, byte);
    poison_stack(byte);
    Result<ImageU8> r = image_decode_file(path);
    mallopt(M_PERTURB, 0);
    return r;
}

// Runs `body` in a forked child and returns its wait status; the child exits with body()'s
// value, or dies by SIGALRM if it is still running after `seconds` (a blocked open or read).
int run_in_child(int seconds, const std::function<int()>& body) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(static_cast<unsigned>(seconds));
        _exit(body());
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return status;
}

std::string hostile_dir() { return test::source_dir() + "/tests/data/hostile"; }

}  // namespace

TEST_CASE("palette PNGs with pixels past the palette decode to black, identically on every run") {
    // Issue 21: stb 2.27 expands palette indices through an uninitialised stack array, so a
    // 2-entry palette with pixels of index 200 gave different pixels (and captions) per run.
    // The expected pixels are worked out by hand from tests/data/hostile/make_hostile_images.py:
    // an index with a palette entry gives that entry, any other index black (what libpng gives).
    using Px = std::array<uint8_t, 3>;
    const Px R{255, 0, 0}, G{0, 255, 0}, B{0, 0, 255}, W{255, 255, 255}, K{0, 0, 0};
    struct Case {
        const char* file;
        int width, height;
        std::vector<Px> pixels;
    };
    const Case cases[] = {
        {"palette_index200.png", 4, 2, {R, B, K, B, K, R, B, K}},  // indices 0 1 200 1 / 200 0 1 255
        {"palette4_short.png", 5, 1, {R, G, B, K, K}},             // 4-bit: 0 1 2 3 15, 3 entries
        {"palette1_one_entry.png", 3, 2, {W, K, W, K, K, W}},      // 1-bit: 0 1 0 / 1 1 0, 1 entry
        {"palette_trns_index200.png", 3, 1, {R, K, B}},            // with tRNS: 0 200 1
    };
    for (const Case& c : cases) {
        CAPTURE(c.file);
        const std::string path = hostile_dir() + "/" + c.file;
        for (uint8_t poison : {uint8_t{0xA5}, uint8_t{0x5A}}) {
            CAPTURE(int(poison));
            auto r = decode_poisoned(path, poison);
            REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
            REQUIRE(r->width == c.width);
            REQUIRE(r->height == c.height);
            for (int i = 0; i < c.width * c.height; ++i) {
                CAPTURE(i);
                const uint8_t* p = r->rgb.data() + 3 * i;
                CHECK(Px{p[0], p[1], p[2]} == c.pixels[static_cast<size_t>(i)]);
            }
        }
    }
}

TEST_CASE("PNGs with truncated or short pixel data, or two palettes, are errors") {
    for (const char* file : {"truncated_idat.png", "short_idat.png"}) {
        CAPTURE(file);
        const std::string path = hostile_dir() + "/" + file;
        auto r = decode_poisoned(path, 0xA5);
        test::check_error(r.status(), StatusCode::parse_error, path);
    }
    // A second PLTE chunk (the PNG spec allows one; libpng refuses the file too).
    std::vector<uint8_t> png = test::read_file_bytes(hostile_dir() + "/palette_index200.png");
    const size_t plte = 8 + 25;  // after the signature and IHDR
    REQUIRE(std::string(png.begin() + plte + 4, png.begin() + plte + 8) == "PLTE");
    const std::vector<uint8_t> chunk(png.begin() + plte, png.begin() + plte + 12 + 6);
    png.insert(png.begin() + plte + chunk.size(), chunk.begin(), chunk.end());
    auto r = image_decode_memory(png.data(), png.size(), "two_plte.png");
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message().find("two_plte.png: corrupt PNG: more than one PLTE chunk") != std::string::npos);
}

TEST_CASE("non-regular files are refused before reading, and image files are capped at 64 MiB") {
    TempDir tmp;
    SUBCASE("a FIFO does not block") {
        const std::string fifo = tmp.file("camera.fifo");
        REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
        const int status = run_in_child(10, [&] {
            auto r = image_decode_file(fifo);
            const bool ok = !r.is_ok() && r.status().code() == StatusCode::io_error &&
                            r.status().message() == fifo + ": is a FIFO (named pipe); an image must be a regular file";
            if (!ok) std::fprintf(stderr, "%s\n", r.is_ok() ? "decoded" : r.status().to_string().c_str());
            return ok ? 0 : 1;
        });
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    SUBCASE("/dev/zero is refused without reading it") {
        auto r = image_decode_file("/dev/zero");
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.status().message() == "/dev/zero: is a character device; an image must be a regular file");
    }
    SUBCASE("a directory") {
        auto r = image_decode_file(tmp.path.string());
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.status().message().find("is a directory") != std::string::npos);
    }
    SUBCASE("a file over 64 MiB is refused by its size, before it is read") {
        const std::string big = tmp.file("big.png");
        const int fd = ::open(big.c_str(), O_CREAT | O_WRONLY, 0600);
        REQUIRE(fd >= 0);
        REQUIRE(ftruncate(fd, (off_t{64} << 20) + 1) == 0);  // sparse: no disk used
        ::close(fd);
        auto r = image_decode_file(big);
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.status().code() == StatusCode::out_of_range);
        CHECK(r.status().message().find("67108865 bytes, above the limit of 67108864 bytes (64 MiB) for an image") !=
              std::string::npos);
        // Exactly at the limit it is read (and then fails as an image: it is all zeros).
        REQUIRE(::truncate(big.c_str(), off_t{64} << 20) == 0);
        auto at = image_decode_file(big);
        REQUIRE_FALSE(at.is_ok());
        CHECK(at.status().code() == StatusCode::parse_error);
    }
}

TEST_CASE("JPEGs whose scans leave a component uncoded are rejected; complete ones decode to grey") {
    // tests/data/hostile/make_hostile_images.py: 8x8, 3 components, every coded block is
    // "DC difference 0, end of block". Y = Cb = Cr = 128 after the inverse DCT and level shift,
    // so a complete file is (128, 128, 128) everywhere. Files whose scans skip components 2
    // and 3 made stb convert uninitialised heap memory (valgrind: 7 reports each).
    for (const char* file : {"jpeg_all_components.jpg", "jpeg_progressive_dc.jpg"}) {
        CAPTURE(file);
        for (uint8_t poison : {uint8_t{0xA5}, uint8_t{0x5A}}) {
            auto r = decode_poisoned(hostile_dir() + "/" + file, poison);
            REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
            REQUIRE(r->width == 8);
            REQUIRE(r->height == 8);
            CHECK(std::all_of(r->rgb.begin(), r->rgb.end(), [](uint8_t v) { return v == 128; }));
        }
    }
    const std::pair<const char*, const char*> bad[] = {
        {"jpeg_missing_components.jpg", "corrupt JPEG: component 2 (id 2) is not coded by any scan"},
        {"jpeg_progressive_missing.jpg", "corrupt JPEG: component 2 (id 2) is not coded by any DC first scan"},
    };
    for (const auto& [file, reason] : bad) {
        CAPTURE(file);
        const std::string path = hostile_dir() + "/" + file;
        auto r = decode_poisoned(path, 0xA5);
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.status().code() == StatusCode::parse_error);
        CHECK(r.status().message() == path + ": " + reason);
    }
}

TEST_CASE("Radiance HDR files that would hang stb or leave pixels unread are rejected") {
    // tests/data/hostile/make_hostile_images.py. The valid file, by hand: RGBE (128,128,128,129)
    // is 1.0 per channel and stb maps HDR to 8 bits as (v^(1/2.2))*255 + 0.5 -> 255; RGBE 0 -> 0.
    auto ok = decode_poisoned(hostile_dir() + "/hdr_valid.hdr", 0xA5);
    REQUIRE_MESSAGE(ok.is_ok(), ok.status().to_string());
    REQUIRE(ok->width == 8);
    REQUIRE(ok->height == 2);
    CHECK(std::all_of(ok->rgb.begin(), ok->rgb.begin() + 24, [](uint8_t v) { return v == 255; }));
    CHECK(std::all_of(ok->rgb.begin() + 24, ok->rgb.end(), [](uint8_t v) { return v == 0; }));

    // stb 2.27 loops forever on the first two (a run count of 0; zeros read past the end), so
    // each is decoded in a child that an alarm ends.
    const std::pair<const char*, const char*> bad[] = {
        {"hdr_zero_run.hdr", "corrupt Radiance HDR: scanline 1 holds a run of length 0"},
        {"hdr_truncated.hdr", "corrupt Radiance HDR: scanline 1 ends early (file ends at byte 71)"},
        {"hdr_flat_truncated.hdr", "corrupt Radiance HDR: pixel data ends after 20 of 32 bytes"},
    };
    for (const auto& [file, reason] : bad) {
        CAPTURE(file);
        const std::string path = hostile_dir() + "/" + file;
        const int status = run_in_child(10, [&] {
            auto r = image_decode_file(path);
            const bool rejected = !r.is_ok() && r.status().code() == StatusCode::parse_error &&
                                  r.status().message() == path + ": " + reason;
            if (!rejected) std::fprintf(stderr, "%s\n", r.is_ok() ? "decoded" : r.status().to_string().c_str());
            return rejected ? 0 : 1;
        });
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
}

TEST_CASE("binary PPM files cut short are rejected; a complete one decodes to its bytes") {
    // tests/data/hostile/make_hostile_images.py: a P6 file's samples are the RGB bytes themselves.
    auto ok = decode_poisoned(hostile_dir() + "/ppm_valid.ppm", 0xA5);
    REQUIRE_MESSAGE(ok.is_ok(), ok.status().to_string());
    CHECK(ok->width == 2);
    CHECK(ok->height == 1);
    CHECK(ok->rgb == std::vector<uint8_t>{10, 20, 30, 40, 50, 60});
    // stb 2.27 ignores the short read and returns 5 unwritten bytes of its buffer.
    const std::string path = hostile_dir() + "/ppm_truncated.ppm";
    auto r = decode_poisoned(path, 0xA5);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == StatusCode::parse_error);
    CHECK(r.status().message() == path + ": corrupt PGM/PPM: pixel data ends after 7 of 12 bytes");
}

TEST_CASE("fuzzer-found inputs (tests/data/regressions/image) give a clear error before stb misbehaves") {
    // Each file made fuzz_image fail inside Debian's stb 2.27 (tests/fuzz/README.md): a heap
    // over-read, two kinds of undefined behaviour and a 2 GiB allocation. Each must now be a
    // parse error that names the file and says what is wrong, decided before stb decodes it.
    struct Case {
        const char* file;
        const char* reason;  // the part of the message that names the defect
    };
    const Case cases[] = {
        // P5 2x1 maxval 677 with its 4 data bytes: stb over-reads its 8-bit RGB buffer as 16-bit.
        {"pnm_maxval_677_heap_overread.pgm",
         "corrupt PGM/PPM: maximum sample value 677 needs 16-bit samples, which are not supported (at most 255)"},
        // FF FF D8: stb skips the fill byte and takes it for a JPEG; its DHT declares > 256 codes.
        {"jpeg_fill_before_soi_dht_overflow.jpg", "corrupt JPEG: Huffman table with"},
        // Corrupt Huffman data: stb's bit count goes negative ("shift exponent 32").
        {"jpeg_huffman_shift_exponent_32.jpg", "corrupt JPEG: premature end of data segment (libjpeg-turbo)"},
        // An IDAT chunk header claiming ~1-2 GB: stb reallocs 2 GiB before reading it.
        {"png_idat_length_2gb_realloc.png", "corrupt PNG: chunk '"},
        // "P5" and 108 digits: stb parses the width into an int, signed overflow (UBSan).
        {"pnm_header_int_overflow.pgm",
         "corrupt PGM/PPM: a header number is above 2147483647 (width, height or maximum sample value)"},
        // A zero-length first IDAT: stb computes NULL + 0.
        {"png_empty_idat_null_offset.png", "corrupt PNG: empty IDAT chunk at byte 33 before any image data"},
        // A 5x1 baseline JPEG whose one scan covers all components, then a second, shorter scan:
        // stb decodes it too and runs out of bits ("shift exponent 32"; CI, 2026-12-07).
        {"jpeg_second_scan_after_baseline.jpg",
         "corrupt JPEG: Didn't expect more than one scan (libjpeg-turbo)"},
    };
    for (const Case& c : cases) {
        const std::string path = test::source_dir() + "/tests/data/regressions/image/" + c.file;
        CAPTURE(path);
        auto r = image_decode_file(path);
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.status().code() == StatusCode::parse_error);
        CHECK_MESSAGE(r.status().message().rfind(path + ": ", 0) == 0, r.status().message());
        CHECK_MESSAGE(r.status().message().find(c.reason) != std::string::npos, r.status().message());
    }
}

TEST_CASE("a JPEG with FF fill bytes before SOI gets the same checks and the same pixels") {
    // stb decodes `FF FF FF D8 ...` as a JPEG (fill bytes may precede any marker). The golden
    // JPEG with three fill bytes in front decodes to exactly the golden bitmap, and its header
    // size is checked against the limits like any JPEG's.
    const std::string g = test::golden_dir();
    const std::vector<uint8_t> jpg = test::read_file_bytes(g + "/smolvlm-tiny-f32/chelsea_300x200.jpg");
    REQUIRE(jpg.size() > 4);
    std::vector<uint8_t> filled = {0xFF, 0xFF, 0xFF};
    append(filled, jpg);
    auto plain = image_decode_memory(jpg.data(), jpg.size(), "plain.jpg");
    auto padded = image_decode_memory(filled.data(), filled.size(), "filled.jpg");
    REQUIRE_MESSAGE(plain.is_ok(), plain.status().to_string());
    REQUIRE_MESSAGE(padded.is_ok(), padded.status().to_string());
    CHECK(max_abs_diff_u8(*plain, *padded) == 0);
    ImageDecodeOptions small;
    small.max_side = 100;  // the header says 300x200
    auto capped = image_decode_memory(filled.data(), filled.size(), "filled.jpg", small);
    test::check_error(capped.status(), StatusCode::out_of_range, "claims 300x200 pixels");
}

TEST_CASE("JPEGs with corrupt entropy-coded data are refused; complete ones keep stb's exact pixels") {
    // The golden JPEG's scan data cut in half (then EOI): libjpeg-turbo reports the premature
    // end, so stb never decodes it. Garbage Huffman bits in the middle of the scan: a bad code.
    const std::string g = test::golden_dir();
    const std::vector<uint8_t> jpg = test::read_file_bytes(g + "/smolvlm-tiny-f32/chelsea_300x200.jpg");
    const size_t sos = find_jpeg_marker(jpg, 0xDA);
    REQUIRE(sos != std::string::npos);
    const size_t scan_start = sos + 2 + (size_t{jpg[sos + 2]} << 8 | jpg[sos + 3]);
    REQUIRE(scan_start + 100 < jpg.size());

    // The file named `name` is refused as a parse error with exactly `message`.
    auto check_refused = [](const std::vector<uint8_t>& bytes, const char* name, const std::string& message) {
        auto r = image_decode_memory(bytes.data(), bytes.size(), name);
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.status().code() == StatusCode::parse_error);
        CHECK_MESSAGE(r.status().message() == message, r.status().message());
    };
    std::vector<uint8_t> cut(jpg.begin(), jpg.begin() + static_cast<std::ptrdiff_t>((scan_start + jpg.size()) / 2));
    append(cut, std::vector<uint8_t>{0xFF, 0xD9});
    check_refused(cut, "cut.jpg", "cut.jpg: corrupt JPEG: premature end of data segment (libjpeg-turbo)");

    // Extraneous bytes after the scan (before EOI) are a warning libjpeg-turbo tolerates, and so
    // does stb: the file still decodes, to the same pixels.
    std::vector<uint8_t> trailing(jpg.begin(), jpg.end() - 2);
    append(trailing, std::vector<uint8_t>{0x00, 0x00, 0x00, 0xFF, 0xD9});
    auto b = image_decode_memory(trailing.data(), trailing.size(), "trailing.jpg");
    auto ref = image_decode_memory(jpg.data(), jpg.size(), "ref.jpg");
    REQUIRE_MESSAGE(b.is_ok(), b.status().to_string());
    REQUIRE(ref.is_ok());
    CHECK(max_abs_diff_u8(*b, *ref) == 0);

    // The golden JPEG is baseline with all three components in its one scan. Its scan (SOS and
    // data) repeated before EOI is a second scan the standard does not allow there; stb would
    // decode it over the first (and a shorter copy runs stb out of bits), so it is refused.
    std::vector<uint8_t> two_scans(jpg.begin(), jpg.end() - 2);
    append(two_scans, std::vector<uint8_t>(jpg.begin() + static_cast<std::ptrdiff_t>(sos), jpg.end()));
    check_refused(two_scans, "two_scans.jpg",
                  "two_scans.jpg: corrupt JPEG: Didn't expect more than one scan (libjpeg-turbo)");

    // Without its EOI the file ends before the end marker: refused (stb refuses it as well).
    std::vector<uint8_t> no_eoi(jpg.begin(), jpg.end() - 2);
    auto d = image_decode_memory(no_eoi.data(), no_eoi.size(), "no_eoi.jpg");
    REQUIRE_FALSE(d.is_ok());
    CHECK(d.status().code() == StatusCode::parse_error);
}

TEST_CASE("PNG chunks are checked against the file's length before stb allocates for them") {
    // A valid PNG whose IDAT length field is raised far past the end of the file: stb would
    // realloc for the claimed length first. The error names the chunk and both sizes.
    ImageU8 img = solid(4, 3, 10, 20, 30);
    TempDir dir;
    const std::string path = dir.file("ok.png");
    REQUIRE(image_write_png(path, img).is_ok());
    std::vector<uint8_t> png = test::read_file_bytes(path);
    size_t idat = 8;
    while (idat + 8 <= png.size() && std::memcmp(png.data() + idat + 4, "IDAT", 4) != 0) {
        idat += 12 + (size_t{png[idat]} << 24 | size_t{png[idat + 1]} << 16 | size_t{png[idat + 2]} << 8 | png[idat + 3]);
    }
    REQUIRE(idat + 8 <= png.size());
    png[idat] = 0x7F;  // length 0x7F.. (about 2 GB)
    auto r = image_decode_memory(png.data(), png.size(), "huge_idat.png");
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == StatusCode::parse_error);
    const std::string expected = str_printf("huge_idat.png: corrupt PNG: chunk 'IDAT' at byte %zu declares %u bytes of data, but only %zu remain in the file",
                                            idat, 0x7F000000u | (uint32_t{png[idat + 1]} << 16 | uint32_t{png[idat + 2]} << 8 | png[idat + 3]),
                                            png.size() - idat - 8);
    CHECK(r.status().message() == expected);
}
