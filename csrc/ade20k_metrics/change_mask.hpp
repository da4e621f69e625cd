// Where a label map changes value: bit j of change_mask64(x) is set when
// x[j] != x[j-1], for j in 0..63 (x[-1] must be readable).
//
// Real label maps are long runs of one value, so most 64-pixel blocks give 0
// and are skipped whole.  A portable version always exists; on x86 AVX2 and
// AVX-512BW ones are compiled alongside it with function-level target
// attributes and chosen at run time, so a wheel built for the baseline CPU
// still uses what the CPU has; on 64-bit Arm, where NEON is part of the
// baseline, a NEON one is always used for 8-bit labels.
//
// Each policy also says whether it computes the bins of 8-bit labels with
// SIMD (kVectorBins, simple_bins64; see SimpleCoding).
#pragma once

#include <cstdint>
#include <cstring>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define AM_HAVE_AVX2_DISPATCH 1
#include <immintrin.h>
#else
#define AM_HAVE_AVX2_DISPATCH 0
#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
#define AM_HAVE_NEON 1
#include <arm_neon.h>
#else
#define AM_HAVE_NEON 0
#endif

namespace am {

// The coding of labels without a lookup (no label_map, no reduce_zero_label),
// for 8-bit targets and predictions and tables of at most 2^16 bins: then a
// pixel's bin is row * width + col with
//   row = ignore if t == t_ignore, else t if t < t_limit, else K + 1
//   col = p if p < p_limit, else K
// (labels.hpp), which SIMD computes 16 pixels at a time.
struct SimpleCoding {
    bool ok = false;
    uint16_t k = 0, width = 0, t_limit = 0, t_ignore = 0xFFFF, p_limit = 0;
};

// The same for 64-bit targets and predictions (int64 is what PyTorch gives),
// 4 pixels a vector; any table fits (bins < 2^32 for K <= 65534).
struct SimpleCoding64 {
    bool ok = false;
    bool has_ignore = false;
    uint64_t k = 0, width = 0, t_limit = 0, t_ignore = 0, p_limit = 0;
};

namespace portable_detail {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr bool kSwar = true;
#else
constexpr bool kSwar = false;
#endif

inline uint64_t word_at(const uint8_t* x) {
    uint64_t w;
    std::memcpy(&w, x, sizeof(w));
    return w;
}

// Bit j set where byte j of the little-endian word y is not zero: the high
// bit of each byte marks it (no carries cross bytes), one multiply gathers them.
inline uint32_t nonzero_bytes(uint64_t y) {
    constexpr uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL, high = 0x8080808080808080ULL;
    const uint64_t marked = (((y & low7) + low7) | y) & high;
    return static_cast<uint32_t>((marked * 0x0002040810204081ULL) >> 56);
}

}  // namespace portable_detail

struct PortableMask {
    static constexpr bool kVectorBins = false;
    // The index of the lowest set bit of m; for m == 0 any value below 65.
    static inline uint32_t lowest_bit_or_junk(uint64_t m) {
        return static_cast<uint32_t>(__builtin_ctzll(m | (uint64_t(1) << 63)));
    }
    template <class T>
    static inline uint64_t change_mask64(const T* x) {
        uint64_t m = 0;
        for (int j = 0; j < 64; ++j) m |= static_cast<uint64_t>(x[j] != x[j - 1]) << j;
        return m;
    }
    // Where either map changes: bit j set when t[j] != t[j-1] or p[j] != p[j-1].
    template <class T, class P>
    static inline uint64_t pair_change_mask64(const T* t, const P* p) {
        return change_mask64(t) | change_mask64(p);
    }
    // 8-bit pairs: eight pixels per 64-bit word (SWAR) on little-endian machines.
    static inline uint64_t pair_change_mask64(const uint8_t* t, const uint8_t* p) {
        using namespace portable_detail;
        if (!kSwar) return change_mask64(t) | change_mask64(p);
        uint64_t m = 0;
        for (int j = 0; j < 64; j += 8) {
            const uint64_t y = (word_at(t + j) ^ word_at(t + j - 1)) | (word_at(p + j) ^ word_at(p + j - 1));
            m |= static_cast<uint64_t>(nonzero_bytes(y)) << j;
        }
        return m;
    }
};

#if AM_HAVE_AVX2_DISPATCH
#define AM_AVX2 __attribute__((target("avx2,bmi,popcnt")))

namespace avx2_detail {

AM_AVX2 inline __m256i load(const void* p) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 32 lanes of `bits` bits each -> one bit per lane where x differs from x shifted by one.
AM_AVX2 inline uint32_t neq32_u8(const uint8_t* x) {
    const __m256i eq = _mm256_cmpeq_epi8(load(x), load(x - 1));
    return ~static_cast<uint32_t>(_mm256_movemask_epi8(eq));
}

AM_AVX2 inline uint32_t neq32_u16(const uint16_t* x) {
    const __m256i a = _mm256_cmpeq_epi16(load(x), load(x - 1));
    const __m256i b = _mm256_cmpeq_epi16(load(x + 16), load(x + 15));
    // packs interleaves 128-bit lanes; the permute puts lanes back in order.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi16(a, b), 0xD8);
    return ~static_cast<uint32_t>(_mm256_movemask_epi8(packed));
}

AM_AVX2 inline uint32_t neq8_u32(const uint32_t* x) {
    const __m256i eq = _mm256_cmpeq_epi32(load(x), load(x - 1));
    return ~static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(eq))) & 0xFFu;
}

