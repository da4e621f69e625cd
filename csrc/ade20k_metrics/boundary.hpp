// Boundary IoU counts: the confusion matrix of the inner bands of both maps,
// counted in the same pass as the region confusion matrix.
//
// Pure C++17, no Python.  A pixel is in the inner band of its own label when
// some pixel within chessboard distance d has another label or lies outside
// the image (boundary-iou-api's mask_to_boundary: a 3 x 3 erosion d times of a
// mask padded with 0).  Equivalently a pixel is *interior* when its whole
// (2d+1) x (2d+1) window lies inside the image and holds one label.  That is
// decided separably, on bitsets of 64 pixels a word, in O(1) per pixel
// whatever d is:
//   horizontal  where a row changes label (SIMD compares of x and x-1); a run
//               [s, e) of one label makes [s+d, e-1-d] "horizontally uniform"
//               (hu), so the outside, which starts one pixel beyond the border,
//               bounds the runs at both ends;
//   vertical    U[r] = hu[r] & (row r equals row r+1, SIMD compares); pixel
//               (c, x) is interior iff hu[c+d] and U[c-d .. c+d-1] all hold at
//               x: a running AND over the last 2d rows of U, done with van
//               Herk / Gil-Werman blocks (a prefix AND of the current block of
//               2d rows and the suffix ANDs of the previous one), so each row
//               costs a few word operations whatever d is.
// Row c is counted once row c+d has been read: the runs along the row where
// neither label nor either map's band membership changes are found from the
// bitsets, and each run adds its length once to the region table and, when
// its target is evaluated, to the boundary table.  Nothing proportional to
// the image is kept: per thread O(d * W / 64) words of bitsets and two
// sparse count tables.
//
// Labels are compared for equality on their raw bits (exact for predictions,
// and for targets whenever the target coding is one-to-one on classes: no
// label_map that merges labels); otherwise the target row is coded first.
// Nothing here throws inside a parallel region.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "change_mask.hpp"
#include "labels.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define AM_BAND_INLINE inline __attribute__((always_inline))
#else
#define AM_BAND_INLINE inline
#endif

namespace am {

struct BoundaryOptions {
    int n_threads = 1;
    // Fewer threads than asked when each would get fewer pixels than this.
    int64_t min_pixels_per_thread = int64_t(1) << 15;
    // -1: best the CPU has, 0: portable, 1: AVX2, 2: AVX-512BW (each if present).
    int isa = -1;
};

// A batch of equally sized 2-d label maps: `images` maps of height x width,
// image n starting at the byte offsets image_offset(n); byte strides of rows
// and columns for the target and the prediction.
struct BoundaryGeometry {
    int64_t height = 0, width = 0;
    int64_t t_row = 0, t_col = 0, p_row = 0, p_col = 0;  // byte strides
    int lead_ndim = 0;                                   // leading (batch) axes
    int64_t lead_shape[64] = {};
    int64_t t_lead[64] = {}, p_lead[64] = {};
    int64_t images = 1;

    void image_offset(int64_t n, int64_t& t_off, int64_t& p_off) const {
        t_off = 0;
        p_off = 0;
        for (int a = lead_ndim - 1; a >= 0; --a) {
            const int64_t i = n % lead_shape[a];
            n /= lead_shape[a];
            t_off += i * t_lead[a];
            p_off += i * p_lead[a];
        }
    }
};

struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
};

// A dense int64 table that is all zeros between uses, with the list of its
// non-zero bins, so a call costs O(bins touched) to read and to clear.  The
// table comes from calloc: a large one is fresh zero pages from the OS, so
// memory grows with the pages touched, not with 4 (K+2)(K+1) bins.
struct SparseCounts {
    std::unique_ptr<int64_t[], FreeDeleter> counts;
    std::unique_ptr<uint64_t[]> touched;
    int64_t n_touched = 0;
    int64_t capacity = 0;

    bool ensure(int64_t bins) noexcept {
        if (capacity >= bins) return true;
        counts.reset(static_cast<int64_t*>(std::calloc(static_cast<size_t>(bins), sizeof(int64_t))));
        touched.reset(new (std::nothrow) uint64_t[static_cast<size_t>(bins)]);
        if (!counts || !touched) {
            counts.reset();
            touched.reset();
            capacity = 0;
            return false;
        }
        capacity = bins;
        n_touched = 0;
        return true;
    }
    // v > 0 only, so a bin once touched stays non-zero and is listed once.
    inline void add(uint64_t bin, int64_t v) {
        if (counts[bin] == 0) touched[n_touched++] = bin;
        counts[bin] += v;
    }
    void clear() noexcept {
        for (int64_t j = 0; j < n_touched; ++j) counts[touched[j]] = 0;
        n_touched = 0;
    }
    void release() noexcept {
        counts.reset();
        touched.reset();
        capacity = 0;
        n_touched = 0;
    }
};

