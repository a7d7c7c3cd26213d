// libFuzzer target: image decoding (runtime/image.*: stb_image behind glimpse's header checks
// and size caps, plus the EXIF orientation reader). Input: the bytes of an image file. A decode
// must fail with an error or give width*height*3 bytes within the caps; every pixel byte is
// read (so MemorySanitizer/valgrind would see uninitialised ones) and, with EXIF orientation
// on, the rotated image must have the swapped or equal dimensions.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "runtime/image.h"

using namespace glimpse;

namespace {

volatile uint64_t g_sink;

void check(const ImageU8& img, const ImageDecodeOptions& opt) {
    if (img.width <= 0 || img.height <= 0 || img.width > opt.max_side || img.height > opt.max_side ||
        static_cast<int64_t>(img.width) * img.height > opt.max_pixels || img.rgb.size() != img.n_bytes()) {
        std::abort();
    }
    uint64_t acc = 0;
    for (uint8_t b : img.rgb) acc += b;
    g_sink = acc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    ImageDecodeOptions opt;
    // Small caps keep each execution fast; the checks against the header are the same code.
    opt.max_side = 4096;
    opt.max_pixels = int64_t{1} << 22;
    auto r = image_decode_memory(data, size, "fuzz.img", opt);
    if (r.is_ok()) check(r.value(), opt);

    const int orientation = jpeg_exif_orientation(data, size);
    if (orientation < 1 || orientation > 8) std::abort();
    if (r.is_ok() && orientation != 1) {
        ImageU8 rotated = image_apply_exif_orientation(r.value(), orientation);
        const bool swapped = orientation >= 5;
        if (rotated.width != (swapped ? r.value().height : r.value().width) ||
            rotated.height != (swapped ? r.value().width : r.value().height) ||
            rotated.rgb.size() != r.value().rgb.size()) {
            std::abort();
        }
    }
    return 0;
}
