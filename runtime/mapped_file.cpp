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

}  // namespace glimpse