// One thread's counts, a bin per (target row, prediction column, whether the
// pixel is interior in the target, whether it is interior in the prediction):
// bin = ((row * (K+1) + col) << 2) | (interior_t << 1) | interior_p, rows and
// columns as labels.hpp codes them ((K+2) x (K+1)).  The region matrix sums
// the four variants; the boundary matrix maps an interior pixel to K.  One
// table, so a run costs one add.
struct BoundaryTables {
    SparseCounts pairs;
};

inline int64_t boundary_table_bins(int64_t k) { return (k + 2) * (k + 1) * 4; }

// Kept per OS thread between calls (all zeros whenever no call runs), up to
// this many bins; larger tables are released after the call.
constexpr int64_t kKeepBoundaryTablesUpTo = int64_t(1) << 19;

// The most memory a team's per-thread tables may take together (see count_boundary_pairs).
constexpr int64_t kBoundaryTeamBytes = int64_t(512) << 20;

inline BoundaryTables& boundary_tables() {
    thread_local BoundaryTables tables;
    return tables;
}

namespace boundary_detail {

constexpr int64_t words_for(int64_t bits) { return (bits + 63) / 64; }

// ---- row compares: bit x of out[x / 64] ------------------------------------

template <class E>
inline uint64_t neq_scalar(const E* a, const E* b, int64_t n) {  // n <= 64
    uint64_t m = 0;
    for (int64_t j = 0; j < n; ++j) m |= static_cast<uint64_t>(a[j] != b[j]) << j;
    return m;
}

// The row loops of a compare policy, compiled with its target attribute (so
// its neq64 inlines): differs(a, b) = where a differs from b, n pixels;
// changes(a) = where a run starts, x == 0 or a[x] != a[x-1].  A partial last
// word is read as the last 64 pixels (overlapping the word before), so only
// rows under 64 pixels are compared one pixel at a time.
#define AM_BAND_ROW_LOOPS(ATTR)                                                                       \
    template <class E>                                                                                \
    ATTR static void differs(const E* a, const E* b, int64_t n, uint64_t* out) {                      \
        if (n < 64) {                                                                                 \
            if (n > 0) out[0] = neq_scalar(a, b, n);                                                  \
            return;                                                                                   \
        }                                                                                             \
        int64_t w = 0;                                                                                \
        for (; 64 * (w + 1) <= n; ++w) out[w] = neq64(a + 64 * w, b + 64 * w);                        \
        if (64 * w < n) out[w] = neq64(a + n - 64, b + n - 64) >> (64 - (n - 64 * w));                \
    }                                                                                                 \
    template <class E>                                                                                \
    ATTR static void changes(const E* a, int64_t n, uint64_t* out) {                                  \
        if (n <= 64) {                                                                                \
            if (n > 0) out[0] = 1 | (neq_scalar(a + 1, a, n - 1) << 1);                               \
            return;                                                                                   \
        }                                                                                             \
        out[0] = 1 | (neq64(a + 1, a) << 1); /* bit 63 of the compare is pixel 64's */                \
        int64_t w = 1;                                                                                \
        for (; 64 * (w + 1) <= n; ++w) out[w] = neq64(a + 64 * w, a + 64 * w - 1);                    \
        if (64 * w < n) out[w] = neq64(a + n - 64, a + n - 65) >> (64 - (n - 64 * w));                \
    }

struct PortableNeq {
    template <class E>
    static inline uint64_t neq64(const E* a, const E* b) {
        return neq_scalar(a, b, 64);
    }
    static inline uint64_t neq64(const uint8_t* a, const uint8_t* b) {
        using namespace portable_detail;
        if (!kSwar) return neq_scalar(a, b, 64);
        uint64_t m = 0;
        for (int j = 0; j < 64; j += 8) m |= static_cast<uint64_t>(nonzero_bytes(word_at(a + j) ^ word_at(b + j))) << j;
        return m;
    }
    AM_BAND_ROW_LOOPS(inline)
};

template <class E>
void differs_portable(const void* a, const void* b, int64_t n, uint64_t* out) {
    PortableNeq::differs(static_cast<const E*>(a), static_cast<const E*>(b), n, out);
}
template <class E>
void changes_portable(const void* a, int64_t n, uint64_t* out) {
    PortableNeq::changes(static_cast<const E*>(a), n, out);
}

#if AM_HAVE_AVX2_DISPATCH
struct Avx2Neq {
    AM_AVX2 static AM_BAND_INLINE uint64_t neq64(const uint8_t* a, const uint8_t* b) {
        using avx2_detail::load;
        const auto e0 = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(load(a), load(b))));
        const auto e1 = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(load(a + 32), load(b + 32))));
        return ~(static_cast<uint64_t>(e0) | (static_cast<uint64_t>(e1) << 32));
    }
    AM_AVX2 static AM_BAND_INLINE uint64_t neq64(const uint16_t* a, const uint16_t* b) {
        using avx2_detail::load;
        uint64_t m = 0;
        for (int j = 0; j < 64; j += 32) {
            const __m256i x = _mm256_cmpeq_epi16(load(a + j), load(b + j));
            const __m256i y = _mm256_cmpeq_epi16(load(a + j + 16), load(b + j + 16));
            // packs interleaves 128-bit lanes; the permute puts them back in order.
            const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi16(x, y), 0xD8);
            m |= static_cast<uint64_t>(~static_cast<uint32_t>(_mm256_movemask_epi8(packed))) << j;
        }
        return m;
    }
    AM_AVX2 static AM_BAND_INLINE uint64_t neq64(const uint32_t* a, const uint32_t* b) {
        using avx2_detail::load;
        uint64_t m = 0;
        for (int j = 0; j < 64; j += 8) {
            const __m256i eq = _mm256_cmpeq_epi32(load(a + j), load(b + j));
            m |= static_cast<uint64_t>(~static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(eq))) & 0xFFu) << j;
        }
        return m;
    }
    AM_AVX2 static AM_BAND_INLINE uint64_t neq64(const uint64_t* a, const uint64_t* b) {
        using avx2_detail::load;
        uint64_t m = 0;
        for (int j = 0; j < 64; j += 4) {
            const __m256i eq = _mm256_cmpeq_epi64(load(a + j), load(b + j));
            m |= static_cast<uint64_t>(~static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(eq))) & 0xFu) << j;
        }
        return m;
    }
    AM_BAND_ROW_LOOPS(AM_AVX2)
};

