// A read-only view of a whole file: mmap'd when possible, or an owned copy of
// bytes (for tests and in-memory inputs). Weights stay in the mapping for the
// lifetime of the model, so loading a model costs no copy.
//
// Files changing under a run. A mapped file that is truncated (or rewritten in place,
// which truncates first) while mapped makes every read of a page past its new end raise
// SIGBUS, which kills the process. What glimpse reads from a model's mapping after opening
// it: metadata and small tensors while loading, every large weight once when a plan packs it
// (the first caption, and again if a larger text plan is compiled later), the token
// embedding row of every prompt and generated token (TextDecoder::embed_token), and weights
// of any kernel without a packed layout, on every run, from the thread pool's workers.
// Copying whole models into memory would double what the memory report counts; guarding
// single reads with sigsetjmp cannot cover the worker threads and would skip C++
// destructors. So instead:
//   - a process-wide SIGBUS handler recognises faults inside a registered mapping and maps
//     a zero page over the faulting page (the read then returns zeros instead of killing the
//     process) and marks the file as damaged; faults elsewhere go to the previous handler or
//     the default action, exactly as without glimpse;
//   - the file stays open, and check_intact() (called by the models after loading, after
//     compiling a plan and after every forward pass, before any result is used) turns a
//     damaged mapping, or a size or modification time that differs from the one at open,
//     into an io_error. Results computed from the zero pages are therefore never returned.
// Replacing a file by rename (what `cp --remove-destination`, `mv` and most download tools
// do) leaves the old file's data mapped and is not a change. Limit: an in-place rewrite to
// the same size within one kernel clock tick (a few ms) of the open is not detected, since
// the modification time may not change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
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

// The whole content of the regular file `path` (opened as above, so a FIFO or device is refused
// without blocking), or an out_of_range error naming `what` when fstat reports more than
// `max_bytes`. Reads exactly the size fstat gave: a file that shrank meanwhile is read to its
// new end, one that grew only up to the old size.
Result<std::vector<uint8_t>> read_regular_file(const std::string& path, const char* what, int64_t max_bytes);

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

    // ok while every byte read from the mapping so far was the file's byte as it was when
    // opened, as far as can be told: no page fault past a shrunken end (or failed read) was
    // absorbed by the SIGBUS handler, and the file's size and modification time are those of
    // the open. Otherwise an io_error naming the file. Always ok for owned bytes.
    Status check_intact() const;

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
    int fd_ = -1;              // kept open for check_intact's fstat
    int guard_slot_ = -1;      // this mapping's entry in the SIGBUS handler's table
    struct timespec mtime_ {};
    std::vector<uint8_t> owned_;
    std::string name_;
};

}  // namespace glimpse
