// Image files in and out: decoding to 8-bit RGB the way llama.cpp's mtmd helper does it
// (stb_image, 3 channels requested), with bounds on what a hostile file may make us allocate.
//
// Parity with llama.cpp (mtmd_helper_bitmap_init_from_file -> stbi_load_from_memory(..., 3)):
//   - every format stb_image reads (PNG, JPEG, BMP, GIF first frame, TGA, PSD, PNM, HDR, PIC);
//   - grey is replicated to R=G=B; an alpha channel is dropped, not composited over anything;
//   - 16-bit PNGs are reduced to 8 bits by stb (high byte); 16-bit PGM/PPM files are refused
//     (stb 2.27 over-reads its buffer on them);
//   - no colour management (ICC profiles, gamma chunks are ignored);
//   - a palette PNG pixel whose index has no palette entry decodes to black (0,0,0), as libpng
//     decodes it (stb 2.27 would read an uninitialised stack array there; see image.cpp);
//   - EXIF orientation is NOT applied. A phone photo stored sideways reaches the model sideways,
//     exactly as in llama.cpp. ImageDecodeOptions::apply_exif_orientation turns it on (JPEG only);
//     it is off by default so that glimpse and llama.cpp see the same pixels.
#pragma once

#include "runtime/status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace glimpse {

// 8-bit RGB image, row-major: rgb[(y * width + x) * 3 + c], c = R, G, B. rgb.size() == width*height*3.
struct ImageU8 {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> rgb;

    size_t n_bytes() const { return static_cast<size_t>(width) * static_cast<size_t>(height) * 3; }
    const uint8_t* pixel(int x, int y) const { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
    uint8_t* pixel(int x, int y) { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
};

// Limits checked against the file header before anything is decoded, so that a header that
// claims 100000x100000 pixels is rejected instead of allocating tens of gigabytes. 64 Mpixel
// covers camera photos; stb needs roughly twice the RGB size while decoding (~400 MiB here).
inline constexpr int kImageMaxSide = 16384;                    // pixels per side
inline constexpr int64_t kImageMaxPixels = int64_t{1} << 26;   // width*height (192 MiB of RGB)
// The largest image file read: 64 MiB (camera JPEGs are a few MiB; a 64-Mpixel PNG compresses
// below this). image_decode_file checks it with fstat before reading, and refuses anything that
// is not a regular file (FIFOs, devices, directories) without opening it for a blocking read.
inline constexpr int64_t kImageMaxFileBytes = int64_t{64} << 20;
// No format stb reads packs more pixels than this into one byte of file (the densest cases:
// a 1-bit PNG at deflate's 1032:1 limit, ~8300 pixels per byte; GIF's LZW, < 2800). A header
// claiming more is corrupt or hostile, and rejecting it caps what a small file can make us
// allocate (a 100-byte file: at most 1.6 Mpixel).
inline constexpr int64_t kImageMaxPixelsPerFileByte = 16384;

struct ImageDecodeOptions {
    // Rotate/mirror a JPEG according to its EXIF IFD0 Orientation tag (values 1..8).
    // Default false: llama.cpp ignores EXIF, and the golden data is only reproduced without it.
    bool apply_exif_orientation = false;
    int max_side = kImageMaxSide;
    int64_t max_pixels = kImageMaxPixels;
};

// Decodes an image file to 8-bit RGB. Errors (io_error, parse_error, out_of_range) name the path.
// Every output byte is computed from the file's bytes: inputs on which Debian's stb 2.27 would
// read memory it never initialised, read past a buffer, hit undefined behaviour, allocate for
// data that is not there, or never return, are made well-defined first (short PNG palettes) or
// refused before stb sees them (JPEG tables or components no scan defines, JPEG entropy-coded
// data that libjpeg-turbo finds corrupt or cut short, PNG chunks longer than the file or an
// empty first IDAT, 16-bit PGM/PPM, HDR zero-length runs or cut data, PGM/PPM cut short; see
// image.cpp). Data cut short in the other formats reads as zeros in stb, or fails there.
// Valid JPEGs are still decoded by stb, so their pixels are exactly llama.cpp's.
Result<ImageU8> image_decode_file(const std::string& path, const ImageDecodeOptions& options = {});

// Same, from bytes in memory. name_for_errors prefixes every error message.
Result<ImageU8> image_decode_memory(const uint8_t* data, size_t size, const std::string& name_for_errors,
                                    const ImageDecodeOptions& options = {});

// Writes an 8-bit RGB PNG (stb_image_write). Fails on an inconsistent image or an unwritable path.
Status image_write_png(const std::string& path, const ImageU8& image);

// EXIF orientation of a JPEG: the IFD0 Orientation tag (1..8), or 1 when the bytes are not a
// JPEG, carry no Exif APP1 segment, or the tag is missing or out of range. Every read is
// bounds-checked; malformed Exif data is treated as "no orientation".
int jpeg_exif_orientation(const uint8_t* data, size_t size);

// Returns `image` transformed for display according to EXIF orientation `orientation`:
//   1 identity, 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom,
//   5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
// Orientations 5..8 swap width and height. Values outside 1..8 return the image unchanged.
ImageU8 image_apply_exif_orientation(const ImageU8& image, int orientation);

}  // namespace glimpse
