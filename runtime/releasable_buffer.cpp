#include "runtime/releasable_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <utility>

namespace glimpse {

ReleasableBuffer::~ReleasableBuffer() {
    if (data_) ::munmap(data_, mapped_);
}

ReleasableBuffer::ReleasableBuffer(ReleasableBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)),
      resident_(other.resident_) {}

ReleasableBuffer& ReleasableBuffer::operator=(ReleasableBuffer&& other) noexcept {
    if (this != &other) {
        if (data_) ::munmap(data_, mapped_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        mapped_ = std::exchange(other.mapped_, 0);
        resident_ = other.resident_;
    }
    return *this;
}

Result<ReleasableBuffer> ReleasableBuffer::allocate(size_t bytes) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t mapped = (bytes + page - 1) / page * page;
    ReleasableBuffer b;
    if (mapped == 0) return b;
    void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    GLIMPSE_CHECK_OR_RETURN(p != MAP_FAILED, resource_exhausted, "cannot map %zu bytes of memory", bytes);
    b.data_ = static_cast<uint8_t*>(p);
    b.size_ = bytes;
    b.mapped_ = mapped;
    return b;
}

void ReleasableBuffer::release() {
    if (data_) ::madvise(data_, mapped_, MADV_DONTNEED);
    resident_ = false;
}

}  // namespace glimpse
