#include "runtime/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace glimpse {

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::error(StatusCode::io_error, "%s: cannot open: %s", path.c_str(), std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        return Status::error(StatusCode::io_error, "%s: cannot stat: %s", path.c_str(), std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Status::error(StatusCode::io_error, "%s: not a regular file", path.c_str());
    }
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->name_ = path;
    file->size_ = static_cast<size_t>(st.st_size);
    if (file->size_ > 0) {
        void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            ::close(fd);
            return Status::error(StatusCode::io_error, "%s: cannot mmap %zu bytes: %s", path.c_str(), file->size_,
                                 std::strerror(err));
        }
        file->mapping_ = p;
        file->data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
    return file;
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(std::vector<uint8_t> bytes, std::string name) {
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->owned_ = std::move(bytes);
    file->data_ = file->owned_.data();
    file->size_ = file->owned_.size();
    file->name_ = std::move(name);
    return file;
}

MappedFile::~MappedFile() {
    if (mapping_) ::munmap(mapping_, size_);
}

void MappedFile::release_resident_pages() const {
    if (mapping_) ::madvise(mapping_, size_, MADV_DONTNEED);
}

void MappedFile::release_resident_range(const void* p, size_t n) const {
    if (!mapping_) return;
    const auto begin = reinterpret_cast<uintptr_t>(p), base = reinterpret_cast<uintptr_t>(mapping_);
    if (begin < base || begin + n > base + size_) return;
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t first = (begin + page - 1) / page * page, last = (begin + n) / page * page;
    if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace glimpse