AM_AVX2 inline uint32_t neq4_u64(const uint64_t* x) {
    const __m256i eq = _mm256_cmpeq_epi64(load(x), load(x - 1));
    return ~static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(eq))) & 0xFu;
}

// bins[j] for the 64 pixels t[0..63], p[0..63] (see SimpleCoding).
AM_AVX2 inline void simple_bins64(const uint8_t* t, const uint8_t* p, const SimpleCoding& c, uint32_t* bins) {
    const __m256i k = _mm256_set1_epi16(static_cast<short>(c.k));
    const __m256i k1 = _mm256_set1_epi16(static_cast<short>(c.k + 1));
    const __m256i width = _mm256_set1_epi16(static_cast<short>(c.width));
    const __m256i t_limit = _mm256_set1_epi16(static_cast<short>(c.t_limit));
    const __m256i t_ignore = _mm256_set1_epi16(static_cast<short>(c.t_ignore));
    const __m256i p_limit = _mm256_set1_epi16(static_cast<short>(c.p_limit));
    for (int j = 0; j < 64; j += 16) {
        // 16-bit lanes hold 0..255, so signed compares are exact.
        const __m256i tv = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + j)));
        const __m256i pv = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j)));
        __m256i row = _mm256_blendv_epi8(k1, tv, _mm256_cmpgt_epi16(t_limit, tv));
        row = _mm256_blendv_epi8(row, k, _mm256_cmpeq_epi16(tv, t_ignore));
        const __m256i col = _mm256_blendv_epi8(k, pv, _mm256_cmpgt_epi16(p_limit, pv));
        const __m256i bin = _mm256_add_epi16(_mm256_mullo_epi16(row, width), col);  // < 2^16
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(bins + j),
                            _mm256_cvtepu16_epi32(_mm256_castsi256_si128(bin)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(bins + j + 8),
                            _mm256_cvtepu16_epi32(_mm256_extracti128_si256(bin, 1)));
    }
}

AM_AVX2 inline __m256i all(uint64_t v) { return _mm256_set1_epi64x(static_cast<long long>(v)); }

// The same for 64-bit labels (see SimpleCoding64).
AM_AVX2 inline void simple_bins64(const uint64_t* t, const uint64_t* p, const SimpleCoding64& c, uint32_t* bins) {
    const uint64_t flip = uint64_t(1) << 63;  // unsigned order = signed order of the sign-flipped values
    const __m256i sign = all(flip), k = all(c.k), k1 = all(c.k + 1), width = all(c.width);
    const __m256i t_limit = all(c.t_limit ^ flip), p_limit = all(c.p_limit ^ flip), t_ignore = all(c.t_ignore);
    const __m256i ignore_on = all(c.has_ignore ? ~uint64_t(0) : 0);
    const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    for (int j = 0; j < 64; j += 4) {
        const __m256i tv = load(t + j), pv = load(p + j);
        __m256i row = _mm256_blendv_epi8(k1, tv, _mm256_cmpgt_epi64(t_limit, _mm256_xor_si256(tv, sign)));
        row = _mm256_blendv_epi8(row, k, _mm256_and_si256(ignore_on, _mm256_cmpeq_epi64(tv, t_ignore)));
        const __m256i col = _mm256_blendv_epi8(k, pv, _mm256_cmpgt_epi64(p_limit, _mm256_xor_si256(pv, sign)));
        const __m256i bin = _mm256_add_epi64(_mm256_mul_epu32(row, width), col);  // row, col, bin < 2^32
        _mm_storeu_si128(reinterpret_cast<__m128i*>(bins + j),
                         _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(bin, low_halves)));
    }
}

}  // namespace avx2_detail