struct Avx512Neq {
    AM_AVX512 static AM_BAND_INLINE uint64_t neq64(const uint8_t* a, const uint8_t* b) {
        return _mm512_cmpneq_epu8_mask(_mm512_loadu_si512(a), _mm512_loadu_si512(b));
    }
    AM_AVX512 static AM_BAND_INLINE uint64_t neq64(const uint16_t* a, const uint16_t* b) {
        const uint64_t lo = _mm512_cmpneq_epu16_mask(_mm512_loadu_si512(a), _mm512_loadu_si512(b));
        const uint64_t hi = _mm512_cmpneq_epu16_mask(_mm512_loadu_si512(a + 32), _mm512_loadu_si512(b + 32));
        return lo | (hi << 32);
    }
    AM_AVX512 static AM_BAND_INLINE uint64_t neq64(const uint32_t* a, const uint32_t* b) {
        uint64_t m = 0;
        for (int j = 0; j < 64; j += 16) {
            const uint64_t part = _mm512_cmpneq_epu32_mask(_mm512_loadu_si512(a + j), _mm512_loadu_si512(b + j));
            m |= part << j;
        }
        return m;
    }
    AM_AVX512 static AM_BAND_INLINE uint64_t neq64(const uint64_t* a, const uint64_t* b) {
        uint64_t m = 0;
        for (int j = 0; j < 64; j += 8) {
            const uint64_t part = _mm512_cmpneq_epu64_mask(_mm512_loadu_si512(a + j), _mm512_loadu_si512(b + j));
            m |= part << j;
        }
        return m;
    }
    AM_BAND_ROW_LOOPS(AM_AVX512)
};

template <class E>
AM_AVX2 void differs_avx2(const void* a, const void* b, int64_t n, uint64_t* out) {
    Avx2Neq::differs(static_cast<const E*>(a), static_cast<const E*>(b), n, out);
}
template <class E>
AM_AVX2 void changes_avx2(const void* a, int64_t n, uint64_t* out) {
    Avx2Neq::changes(static_cast<const E*>(a), n, out);
}
template <class E>
AM_AVX512 void differs_avx512(const void* a, const void* b, int64_t n, uint64_t* out) {
    Avx512Neq::differs(static_cast<const E*>(a), static_cast<const E*>(b), n, out);
}
template <class E>
AM_AVX512 void changes_avx512(const void* a, int64_t n, uint64_t* out) {
    Avx512Neq::changes(static_cast<const E*>(a), n, out);
}
#endif

