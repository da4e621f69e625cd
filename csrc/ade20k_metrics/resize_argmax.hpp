// Confusion matrix from low-resolution class scores: bilinear upsampling to
// the target's size, argmax over the classes and the (target, prediction)
// histogram in one pass, with no full-resolution score buffer.
//
// Pure C++17, no Python.  Scores (N, C, h, w) and target (N, H, W) are raw
// pointers with byte strides.  The sampling positions are torch's
// interpolate(mode="bilinear", align_corners=False) rule, computed in float32
// as torch computes them for float inputs:
//     scale = float(in) / float(out);  src = max(0, scale * (dst + 0.5) - 0.5)
//     i0 = floor(src);  i1 = i0 + (i0 < in - 1);  w1 = src - i0;  w0 = 1 - w1
// For one output row, every class's two source rows are first blended
// vertically into a per-thread buffer of C x w floats (memory O(C * w) per
// thread); each output pixel then blends two buffer entries horizontally and
// keeps the best class.  torch blends horizontally first, so an interpolated
// score may differ from torch's in the last bits: the argmax can differ only
// where the two best classes tie within that rounding.  float16 and bfloat16
// scores are widened to float32 first (torch rounds its interpolated output
// back to half precision, which makes ties of its own).
//
// Comparison rules are numpy's and torch's argmax: the lowest class wins a
// tie, a NaN beats every number (the first NaN wins), -0 ties with +0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "confusion.hpp"

