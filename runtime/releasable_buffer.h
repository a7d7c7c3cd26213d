// Private anonymous memory whose pages can be handed back to the OS while the address stays
// reserved, for copies a model makes once and then only needs again in rare cases: weights
// requantized at load (--numerics fast, models/gguf_weights.h) are read once by the kernel
// that repacks them, and the repacked copy is what runs. Their address is the key of that
// repacked copy (PackedWeightCache), so it must stay valid and stable even when the bytes are
// gone; the owner refills the bytes before anything reads them again.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/status.h"

namespace glimpse {

class ReleasableBuffer {
public:
    ReleasableBuffer() = default;
    ~ReleasableBuffer();
    ReleasableBuffer(ReleasableBuffer&& other) noexcept;
    ReleasableBuffer& operator=(ReleasableBuffer&& other) noexcept;
    ReleasableBuffer(const ReleasableBuffer&) = delete;
    ReleasableBuffer& operator=(const ReleasableBuffer&) = delete;

    // `bytes` of zeroed memory at a page-aligned address; an error naming the size if the
    // system refuses the mapping.
    static Result<ReleasableBuffer> allocate(size_t bytes);

    uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    // False after release() until the owner calls mark_filled() (after writing the bytes again).
    bool resident() const { return resident_; }

    // Returns the pages to the OS (madvise MADV_DONTNEED): the process's RSS drops by their
    // size; the address stays mapped and reads as zeros until written again.
    void release();
    void mark_filled() { resident_ = true; }

private:
    uint8_t* data_ = nullptr;
    size_t size_ = 0;      // as asked for
    size_t mapped_ = 0;    // whole pages
    bool resident_ = true;
};

}  // namespace glimpse
