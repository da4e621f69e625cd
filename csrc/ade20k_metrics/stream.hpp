// The memory limit for the benchmark: read every byte of a buffer once,
// as fast as the machine allows, doing as little as possible with it.
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>

#include "change_mask.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace am {

namespace detail {

template <int Lanes>
inline uint64_t or_words(const uint64_t* w, int64_t n) {
    uint64_t acc[Lanes] = {};
    int64_t i = 0;
    for (; i + Lanes <= n; i += Lanes) {
        for (int l = 0; l < Lanes; ++l) acc[l] |= w[i + l];
    }
    uint64_t all = 0;
    for (int l = 0; l < Lanes; ++l) all |= acc[l];
    for (; i < n; ++i) all |= w[i];
    return all;
}

#if AM_HAVE_AVX2_DISPATCH
AM_AVX2 inline uint64_t or_words_avx2(const uint64_t* w, int64_t n) { return or_words<16>(w, n); }
#endif

}  // namespace detail

// OR of all 64-bit words (plus the tail bytes), so the reads cannot be elided.
// `data` must be 8-byte aligned.
inline uint64_t stream_read(const void* data, int64_t bytes, int n_threads) {
    const auto* p = static_cast<const unsigned char*>(data);
    const auto* words = static_cast<const uint64_t*>(data);
    const int64_t n_words = bytes / 8;
    const int64_t block = int64_t(1) << 16;
    const bool avx2 = cpu_has_avx2();
    const int64_t blocks = (n_words + block - 1) / block;
    auto read_block = [&](int64_t b) -> uint64_t {
        const int64_t lo = b * block, n = std::min(block, n_words - lo);
#if AM_HAVE_AVX2_DISPATCH
        if (avx2) return detail::or_words_avx2(words + lo, n);
#endif
        return detail::or_words<8>(words + lo, n);
    };
    uint64_t acc = 0;
    if (n_threads > 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) reduction(| : acc) schedule(static)
#endif
        for (int64_t b = 0; b < blocks; ++b) acc |= read_block(b);
    } else {  // one thread never enters an OpenMP region (fork safety)
        for (int64_t b = 0; b < blocks; ++b) acc |= read_block(b);
    }
    for (int64_t i = n_words * 8; i < bytes; ++i) acc |= p[i];
    (void)n_threads;
    (void)avx2;
    return acc;
}

}  // namespace am
