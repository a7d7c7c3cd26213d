// Heap-allocation counter for tests that assert "no allocations in run()". Include it from
// exactly one .cpp of a test binary; it defines `g_allocations`, bumped once per allocation.
//
// Normal builds: the binary replaces the global operator new/new[] (and, with
// GLIMPSE_COUNT_C_ALLOCATIONS defined before the include, malloc, calloc, realloc and the
// aligned variants, through glibc's __libc_* entry points), counting every call.
//
// Sanitizer builds (GLIMPSE_SANITIZE, `make test-asan`): ASan owns malloc and operator new.
// Routing malloc to __libc_malloc hands ASan's free() pointers it never allocated ("attempting
// free on address which was not malloc()-ed"), and replacing operator new with malloc hides
// new/delete mismatches from it. There the counter is a sanitizer malloc hook instead, which
// ASan calls for every allocation, C and C++ alike, so the tests assert the same thing.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define GLIMPSE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GLIMPSE_TEST_ASAN 1
#endif
#endif

static std::atomic<long> g_allocations{0};

#if defined(GLIMPSE_TEST_ASAN)

extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, size_t),
                                                         void (*free_hook)(const volatile void*));

static void glimpse_test_count_allocation(const volatile void*, size_t) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
}
static void glimpse_test_ignore_free(const volatile void*) {}
// Installed before main(): every later allocation, wherever it comes from, is counted.
[[maybe_unused]] static const int glimpse_test_allocation_hook =
    __sanitizer_install_malloc_and_free_hooks(glimpse_test_count_allocation, glimpse_test_ignore_free);

#else

#if defined(GLIMPSE_COUNT_C_ALLOCATIONS)
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);

void* malloc(size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    void* p = __libc_memalign(a, n);
    if (!p) return 12;  // ENOMEM
    *out = p;
    return 0;
}
void free(void* p) { __libc_free(p); }
}
// operator new goes through the counted malloc.
#define GLIMPSE_TEST_COUNT_NEW 0
#else
#define GLIMPSE_TEST_COUNT_NEW 1
#endif

void* operator new(size_t n) {
    if (GLIMPSE_TEST_COUNT_NEW) g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](size_t n) {
    if (GLIMPSE_TEST_COUNT_NEW) g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

#endif