// The row compares for one element size (equality is on bits, so the sign does not matter).
struct RowCompare {
    void (*differs)(const void*, const void*, int64_t, uint64_t*) = nullptr;
    void (*changes)(const void*, int64_t, uint64_t*) = nullptr;
};

template <class E>
RowCompare pick_compare_for(int isa) {
#if AM_HAVE_AVX2_DISPATCH
    if ((isa < 0 || isa >= 2) && cpu_has_avx512bw()) return {&differs_avx512<E>, &changes_avx512<E>};
    if (isa != 0 && cpu_has_avx2()) return {&differs_avx2<E>, &changes_avx2<E>};
#endif
    (void)isa;
    return {&differs_portable<E>, &changes_portable<E>};
}

inline RowCompare pick_compare(int bytes, int isa) {
    switch (bytes) {
        case 1: return pick_compare_for<uint8_t>(isa);
        case 2: return pick_compare_for<uint16_t>(isa);
        case 4: return pick_compare_for<uint32_t>(isa);
        default: return pick_compare_for<uint64_t>(isa);
    }
}

// ---- bitset helpers ---------------------------------------------------------

// Set bits lo..hi (inclusive).
inline void set_bits(uint64_t* bits, int64_t lo, int64_t hi) {
    const int64_t wl = lo >> 6, wh = hi >> 6;
    const uint64_t first = ~uint64_t(0) << (lo & 63);
    const uint64_t last = ~uint64_t(0) >> (63 - (hi & 63));
    if (wl == wh) {
        bits[wl] |= first & last;
        return;
    }
    bits[wl] |= first;
    for (int64_t w = wl + 1; w < wh; ++w) bits[w] = ~uint64_t(0);
    bits[wh] |= last;
}

// hu from run starts (bit 0 always set): a run [s, e) makes [s+d, e-1-d] uniform.
inline void uniform_from_changes(const uint64_t* starts, int64_t n, int64_t nw, int64_t d, uint64_t* hu) {
    for (int64_t w = 0; w < nw; ++w) hu[w] = 0;
    int64_t s = 0;
    for (int64_t w = 0; w < nw; ++w) {
        uint64_t m = starts[w];
        if (w == 0) m &= ~uint64_t(1);
        while (m != 0) {
            const int64_t x = w * 64 + __builtin_ctzll(m);
            m &= m - 1;
            if (x - s > 2 * d) set_bits(hu, s + d, x - 1 - d);
            s = x;
        }
    }
    if (n - s > 2 * d) set_bits(hu, s + d, n - 1 - d);
}

// ---- one map's band state over the rows of one image ------------------------

// Interior bits of row y - d once row y has been read (see the file comment).
struct BandState {
    int64_t width = 0, nw = 0, d = 0, len = 0;  // len = 2d, the rows of the running AND
    uint64_t* starts_ring = nullptr;  // (d+1) rows: where each recent row's runs start
    uint64_t* hu_prev = nullptr;      // hu of the last row read
    uint64_t* hu_cur = nullptr;
    uint64_t* diff = nullptr;
    uint64_t* block = nullptr;        // len rows of U of the current block
    uint64_t* suffix = nullptr;       // len rows: suffix ANDs of the previous block
    uint64_t* prefix = nullptr;       // AND of the current block so far
    uint64_t* interior = nullptr;
    int64_t in_block = 0, pushed = 0, rows_read = 0;

    static int64_t words_needed(int64_t width, int64_t d) {
        const int64_t nw = words_for(width);
        return nw * ((d + 1) + 4 * d + 5);
    }
    void attach(uint64_t* mem, int64_t w, int64_t dd) {
        width = w;
        nw = words_for(w);
        d = dd;
        len = 2 * dd;
        starts_ring = mem;
        mem += nw * (d + 1);
        hu_prev = mem;
        mem += nw;
        hu_cur = mem;
        mem += nw;
        diff = mem;
        mem += nw;
        block = mem;
        mem += nw * len;
        suffix = mem;
        mem += nw * len;
        prefix = mem;
        mem += nw;
        interior = mem;
    }
    void restart() {
        in_block = 0;
        pushed = 0;
        rows_read = 0;
    }
    uint64_t* starts_of(int64_t y) { return starts_ring + nw * (y % (d + 1)); }

