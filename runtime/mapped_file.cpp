#include "runtime/mapped_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

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

// ---- SIGBUS guard (see the header) -------------------------------------------------------
// A fixed table the signal handler can read without locks: [begin, end) of each registered
// mapping, and whether a fault inside it was absorbed. begin == 0 is a free slot, 1 a slot
// being filled or emptied (never matched: no mapping starts at address 1).
constexpr int kGuardSlots = 1024;
struct GuardSlot {
    std::atomic<uintptr_t> begin{0};
    std::atomic<uintptr_t> end{0};
    std::atomic<bool> faulted{false};
};
GuardSlot g_guard[kGuardSlots];
struct sigaction g_previous_sigbus {};
uintptr_t g_page_size = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
std::mutex g_install_mutex;

void sigbus_handler(int sig, siginfo_t* info, void* context) {
    // si_code > 0: raised by the kernel for a memory access (si_addr is then the address);
    // a SIGBUS sent by kill() or raise() is never ours.
    const uintptr_t addr = info->si_code > 0 ? reinterpret_cast<uintptr_t>(info->si_addr) : 0;
    for (GuardSlot& slot : g_guard) {
        const uintptr_t begin = slot.begin.load(std::memory_order_acquire);
        if (begin <= 1 || addr < begin || addr >= slot.end.load(std::memory_order_acquire)) continue;
        // A page of our mapping the file no longer backs (truncated) or could not be read
        // (I/O error). Replace that page by a private zero page; the faulting load is then
        // restarted and reads zeros. mmap is a plain system call on Linux (not on POSIX's list
        // of async-signal-safe functions, but it touches no user-space state).
        void* page = reinterpret_cast<void*>(addr & ~(g_page_size - 1));
        if (::mmap(page, g_page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
            slot.faulted.store(true, std::memory_order_release);
            return;
        }
        break;
    }
    // Not ours: what would have happened without this handler.
    if ((g_previous_sigbus.sa_flags & SA_SIGINFO) && g_previous_sigbus.sa_sigaction) {
        g_previous_sigbus.sa_sigaction(sig, info, context);
        return;
    }
    if (g_previous_sigbus.sa_handler != SIG_DFL && g_previous_sigbus.sa_handler != SIG_IGN) {
        g_previous_sigbus.sa_handler(sig);
        return;
    }
    // Default action: restore it; returning re-executes the faulting access, which now
    // terminates the process as SIGBUS always did (an ignored SIGBUS from a fault would loop).
    ::signal(SIGBUS, SIG_DFL);
}

// Installs the handler unless it is the one in place. Checked at every registration, not
// once: a program (or a test framework) may have installed its own SIGBUS handler since, or
// restored an older one; the replaced handler still gets every fault outside our mappings.
void ensure_sigbus_handler() {
    std::lock_guard<std::mutex> lock(g_install_mutex);
    struct sigaction current {};
    ::sigaction(SIGBUS, nullptr, &current);
    if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == sigbus_handler) return;
    struct sigaction sa {};
    sa.sa_sigaction = sigbus_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous_sigbus);
}

int guard_register(const void* p, size_t n) {
    ensure_sigbus_handler();
    for (int i = 0; i < kGuardSlots; ++i) {
        uintptr_t expected = 0;
        if (!g_guard[i].begin.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
        g_guard[i].faulted.store(false, std::memory_order_relaxed);
        g_guard[i].end.store(reinterpret_cast<uintptr_t>(p) + n, std::memory_order_release);
        g_guard[i].begin.store(reinterpret_cast<uintptr_t>(p), std::memory_order_release);
        return i;
    }
    return -1;
}

void guard_unregister(int i) {
    g_guard[i].begin.store(1, std::memory_order_release);
    g_guard[i].end.store(0, std::memory_order_release);
    g_guard[i].faulted.store(false, std::memory_order_relaxed);
    g_guard[i].begin.store(0, std::memory_order_release);
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

Result<std::vector<uint8_t>> read_regular_file(const std::string& path, const char* what, int64_t max_bytes) {
    int64_t size = 0;
    GLIMPSE_ASSIGN_OR_RETURN(int fd, open_regular_file(path, what, &size));
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    if (size > max_bytes) {
        return Status::error(StatusCode::out_of_range, "%s: file has %lld bytes, above the limit of %lld bytes (%lld MiB) for %s "
                             "(it is read whole into memory, so it may be at most that size)",
                             path.c_str(), static_cast<long long>(size), static_cast<long long>(max_bytes),
                             static_cast<long long>(max_bytes >> 20), what);
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(size));
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            return Status::error(StatusCode::io_error, "%s: read failed after %zu bytes: %s", path.c_str(), done,
                                 std::strerror(errno));
        }
        if (n == 0) break;
        done += static_cast<size_t>(n);
    }
    bytes.resize(done);
    return bytes;
}

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
    int64_t size = 0;
    GLIMPSE_ASSIGN_OR_RETURN(int fd, open_regular_file(path, "a model file", &size));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        return Status::error(StatusCode::io_error, "%s: cannot stat: %s", path.c_str(), std::strerror(err));
    }
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->name_ = path;
    file->fd_ = fd;  // closed by the destructor from here on
    file->size_ = static_cast<size_t>(st.st_size);
    file->mtime_ = st.st_mtim;
    if (file->size_ > 0) {
        void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            return Status::error(StatusCode::io_error, "%s: cannot mmap %zu bytes: %s", path.c_str(), file->size_,
                                 std::strerror(errno));
        }
        file->mapping_ = p;
        file->data_ = static_cast<const uint8_t*>(p);
        file->guard_slot_ = guard_register(p, file->size_);
        GLIMPSE_CHECK_OR_RETURN(file->guard_slot_ >= 0, resource_exhausted,
                                "%s: more than %d model files are mapped at once", path.c_str(), kGuardSlots);
    }
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
    if (guard_slot_ >= 0) guard_unregister(guard_slot_);
    if (mapping_) ::munmap(mapping_, size_);
    if (fd_ >= 0) ::close(fd_);
}

Status MappedFile::check_intact() const {
    if (fd_ < 0) return Status::ok();
    if (guard_slot_ >= 0 && g_guard[guard_slot_].faulted.load(std::memory_order_acquire)) {
        struct stat now {};
        const long long now_size = ::fstat(fd_, &now) == 0 ? static_cast<long long>(now.st_size) : -1;
        return Status::error(StatusCode::io_error,
                             "%s: the file was truncated or could not be read while in use (%zu bytes when opened, "
                             "%lld now); its data is no longer trustworthy: load the model again",
                             name_.c_str(), size_, now_size);
    }
    struct stat now {};
    if (::fstat(fd_, &now) != 0) {
        return Status::error(StatusCode::io_error, "%s: cannot stat the open file: %s", name_.c_str(),
                             std::strerror(errno));
    }
    if (static_cast<size_t>(now.st_size) != size_ || now.st_mtim.tv_sec != mtime_.tv_sec ||
        now.st_mtim.tv_nsec != mtime_.tv_nsec) {
        return Status::error(StatusCode::io_error,
                             "%s: the file was modified while in use (%zu bytes when opened, %lld now); results "
                             "may mix old and new data: load the model again",
                             name_.c_str(), size_, static_cast<long long>(now.st_size));
    }
    return Status::ok();
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