struct Avx2Mask {
    static constexpr bool kVectorBins = true;
    // BMI's tzcnt is defined for 0 (64), which saves setting a guard bit (x86-64 only: 32-bit x86 has no
    // 64-bit tzcnt).
    AM_AVX2 static inline uint32_t lowest_bit_or_junk(uint64_t m) {
#if defined(__x86_64__)
        return static_cast<uint32_t>(_tzcnt_u64(m));
#else
        return PortableMask::lowest_bit_or_junk(m);
#endif
    }
    AM_AVX2 static inline void simple_bins64(const uint8_t* t, const uint8_t* p, const SimpleCoding& c,
                                             uint32_t* bins) {
        avx2_detail::simple_bins64(t, p, c, bins);
    }
    AM_AVX2 static inline void simple_bins64(const uint64_t* t, const uint64_t* p, const SimpleCoding64& c,
                                             uint32_t* bins) {
        avx2_detail::simple_bins64(t, p, c, bins);
    }
    AM_AVX2 static inline uint64_t change_mask64(const uint8_t* x) {
        using namespace avx2_detail;
        return static_cast<uint64_t>(neq32_u8(x)) | (static_cast<uint64_t>(neq32_u8(x + 32)) << 32);
    }
    AM_AVX2 static inline uint64_t change_mask64(const uint16_t* x) {
        using namespace avx2_detail;
        return static_cast<uint64_t>(neq32_u16(x)) | (static_cast<uint64_t>(neq32_u16(x + 32)) << 32);
    }
    AM_AVX2 static inline uint64_t change_mask64(const uint32_t* x) {
        using namespace avx2_detail;
        uint64_t m = 0;
        for (int j = 0; j < 8; ++j) m |= static_cast<uint64_t>(neq8_u32(x + 8 * j)) << (8 * j);
        return m;
    }
    AM_AVX2 static inline uint64_t change_mask64(const uint64_t* x) {
        using namespace avx2_detail;
        uint64_t m = 0;
        for (int j = 0; j < 16; ++j) m |= static_cast<uint64_t>(neq4_u64(x + 4 * j)) << (4 * j);
        return m;
    }
    template <class T, class P>
    AM_AVX2 static inline uint64_t pair_change_mask64(const T* t, const P* p) {
        return change_mask64(t) | change_mask64(p);
    }
    // 64-bit pairs (PyTorch's int64): both maps' differences ORed, then one
    // compare a vector, instead of a compare and a mask per map.
    AM_AVX2 static inline uint64_t pair_change_mask64(const uint64_t* t, const uint64_t* p) {
        using namespace avx2_detail;
        uint64_t same = 0;
        for (int j = 0; j < 64; j += 4) {
            const __m256i d = _mm256_or_si256(_mm256_xor_si256(load(t + j), load(t + j - 1)),
                                              _mm256_xor_si256(load(p + j), load(p + j - 1)));
            const auto eq = static_cast<uint32_t>(
                _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(d, _mm256_setzero_si256()))));
            same |= static_cast<uint64_t>(eq) << j;
        }
        return ~same;
    }
    // 8-bit pairs, the common case.  No early exit for a block without a
    // change: whether a block has one is unpredictable, and the caller
    // handles both without a branch.
    AM_AVX2 static inline uint64_t pair_change_mask64(const uint8_t* t, const uint8_t* p) {
        using namespace avx2_detail;
        const __m256i d0 = _mm256_or_si256(_mm256_xor_si256(load(t), load(t - 1)),
                                           _mm256_xor_si256(load(p), load(p - 1)));
        const __m256i d1 = _mm256_or_si256(_mm256_xor_si256(load(t + 32), load(t + 31)),
                                           _mm256_xor_si256(load(p + 32), load(p + 31)));
        const __m256i zero = _mm256_setzero_si256();
        const auto same0 = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(d0, zero)));
        const auto same1 = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(d1, zero)));
        return ~(static_cast<uint64_t>(same0) | (static_cast<uint64_t>(same1) << 32));
    }
};

#define AM_AVX512 __attribute__((target("avx512f,avx512bw,avx2,bmi,popcnt")))