    // The AND of the last `len` rows pushed (pushed >= len), into interior, then & hu.
    void window_and(const uint64_t* hu) {
        if (in_block == len) {
            for (int64_t w = 0; w < nw; ++w) interior[w] = prefix[w] & hu[w];
        } else {
            const uint64_t* s = suffix + nw * in_block;
            for (int64_t w = 0; w < nw; ++w) interior[w] = s[w] & prefix[w] & hu[w];
        }
        if (in_block == len) {  // the block is complete: its suffix ANDs serve the next block
            for (int64_t r = len - 2; r >= 0; --r) {
                uint64_t* a = block + nw * r;
                const uint64_t* b = a + nw;
                for (int64_t w = 0; w < nw; ++w) a[w] &= b[w];
            }
            std::swap(block, suffix);
            in_block = 0;
        }
    }

    // Read row y (`row`, and `prev` = row y - 1 unless this is the first row read).
    // Returns true when interior now holds row y - d.
    bool read(int64_t y, const void* row, const void* prev, const RowCompare& cmp) {
        uint64_t* starts = starts_of(y);
        if (rows_read == 0) {
            cmp.changes(row, width, starts);
            uniform_from_changes(starts, width, nw, d, hu_prev);
            ++rows_read;
            return false;
        }
        cmp.differs(prev, row, width, diff);
        // U[y-1] = hu[y-1] & (row y-1 == row y), written straight into the block, and the block's prefix AND.
        uint64_t* u = block + nw * in_block;
        uint64_t any = 0;
        if (in_block == 0) {
            for (int64_t w = 0; w < nw; ++w) {
                any |= diff[w];
                prefix[w] = u[w] = hu_prev[w] & ~diff[w];
            }
        } else {
            for (int64_t w = 0; w < nw; ++w) {
                any |= diff[w];
                u[w] = hu_prev[w] & ~diff[w];
                prefix[w] &= u[w];
            }
        }
        ++in_block;
        ++pushed;
        if (any == 0) {  // the same row again: the same runs (real maps repeat rows often)
            std::memcpy(starts, starts_of(y - 1), static_cast<size_t>(nw) * sizeof(uint64_t));
            std::memcpy(hu_cur, hu_prev, static_cast<size_t>(nw) * sizeof(uint64_t));
        } else {
            cmp.changes(row, width, starts);
            uniform_from_changes(starts, width, nw, d, hu_cur);
        }
        bool ready = false;
        if (pushed >= len) {
            window_and(hu_cur);
            ready = true;
        }
        std::swap(hu_prev, hu_cur);
        ++rows_read;
        return ready;
    }
};

// ---- counting one row -------------------------------------------------------

template <class T, class P>
struct RowCounter {
    TargetCoder<T> tcode;
    PredCoder<P> pcode;
    uint32_t k, width;  // width = K+1 columns
    uint32_t tlut[256];
    uint32_t plut[256];

    RowCounter(const TargetCoding& tc, const PredCoding& pc)
        : tcode(tc), pcode(pc), k(static_cast<uint32_t>(tc.num_classes)),
          width(static_cast<uint32_t>(tc.num_classes + 1)) {
        if (sizeof(T) == 1) {
            for (int v = 0; v < 256; ++v) tlut[v] = tcode(static_cast<T>(v));
        }
        if (sizeof(P) == 1) {
            for (int v = 0; v < 256; ++v) plut[v] = pcode(static_cast<P>(v));
        }
    }
    inline uint32_t trow(T v) const {
        if constexpr (sizeof(T) == 1) return tlut[static_cast<uint8_t>(v)];
        else return tcode(v);
    }
    inline uint32_t pcol(P v) const {
        if constexpr (sizeof(P) == 1) return plut[static_cast<uint8_t>(v)];
        else return pcode(v);
    }

    // Count row `n` pixels of target row `t` (byte stride ts) and pred row `p`.
    // `starts_t`, `starts_p`: where each map's runs start; `in_t`, `in_p`:
    // interior bits (all zeros: every pixel in its band).
    void count(const char* t, int64_t ts, const char* p, int64_t ps, int64_t n, int64_t nw,
               const uint64_t* starts_t, const uint64_t* starts_p, const uint64_t* in_t, const uint64_t* in_p,
               BoundaryTables& tab) const {
        // The table's pointers and fill count in locals for the row: stores
        // to the counts could otherwise alias them and force reloads per run.
        int64_t* const counts = tab.pairs.counts.get();
        uint64_t* const touched = tab.pairs.touched.get();
        int64_t filled = tab.pairs.n_touched;
        const uint64_t wd = width;
        int64_t s = 0;
        uint64_t interior = ((in_t[0] & 1) << 1) | (in_p[0] & 1);  // of the run that starts at s
        auto add = [&](int64_t e) {
            T tv;
            P pv;
            std::memcpy(&tv, t + s * ts, sizeof(T));
            std::memcpy(&pv, p + s * ps, sizeof(P));
            const uint64_t bin = ((trow(tv) * wd + pcol(pv)) << 2) | interior;
            if (counts[bin] == 0) touched[filled++] = bin;
            counts[bin] += e - s;
            s = e;
        };
        // Where a run of the banded pair starts: either label or either band membership changes.
        uint64_t carry_t = 0, carry_p = 0;
        for (int64_t w = 0; w < nw; ++w) {
            const uint64_t a = in_t[w], b = in_p[w];
            uint64_t m = starts_t[w] | starts_p[w] | (a ^ ((a << 1) | carry_t)) | (b ^ ((b << 1) | carry_p));
            carry_t = a >> 63;
            carry_p = b >> 63;
            if (w == 0) m &= ~uint64_t(1);
            if (w == nw - 1 && (n & 63) != 0) m &= (uint64_t(1) << (n & 63)) - 1;
            while (m != 0) {
                const int bit = __builtin_ctzll(m);
                m &= m - 1;
                add(w * 64 + bit);
                interior = (((a >> bit) & 1) << 1) | ((b >> bit) & 1);
            }
        }
        add(n);
        tab.pairs.n_touched = filled;
    }
};

