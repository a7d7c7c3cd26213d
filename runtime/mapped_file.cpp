#include "runtime/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace glimpse {

namespace {

const char* file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

}  // namespace

Result<int> open_regular_file(const std::string& path, const char* what, int64_t* size) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return Status::error(StatusCode::io_error, "%s: cannot open: %s", path.c_str(), std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return Status::error(StatusCode::io_error, "%s: is %s; %s must be a regular file", path.c_str(),
                             file_kind(st.st_mode), what);
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return Status::error(StatusCode::io_error, "%s: cannot open: %s", path.c_str(), std::strerror(errno));
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        return Status::error(StatusCode::io_error, "%s: cannot stat: %s", path.c_str(), std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Status::error(StatusCode::io_error, "%s: is %s; %s must be a regular file", path.c_str(),
                             file_kind(st.st_mode), what);
    }
    *size = static_cast<int64_t>(st.st_size);
    return fd;
}

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
    int64_t size = 0;
    GLIMPSE_ASSIGN_OR_RETURN(int fd, open_regular_file(path, "a model file", &size));
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->name_ = path;
    file->size_ = static_cast<size_t>(size);
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