// AVX-512BW: one compare of 64 lanes gives the 64-bit mask directly.  The
// SIMD bins are AVX2's (inherited), which an AVX-512 caller may inline.
struct Avx512Mask : Avx2Mask {
    AM_AVX512 static inline uint64_t change_mask64(const uint8_t* x) {
        return _mm512_cmpneq_epu8_mask(_mm512_loadu_si512(x), _mm512_loadu_si512(x - 1));
    }
    AM_AVX512 static inline uint64_t change_mask64(const uint16_t* x) {
        const uint64_t lo = _mm512_cmpneq_epu16_mask(_mm512_loadu_si512(x), _mm512_loadu_si512(x - 1));
        const uint64_t hi = _mm512_cmpneq_epu16_mask(_mm512_loadu_si512(x + 32), _mm512_loadu_si512(x + 31));
        return lo | (hi << 32);
    }
    AM_AVX512 static inline uint64_t change_mask64(const uint32_t* x) {
        uint64_t m = 0;
        for (int j = 0; j < 4; ++j) {
            const uint64_t part = _mm512_cmpneq_epu32_mask(_mm512_loadu_si512(x + 16 * j),
                                                           _mm512_loadu_si512(x + 16 * j - 1));
            m |= part << (16 * j);
        }
        return m;
    }
    AM_AVX512 static inline uint64_t change_mask64(const uint64_t* x) {
        uint64_t m = 0;
        for (int j = 0; j < 8; ++j) {
            const uint64_t part = _mm512_cmpneq_epu64_mask(_mm512_loadu_si512(x + 8 * j),
                                                           _mm512_loadu_si512(x + 8 * j - 1));
            m |= part << (8 * j);
        }
        return m;
    }
    template <class T, class P>
    AM_AVX512 static inline uint64_t pair_change_mask64(const T* t, const P* p) {
        return change_mask64(t) | change_mask64(p);
    }
    // 64-bit pairs: (t ^ t[-1]) | (p ^ p[-1]) in one ternary-logic op, one
    // test a vector, the eight 8-lane masks joined in mask registers.
    AM_AVX512 static inline uint64_t pair_change_mask64(const uint64_t* t, const uint64_t* p) {
        __mmask16 part[8];
        for (int j = 0; j < 8; ++j) {
            const __m512i d = _mm512_xor_si512(_mm512_loadu_si512(t + 8 * j), _mm512_loadu_si512(t + 8 * j - 1));
            // 0xF6: a | (b ^ c)
            const __m512i e = _mm512_ternarylogic_epi64(d, _mm512_loadu_si512(p + 8 * j),
                                                        _mm512_loadu_si512(p + 8 * j - 1), 0xF6);
            part[j] = _mm512_test_epi64_mask(e, e);
        }
        const __mmask32 lo = _mm512_kunpackw(_mm512_kunpackb(part[3], part[2]), _mm512_kunpackb(part[1], part[0]));
        const __mmask32 hi = _mm512_kunpackw(_mm512_kunpackb(part[7], part[6]), _mm512_kunpackb(part[5], part[4]));
        return _cvtmask64_u64(_mm512_kunpackd(hi, lo));
    }
};

inline bool cpu_has_avx512bw() {
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi");
    }();
    return has;
}

inline bool cpu_has_avx2() {
    static const bool has = [] {
        __builtin_cpu_init();
        // The paths are compiled with BMI1 too (blsr, tzcnt): a VM may show AVX2 without it.
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi");
    }();
    return has;
}
#else
inline bool cpu_has_avx512bw() { return false; }
inline bool cpu_has_avx2() { return false; }
#endif

#if AM_HAVE_NEON
namespace neon_detail {

// Bit j of the result is set where byte j of c0..c3 (64 bytes of 0x00 or
// 0xFF) is set: each byte weighted by its bit within its group of eight,
// then three rounds of pairwise adds collapse each group to one byte.
inline uint64_t bits64(uint8x16_t c0, uint8x16_t c1, uint8x16_t c2, uint8x16_t c3) {
    const uint8x16_t weights = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t a = vpaddq_u8(vandq_u8(c0, weights), vandq_u8(c1, weights));
    const uint8x16_t b = vpaddq_u8(vandq_u8(c2, weights), vandq_u8(c3, weights));
    const uint8x16_t ab = vpaddq_u8(a, b);
    return vgetq_lane_u64(vreinterpretq_u64_u8(vpaddq_u8(ab, ab)), 0);
}

// Bytes where x differs from x shifted by one.
inline uint8x16_t diff16(const uint8_t* x) { return veorq_u8(vld1q_u8(x), vld1q_u8(x - 1)); }

}  // namespace neon_detail

struct NeonMask {
    static constexpr bool kVectorBins = true;
    static inline uint32_t lowest_bit_or_junk(uint64_t m) { return PortableMask::lowest_bit_or_junk(m); }