// How one map's rows are read for the band compares: in place when contiguous
// and aligned, else gathered (or, for a target whose coding merges labels,
// coded) into two alternating row buffers.
template <class L>
struct RowSource {
    const char* base = nullptr;  // the image's first element
    int64_t row_stride = 0, col_stride = 0;
    bool in_place = false;
    bool code_rows = false;
    const TargetCoder<L>* coder = nullptr;  // code_rows only
    char* buffers[2] = {nullptr, nullptr};  // width elements each (L, or uint16 when coding)

    const void* row(int64_t y, int64_t width) {
        const char* src = base + y * row_stride;
        if (in_place) return src;
        char* dst = buffers[y & 1];
        if (code_rows) {
            auto* out = reinterpret_cast<uint16_t*>(dst);
            for (int64_t x = 0; x < width; ++x) {
                L v;
                std::memcpy(&v, src + x * col_stride, sizeof(L));
                out[x] = static_cast<uint16_t>((*coder)(v));
            }
        } else {
            for (int64_t x = 0; x < width; ++x) std::memcpy(dst + x * int64_t(sizeof(L)), src + x * col_stride, sizeof(L));
        }
        return dst;
    }
};

}  // namespace boundary_detail

// The region ((K+2) x (K+1), labels.hpp) and boundary ((K+1) x (K+1)) counts
// of a table: fn_region(bin, count) for each non-zero region bin and
// fn_boundary(bin, count) for each boundary bin of an evaluated pixel (one
// call per table bin; the same bin may come more than once).
template <class FnRegion, class FnBoundary>
void for_each_count(const BoundaryTables& tables, int64_t k, FnRegion&& fn_region, FnBoundary&& fn_boundary) {
    const auto cols = static_cast<uint64_t>(k + 1);
    const auto kk = static_cast<uint64_t>(k);
    const SparseCounts& pairs = tables.pairs;
    for (int64_t j = 0; j < pairs.n_touched; ++j) {
        const uint64_t bin = pairs.touched[j];
        const int64_t v = pairs.counts[bin];
        const uint64_t cell = bin >> 2, row = cell / cols, col = cell % cols;
        fn_region(cell, v);
        if (row < kk) fn_boundary(((bin & 2) ? kk : row) * cols + ((bin & 1) ? kk : col), v);
    }
}

// Per-thread working memory for count_boundary_pairs, allocated before any
// thread starts (so nothing inside the parallel region allocates or throws).
struct BoundaryWorkspace {
    std::vector<uint64_t> words;
    std::vector<char> rows;
};

struct BoundaryResult {
    int threads = 1;
    bool out_of_memory = false;
};

