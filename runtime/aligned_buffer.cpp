#include "runtime/aligned_buffer.h"

#include <cstdlib>
#include <cstring>

namespace glimpse {

size_t aligned_buffer_bytes(size_t bytes) { return (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment; }

uint8_t* aligned_buffer_alloc_uninitialized(size_t bytes) {
    if (bytes == 0) return nullptr;
    return static_cast<uint8_t*>(std::aligned_alloc(kBufferAlignment, aligned_buffer_bytes(bytes)));
}

uint8_t* aligned_buffer_alloc(size_t bytes) {
    uint8_t* p = aligned_buffer_alloc_uninitialized(bytes);
    if (p) std::memset(p, 0, aligned_buffer_bytes(bytes));
    return p;
}

void aligned_buffer_free(uint8_t* p) { std::free(p); }

}  // namespace glimpse