    template <class T>
    static inline uint64_t change_mask64(const T* x) {
        return PortableMask::change_mask64(x);
    }
    static inline uint64_t change_mask64(const uint8_t* x) {
        using namespace neon_detail;
        return bits64(vtstq_u8(diff16(x), diff16(x)), vtstq_u8(diff16(x + 16), diff16(x + 16)),
                      vtstq_u8(diff16(x + 32), diff16(x + 32)), vtstq_u8(diff16(x + 48), diff16(x + 48)));
    }
    template <class T, class P>
    static inline uint64_t pair_change_mask64(const T* t, const P* p) {
        return change_mask64(t) | change_mask64(p);
    }
    // 8-bit pairs, without an early exit for a block without a change (see Avx2Mask).
    static inline uint64_t pair_change_mask64(const uint8_t* t, const uint8_t* p) {
        using namespace neon_detail;
        const uint8x16_t d0 = vorrq_u8(diff16(t), diff16(p));
        const uint8x16_t d1 = vorrq_u8(diff16(t + 16), diff16(p + 16));
        const uint8x16_t d2 = vorrq_u8(diff16(t + 32), diff16(p + 32));
        const uint8x16_t d3 = vorrq_u8(diff16(t + 48), diff16(p + 48));
        return bits64(vtstq_u8(d0, d0), vtstq_u8(d1, d1), vtstq_u8(d2, d2), vtstq_u8(d3, d3));
    }

    // bins[j] for the 64 pixels t[0..63], p[0..63] (see SimpleCoding), 8 at a time.
    static inline void simple_bins64(const uint8_t* t, const uint8_t* p, const SimpleCoding& c, uint32_t* bins) {
        const uint16x8_t k = vdupq_n_u16(c.k), k1 = vdupq_n_u16(static_cast<uint16_t>(c.k + 1));
        const uint16x8_t width = vdupq_n_u16(c.width), t_limit = vdupq_n_u16(c.t_limit);
        const uint16x8_t t_ignore = vdupq_n_u16(c.t_ignore), p_limit = vdupq_n_u16(c.p_limit);
        for (int j = 0; j < 64; j += 8) {
            const uint16x8_t tv = vmovl_u8(vld1_u8(t + j));
            const uint16x8_t pv = vmovl_u8(vld1_u8(p + j));
            uint16x8_t row = vbslq_u16(vcltq_u16(tv, t_limit), tv, k1);
            row = vbslq_u16(vceqq_u16(tv, t_ignore), k, row);
            const uint16x8_t col = vbslq_u16(vcltq_u16(pv, p_limit), pv, k);
            const uint16x8_t bin = vmlaq_u16(col, row, width);  // col + row * width < 2^16
            vst1q_u32(bins + j, vmovl_u16(vget_low_u16(bin)));
            vst1q_u32(bins + j + 4, vmovl_high_u16(bin));
        }
    }

    // The same for 64-bit labels (see SimpleCoding64), 4 at a time.
    static inline void simple_bins64(const uint64_t* t, const uint64_t* p, const SimpleCoding64& c, uint32_t* bins) {
        const uint64x2_t k = vdupq_n_u64(c.k), k1 = vdupq_n_u64(c.k + 1), t_ignore = vdupq_n_u64(c.t_ignore);
        const uint64x2_t t_limit = vdupq_n_u64(c.t_limit), p_limit = vdupq_n_u64(c.p_limit);
        const uint64x2_t ignore_on = vdupq_n_u64(c.has_ignore ? ~uint64_t(0) : 0);
        const uint32x4_t width = vdupq_n_u32(static_cast<uint32_t>(c.width));
        auto row_of = [&](uint64x2_t v) {
            const uint64x2_t row = vbslq_u64(vcltq_u64(v, t_limit), v, k1);
            return vmovn_u64(vbslq_u64(vandq_u64(vceqq_u64(v, t_ignore), ignore_on), k, row));
        };
        auto col_of = [&](uint64x2_t v) { return vmovn_u64(vbslq_u64(vcltq_u64(v, p_limit), v, k)); };
        for (int j = 0; j < 64; j += 4) {
            const uint32x4_t row = vcombine_u32(row_of(vld1q_u64(t + j)), row_of(vld1q_u64(t + j + 2)));
            const uint32x4_t col = vcombine_u32(col_of(vld1q_u64(p + j)), col_of(vld1q_u64(p + j + 2)));
            vst1q_u32(bins + j, vmlaq_u32(col, row, width));  // row, col, bin < 2^32
        }
    }
};
#endif

}  // namespace am