// Count every image of `g` into `tables` (the calling thread's, all zeros on
// entry; see BoundaryTables for the bins, and boundary_matrices for the two
// matrices they make), with band width `d` >= 1.  `target_raw_equal`: whether equal raw target values are
// exactly the equal coded labels among classes (no label_map that merges
// labels), so the bands can compare raw bits.  T, P: the labels' unsigned
// storage types.  Throws std::bad_alloc before counting when memory runs out;
// reports a failed per-thread table allocation in the result (the tables
// are then left all zeros).
template <class T, class P>
BoundaryResult count_boundary_pairs(const void* target, const void* pred, const BoundaryGeometry& g,
                                    const TargetCoding& tc, const PredCoding& pc, int64_t d,
                                    bool target_raw_equal, const BoundaryOptions& opt, BoundaryTables& tables) {
    using namespace boundary_detail;
    BoundaryResult res;
    const int64_t h = g.height, w = g.width, images = g.images;
    const int64_t total_rows = images * h;
    if (h <= 0 || w <= 0 || images <= 0) return res;
    d = std::max<int64_t>(1, d);
    const int64_t k = tc.num_classes;
    const int64_t bins = boundary_table_bins(k);
    const bool all_band = 2 * d + 1 > h || 2 * d + 1 > w;  // no window fits: every pixel is in its band
    const bool code_t = !target_raw_equal;
    const RowCompare cmp_t = pick_compare(code_t ? 2 : static_cast<int>(sizeof(T)), opt.isa);
    const RowCompare cmp_p = pick_compare(static_cast<int>(sizeof(P)), opt.isa);
    const boundary_detail::RowCounter<T, P> counter(tc, pc);
    const TargetCoder<T> tcoder(tc);

    auto aligned = [](const void* base, int64_t a, int64_t b, int64_t c, size_t al) {
        return reinterpret_cast<uintptr_t>(base) % al == 0 && a % int64_t(al) == 0 && b % int64_t(al) == 0 &&
               c % int64_t(al) == 0;
    };
    bool t_lead_aligned = true, p_lead_aligned = true;
    for (int a = 0; a < g.lead_ndim; ++a) {
        t_lead_aligned = t_lead_aligned && g.t_lead[a] % int64_t(alignof(T)) == 0;
        p_lead_aligned = p_lead_aligned && g.p_lead[a] % int64_t(alignof(P)) == 0;
    }
    const bool t_in_place = !code_t && g.t_col == int64_t(sizeof(T)) && t_lead_aligned &&
                            aligned(target, g.t_row, g.t_col, 0, alignof(T));
    const bool p_in_place = g.p_col == int64_t(sizeof(P)) && p_lead_aligned &&
                            aligned(pred, g.p_row, g.p_col, 0, alignof(P));

    int threads = 1;
#ifdef _OPENMP
    const int64_t by_size = std::max<int64_t>(1, images * h * w / std::max<int64_t>(1, opt.min_pixels_per_thread));
    threads = static_cast<int>(std::min<int64_t>({int64_t(std::max(1, opt.n_threads)), by_size, total_rows}));
    // Each thread has its own table of `bins` (16 bytes a bin with its list):
    // a team's tables stay within kBoundaryTeamBytes, down to one thread (for
    // K=4000, 1 GiB a table: 8 threads used to reserve 8 GiB).
    threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, kBoundaryTeamBytes / (16 * bins))));
