// Cache-line-aligned heap buffers for arenas, caches and packed weights.
#pragma once

#include <cstddef>
#include <cstdint>

namespace glimpse {

constexpr size_t kBufferAlignment = 64;

// nullptr when bytes == 0 or the allocation fails. Contents are zeroed.
uint8_t* aligned_buffer_alloc(size_t bytes);
// The same without zeroing (no page is touched): the caller writes the buffer before
// anything reads it. aligned_buffer_bytes(bytes) is the size actually allocated.
uint8_t* aligned_buffer_alloc_uninitialized(size_t bytes);
size_t aligned_buffer_bytes(size_t bytes);
void aligned_buffer_free(uint8_t* p);

inline constexpr int64_t align_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

}  // namespace glimpse
