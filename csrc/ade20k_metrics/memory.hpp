// Zero-filled memory for working tables too large to keep between calls.
//
// Large blocks are anonymous mappings: their pages are zero until written, so
// a table of which a call touches little costs little time and resident
// memory, and all of it goes back to the system when freed.  (calloc may
// instead hand out heap memory it must clear first, and keep it after free.)
// Under AddressSanitizer everything comes from calloc, so overruns are caught.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#define AM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AM_ASAN 1
#endif
#endif
#ifndef AM_ASAN
#define AM_ASAN 0
#endif

#if defined(_WIN32)
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#define AM_ZEROED_MAP 1
#elif defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define AM_ZEROED_MAP 1
#else
#define AM_ZEROED_MAP 0
#endif

namespace am {

template <class T>
class ZeroedArray {
public:
    ZeroedArray() = default;
    ZeroedArray(const ZeroedArray&) = delete;
    ZeroedArray& operator=(const ZeroedArray&) = delete;
    ~ZeroedArray() { release(); }

    // n zeroed elements, or false (nothing held) when memory runs out.  Never throws.
    bool allocate(size_t n) noexcept {
        release();
        if (n == 0) n = 1;
        if (n > SIZE_MAX / sizeof(T)) return false;
        bytes_ = n * sizeof(T);
#if AM_ZEROED_MAP && !AM_ASAN
        if (bytes_ >= kMapFrom) {
#if defined(_WIN32)
            void* p = VirtualAlloc(nullptr, bytes_, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
#else
            void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) p = nullptr;
#endif
            data_ = static_cast<T*>(p);
            mapped_ = data_ != nullptr;
            return mapped_;
        }
#endif
        data_ = static_cast<T*>(std::calloc(n, sizeof(T)));
        return data_ != nullptr;
    }

    T* data() const { return data_; }

private:
    static constexpr size_t kMapFrom = size_t(1) << 20;

    void release() noexcept {
        if (data_ == nullptr) return;
#if AM_ZEROED_MAP
        if (mapped_) {
#if defined(_WIN32)
            VirtualFree(data_, 0, MEM_RELEASE);
#else
            munmap(data_, bytes_);
#endif
        } else
#endif
        {
            std::free(data_);
        }
        data_ = nullptr;
        mapped_ = false;
    }

    T* data_ = nullptr;
    size_t bytes_ = 0;
    bool mapped_ = false;
};

}  // namespace am