#endif
    const int64_t nw = words_for(w);
    const int64_t band_words = all_band ? 2 * nw : BandState::words_needed(w, d);
    // after both maps' words: nw zero words, the interior of rows that have none
    // Each row buffer starts on a 64-byte boundary of the (malloc-aligned) block: a
    // gathered uint64 row after an odd-width uint16 one is still aligned for its type.
    auto padded = [](int64_t bytes) { return (bytes + 63) / 64 * 64; };
    const int64_t t_row_bytes = t_in_place ? 0 : padded(w * int64_t(code_t ? sizeof(uint16_t) : sizeof(T)));
    const int64_t p_row_bytes = p_in_place ? 0 : padded(w * int64_t(sizeof(P)));
    std::vector<BoundaryWorkspace> spaces(static_cast<size_t>(threads));
    for (auto& s : spaces) {
        s.words.assign(static_cast<size_t>(2 * band_words + nw), 0);
        s.rows.assign(static_cast<size_t>(2 * (t_row_bytes + p_row_bytes) + 16), 0);
    }
    std::vector<BoundaryTables*> tables_of(static_cast<size_t>(threads), nullptr);
    int failed = 0;
    int team_size = 1;

    // Rows [first, last) of the batch, numbered image * h + row.
    auto count_rows = [&](BoundaryWorkspace& space, BoundaryTables& tab, int64_t first, int64_t last) {
        uint64_t* mem = space.words.data();
        const uint64_t* none = mem + 2 * band_words;
        for (int64_t n = first / h; n * h < last; ++n) {
            const int64_t c0 = std::max<int64_t>(first - n * h, 0), c1 = std::min<int64_t>(last - n * h, h);
            int64_t t_off, p_off;
            g.image_offset(n, t_off, p_off);
            const char* t_img = static_cast<const char*>(target) + t_off;
            const char* p_img = static_cast<const char*>(pred) + p_off;
            auto count_row = [&](int64_t c, const uint64_t* st, const uint64_t* sp, const uint64_t* it,
                                 const uint64_t* ip) {
                counter.count(t_img + c * g.t_row, g.t_col, p_img + c * g.p_row, g.p_col, w, nw, st, sp, it, ip, tab);
            };
            RowSource<T> src_t;
            src_t.base = t_img;
            src_t.row_stride = g.t_row;
            src_t.col_stride = g.t_col;
            src_t.in_place = t_in_place;
            src_t.code_rows = code_t;
            src_t.coder = &tcoder;
            src_t.buffers[0] = space.rows.data();
            src_t.buffers[1] = space.rows.data() + t_row_bytes;
            RowSource<P> src_p;
            src_p.base = p_img;
            src_p.row_stride = g.p_row;
            src_p.col_stride = g.p_col;
            src_p.in_place = p_in_place;
            src_p.buffers[0] = space.rows.data() + 2 * t_row_bytes;
            src_p.buffers[1] = space.rows.data() + 2 * t_row_bytes + p_row_bytes;
            if (all_band) {
                uint64_t* st = mem;
                uint64_t* sp = mem + nw;
                for (int64_t c = c0; c < c1; ++c) {
                    cmp_t.changes(src_t.row(c, w), w, st);
                    cmp_p.changes(src_p.row(c, w), w, sp);
                    count_row(c, st, sp, none, none);
                }
                continue;
            }
            BandState bt, bp;
            bt.attach(mem, w, d);
            bp.attach(mem + band_words, w, d);
            bt.restart();
            bp.restart();
            const int64_t ys = std::max<int64_t>(0, c0 - d), ye = std::min<int64_t>(h, c1 + d);
            const void* prev_t = nullptr;
            const void* prev_p = nullptr;
            for (int64_t y = ys; y < ye; ++y) {
                const void* row_t = src_t.row(y, w);
                const void* row_p = src_p.row(y, w);
                const bool ready_t = bt.read(y, row_t, prev_t, cmp_t);
                const bool ready_p = bp.read(y, row_p, prev_p, cmp_p);
                prev_t = row_t;
                prev_p = row_p;
                if (y < d && y >= c0 && y < c1) {  // the top rows: every pixel in its band
                    count_row(y, bt.starts_of(y), bp.starts_of(y), none, none);
                }
                const int64_t c = y - d;
                if (ready_t && ready_p && c >= c0 && c < c1 && c >= d && c < h - d) {
                    count_row(c, bt.starts_of(c), bp.starts_of(c), bt.interior, bp.interior);
                }
            }
            for (int64_t c = std::max(c0, h - d); c < c1; ++c) {  // the bottom rows
                count_row(c, bt.starts_of(c), bp.starts_of(c), none, none);
            }
        }
    };

    auto work = [&](int tid, int team) {
        BoundaryTables& mine = tid == 0 ? tables : boundary_tables();
        const bool ok = mine.pairs.ensure(bins);
        if (!ok) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        }
        tables_of[static_cast<size_t>(tid)] = ok ? &mine : nullptr;
#ifdef _OPENMP
        if (team > 1) {
#pragma omp barrier
        }
#endif
        int any_failed;
#ifdef _OPENMP
#pragma omp atomic read
#endif
        any_failed = failed;
        if (!any_failed) {
            const int64_t share = total_rows / team, extra = total_rows % team;
            const int64_t first = share * tid + std::min<int64_t>(tid, extra);
            const int64_t last = first + share + (tid < extra ? 1 : 0);
            if (first < last) count_rows(spaces[static_cast<size_t>(tid)], mine, first, last);
        }
#ifdef _OPENMP
        if (team > 1) {
#pragma omp barrier
        }
#endif
        if (tid == 0) {  // fold the other threads' counts into the caller's tables
            for (int other = 1; other < team; ++other) {
                BoundaryTables* o = tables_of[static_cast<size_t>(other)];
                if (o == nullptr) continue;
                if (!any_failed && tables_of[0] != nullptr) {
                    for (int64_t j = 0; j < o->pairs.n_touched; ++j) {
                        const uint64_t b = o->pairs.touched[j];
                        tables.pairs.add(b, o->pairs.counts[b]);
                    }
                }
                o->pairs.clear();
                if (bins > kKeepBoundaryTablesUpTo) o->pairs.release();
            }
            if (any_failed && tables_of[0] != nullptr) tables.pairs.clear();
        }
    };
#ifdef _OPENMP
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
#pragma omp single
            team_size = omp_get_num_threads();
            work(omp_get_thread_num(), omp_get_num_threads());
        }
    } else {
        work(0, 1);
    }
#else
    work(0, 1);
#endif
    res.threads = team_size > 1 ? team_size : threads;
    res.out_of_memory = failed != 0;
    return res;
}

}  // namespace am