namespace am {

struct ResizeGeometry {
    int64_t images = 0, channels = 0;
    int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
    int64_t s_n = 0, s_c = 0, s_y = 0, s_x = 0;  // byte strides of the scores
    int64_t t_n = 0, t_y = 0, t_x = 0;           // byte strides of the target
};

struct ResizeOptions {
    int n_threads = 1;
    // Fewer threads than asked when each would blend fewer scores than this.
    int64_t min_scores_per_thread = int64_t(1) << 20;
};

// One output coordinate's two source indices and weights.
struct LinearTap {
    int64_t i0, i1;
    float w0, w1;
};

// torch's upsample_bilinear2d source positions for align_corners=False and
// no explicit scale factor, in float32.
inline void linear_taps(int64_t in, int64_t out, LinearTap* taps) {
    const float scale = static_cast<float>(in) / static_cast<float>(out);
    for (int64_t d = 0; d < out; ++d) {
        float src = scale * (static_cast<float>(d) + 0.5f) - 0.5f;
        if (src < 0.f) src = 0.f;
        const int64_t i0 = static_cast<int64_t>(src);
        LinearTap& t = taps[d];
        t.i0 = i0;
        t.i1 = i0 + (i0 < in - 1 ? 1 : 0);
        t.w1 = src - static_cast<float>(i0);
        t.w0 = 1.f - t.w1;
    }
}

namespace detail {

struct LoadFloat32 {
    static float load(const char* p) {
        float f;
        std::memcpy(&f, p, sizeof f);
        return f;
    }
};

struct LoadFloat16 {
    static float load(const char* p) {
        uint16_t h;
        std::memcpy(&h, p, sizeof h);
        const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
        const uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
        uint32_t bits;
        if (exp == 0) {
            // Zero or subnormal: mant * 2^-24, exact in float32.
            const float f = static_cast<float>(mant) * 5.9604644775390625e-8f;
            std::memcpy(&bits, &f, sizeof bits);
            bits |= sign;
        } else if (exp == 31) {
            bits = sign | 0x7F800000u | (mant << 13);  // inf or NaN (payload kept)
        } else {
            bits = sign | ((exp + 112u) << 23) | (mant << 13);
        }
        float f;
        std::memcpy(&f, &bits, sizeof f);
        return f;
    }
};

struct LoadBFloat16 {
    static float load(const char* p) {
        uint16_t b;
        std::memcpy(&b, p, sizeof b);
        const uint32_t bits = static_cast<uint32_t>(b) << 16;
        float f;
        std::memcpy(&f, &bits, sizeof f);
        return f;
    }
};

constexpr int64_t kResizeTile = 1024;

// Whether score v replaces the best so far: greater, or the first NaN.
inline bool beats(float v, float best) { return v > best || (v != v && best == best); }

// Argmax and count output rows [row_begin, row_end) of the flattened (N * H) rows.
template <class Load, class T>
void resize_argmax_rows(const char* t0, const char* s0, const ResizeGeometry& g, const LinearTap* xt,
                        const LinearTap* yt, const Coders<T, uint32_t>& code, Tables<int64_t>& tab,
                        float* rows, int64_t row_begin, int64_t row_end) {
    alignas(64) float best[kResizeTile];
    alignas(64) uint32_t idx[kResizeTile];
    const int64_t c_n = g.channels, w = g.in_w;
    for (int64_t r = row_begin; r < row_end; ++r) {
        const int64_t n = r / g.out_h, y = r % g.out_h;
        const LinearTap& ty = yt[y];
        const char* img = s0 + n * g.s_n;
        // Vertical blend of every class's two source rows.
        for (int64_t c = 0; c < c_n; ++c) {
            const char* a = img + c * g.s_c + ty.i0 * g.s_y;
            const char* b = img + c * g.s_c + ty.i1 * g.s_y;
            float* out = rows + c * w;
            for (int64_t x = 0; x < w; ++x) {
                out[x] = Load::load(a + x * g.s_x) * ty.w0 + Load::load(b + x * g.s_x) * ty.w1;
            }
        }
        const char* trow = t0 + n * g.t_n + y * g.t_y;
        for (int64_t x0 = 0; x0 < g.out_w; x0 += kResizeTile) {
            const int64_t m = std::min(kResizeTile, g.out_w - x0);
            const LinearTap* tx = xt + x0;
            for (int64_t j = 0; j < m; ++j) {
                best[j] = rows[tx[j].i0] * tx[j].w0 + rows[tx[j].i1] * tx[j].w1;
                idx[j] = 0;
            }
            for (int64_t c = 1; c < c_n; ++c) {
                const float* row = rows + c * w;
                const uint32_t cc = static_cast<uint32_t>(c);
                for (int64_t j = 0; j < m; ++j) {
                    const float v = row[tx[j].i0] * tx[j].w0 + row[tx[j].i1] * tx[j].w1;
                    const bool wins = beats(v, best[j]);  // selects, not a branch: winners are unpredictable
                    best[j] = wins ? v : best[j];
                    idx[j] = wins ? cc : idx[j];
                }
            }
            count_strided<T, uint32_t>(trow + x0 * g.t_x, g.t_x, reinterpret_cast<const char*>(idx),
                                       static_cast<int64_t>(sizeof(uint32_t)), m, code, tab);
        }
    }
}

}  // namespace detail

// Add to `table` ((K+2) x (K+1) int64, see labels.hpp) the (target, argmax of
// the upsampled scores) pairs of output rows [row_begin, row_end) of the
// N * H rows (row_end < 0: to the last).  The winning class c is coded as
// prediction c (channels > K gives invalid predictions, counted in column K).
// `Load` reads one score as float32; T is the target's unsigned storage type.
// May throw std::bad_alloc before any counting starts; never throws after.
template <class Load, class T>
KernelResult count_resized_argmax_pairs(const void* target, const void* scores, const ResizeGeometry& g,
                                        const TargetCoding& tc, const ResizeOptions& opt, int64_t* table,
                                        int64_t row_begin = 0, int64_t row_end = -1) {
    using namespace detail;
    KernelResult res;
    const int64_t total_rows = g.images * g.out_h;
    if (row_end < 0 || row_end > total_rows) row_end = total_rows;
    row_begin = std::max<int64_t>(0, std::min(row_begin, row_end));
    const int64_t n_rows = row_end - row_begin;
    if (n_rows <= 0 || g.out_w <= 0 || g.channels < 1 || g.in_h < 1 || g.in_w < 1) return res;

    const int64_t k = tc.num_classes;
    const int64_t bins = table_bins(k);
    PredCoding pc;
    pc.num_classes = k;
    pc.limit = static_cast<uint64_t>(k);
    const Coders<T, uint32_t> code{TargetCoder<T>(tc), PredCoder<uint32_t>(pc), static_cast<uint32_t>(table_cols(k))};

    int threads = 1;
#ifdef _OPENMP
    const int64_t work = n_rows * g.out_w * g.channels;
    const int64_t by_size = std::max<int64_t>(1, work / std::max<int64_t>(1, opt.min_scores_per_thread));
    threads = static_cast<int>(std::min<int64_t>(std::max(1, opt.n_threads), std::min(by_size, n_rows)));
#endif
    res.threads = threads;

    // All allocation before the parallel region.
    std::vector<LinearTap> xt(static_cast<size_t>(g.out_w)), yt(static_cast<size_t>(g.out_h));
    linear_taps(g.in_w, g.out_w, xt.data());
    linear_taps(g.in_h, g.out_h, yt.data());
    const int64_t row_floats = g.channels * g.in_w;
    std::unique_ptr<float[]> rows(new float[static_cast<size_t>(row_floats * threads)]);
    std::unique_ptr<int64_t[]> counters;
    if (threads > 1) counters.reset(new int64_t[static_cast<size_t>(bins * threads)]());

    const char* t0 = static_cast<const char*>(target);
    const char* s0 = static_cast<const char*>(scores);
    auto work_share = [&](int tid, int team) {
        int64_t* c = threads > 1 ? counters.get() + bins * tid : table;
        Tables<int64_t> tab{c};
        const int64_t share = n_rows / team, extra = n_rows % team;
        const int64_t first = row_begin + share * tid + std::min<int64_t>(tid, extra);
        const int64_t last = first + share + (tid < extra ? 1 : 0);
        if (first < last) {
            resize_argmax_rows<Load, T>(t0, s0, g, xt.data(), yt.data(), code, tab, rows.get() + row_floats * tid,
                                        first, last);
        }
        if (threads > 1) {
#ifdef _OPENMP
#pragma omp critical(am_resize_merge)
#endif
            for (int64_t b = 0; b < bins; ++b) table[b] += c[b];
        }
    };
#ifdef _OPENMP
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        work_share(omp_get_thread_num(), omp_get_num_threads());
        return res;
    }
#endif
    work_share(0, 1);
    return res;
}

}  // namespace am
