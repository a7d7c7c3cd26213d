#include "runtime/aligned_buffer.h"

#include <cstdlib>
#include <cstring>

namespace glimpse {

uint8_t* aligned_buffer_alloc(size_t bytes) {
    if (bytes == 0) return nullptr;
    size_t rounded = (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
    void* p = std::aligned_alloc(kBufferAlignment, rounded);
    if (p) std::memset(p, 0, rounded);
    return static_cast<uint8_t*>(p);
}

void aligned_buffer_free(uint8_t* p) { std::free(p); }

}  // namespace glimpse
