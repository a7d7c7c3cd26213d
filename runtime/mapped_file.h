// A read-only view of a whole file: mmap'd when possible, or an owned copy of
// bytes (for tests and in-memory inputs). Weights stay in the mapping for the
// lifetime of the model, so loading a model costs no copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace glimpse {

// Opens `path` read-only for `what` ("a model file", "an image") and returns the descriptor
// (O_CLOEXEC; the caller closes it) and the file's size. Anything but a regular file is
// refused by stat() before it is opened, and again by fstat() after an open with O_NONBLOCK
// (a FIFO swapped in between cannot block the open): FIFOs would block forever, devices such
// as /dev/zero never end, and directories cannot be read.
Result<int> open_regular_file(const std::string& path, const char* what, int64_t* size);

class MappedFile {
public:
    static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
    static std::shared_ptr<MappedFile> from_bytes(std::vector<uint8_t> bytes, std::string name);

    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& name() const { return name_; }

    // Drops the mapping's resident pages (madvise MADV_DONTNEED; no-op for owned
    // bytes). The data stays readable: pages touched later are read again from the
    // file. Called once kernels have repacked the weights they use, so the
    // file's copy of those weights stops counting in the process's memory.
    void release_resident_pages() const;
    // The same for the whole pages inside [p, p + n), if that range lies in the mapping.
    void release_resident_range(const void* p, size_t n) const;

private:
    MappedFile() = default;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    void* mapping_ = nullptr;  // munmap on destruction when set
    std::vector<uint8_t> owned_;
    std::string name_;
};

}  // namespace glimpse
