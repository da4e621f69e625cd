// Confusion matrix straight from class scores: argmax over the class axis
// fused with the (target, prediction) histogram.
//
// Pure C++17, no Python.  The scores of one pixel are `channels` values
// `channel_stride` bytes apart; the pixel axes of the scores and of the
// target are described together by a Geometry (geometry.hpp: t_stride =
// target, p_stride = scores at class 0).  Pixels are processed in tiles of at
// most kArgmaxTile: the winning class of each pixel of a tile goes into a small
// per-thread buffer, and the tile is counted against its target labels with
// the same coding and run/scatter counting as count_pairs (confusion.hpp).
// No label map of the whole input is ever materialised.
//
// Comparison rules (those of numpy.argmax and torch.argmax):
//   ties     the lowest class index wins;
//   NaN      a NaN score beats every number, and the first NaN wins;
//   -0 == +0 the two zeros tie.
// Scores are compared through an order-preserving integer key of their bits,
// which treats float32, float16 and bfloat16 alike and vectorises well.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "confusion.hpp"

namespace am {

enum class ScoreType : int { float32 = 0, float16 = 1, bfloat16 = 2 };

struct ArgmaxOptions {
    int n_threads = 1;
    // Fewer threads than asked when each would read fewer scores than this.
    int64_t min_scores_per_thread = int64_t(1) << 20;
    // Pixels per tile (1 .. kArgmaxTile): long enough that each class's run of
    // scores streams well, short enough that the tile buffers stay in L1.
    int64_t tile = 4096;
    // -1: best the CPU has, 0: portable, 1: AVX2 (if present).
    int isa = -1;
    // As KernelOptions::private_up_to: tables of more bins are shared by the team.
    int64_t private_up_to = kPrivateTablesUpTo;
};

constexpr int64_t kArgmaxTile = 8192;

namespace detail {

// An int32 key whose order is the numeric order of the score, NaN highest.
// Sign-magnitude bits become two's complement (-x -> -|x|, so -0 and +0 both
// map to 0); any NaN (magnitude above infinity's, `Inf`) maps to INT32_MAX.
template <class RawBits, uint32_t Inf>
struct FloatKey {
    using Raw = RawBits;
    static constexpr int kSignBit = 8 * sizeof(RawBits) - 1;
    AM_INLINE static int32_t key(RawBits b) {
        const auto bits = static_cast<uint32_t>(b);
        const auto mag = static_cast<int32_t>(bits & ((uint32_t(1) << kSignBit) - 1));
        const int32_t sgn = -static_cast<int32_t>(bits >> kSignBit);
        const int32_t k = (mag ^ sgn) - sgn;
        return mag > static_cast<int32_t>(Inf) ? INT32_MAX : k;
    }
};
using Float32Key = FloatKey<uint32_t, 0x7F800000u>;
using Float16Key = FloatKey<uint16_t, 0x7C00u>;   // IEEE binary16: exponent 5 bits
using BFloat16Key = FloatKey<uint16_t, 0x7F80u>;  // bfloat16: exponent 8 bits

// Winning class of `n` pixels into `idx`.  `s` points at class 0 of the first
// pixel; pixels are `ps` bytes apart, classes `cs` bytes apart.
template <class Key>
AM_INLINE void argmax_tile(const char* s, int64_t ps, int64_t cs, int64_t channels, int64_t n,
                           int32_t* best, uint32_t* idx) {
    using Raw = typename Key::Raw;
    constexpr int64_t size = static_cast<int64_t>(sizeof(Raw));
    if (ps == size) {
        // Class-major: one pass over the tile per class, a compare and two
        // selects per pixel (the compiler vectorises these loops).
        const Raw* x = reinterpret_cast<const Raw*>(s);
        for (int64_t j = 0; j < n; ++j) {
            best[j] = Key::key(x[j]);
            idx[j] = 0;
        }
        for (int64_t c = 1; c < channels; ++c) {
            x = reinterpret_cast<const Raw*>(s + c * cs);
            const uint32_t cc = static_cast<uint32_t>(c);
            for (int64_t j = 0; j < n; ++j) {
                const int32_t k = Key::key(x[j]);
                const bool wins = k > best[j];
                best[j] = wins ? k : best[j];
                idx[j] = wins ? cc : idx[j];
            }
        }
    } else {
        // Pixel-major (channels-last or any other strides).
        for (int64_t j = 0; j < n; ++j) {
            const char* px = s + j * ps;
            Raw r;
            std::memcpy(&r, px, sizeof(Raw));
            int32_t b = Key::key(r);
            uint32_t at = 0;
            for (int64_t c = 1; c < channels; ++c) {
                std::memcpy(&r, px + c * cs, sizeof(Raw));
                const int32_t k = Key::key(r);
                if (k > b) {
                    b = k;
                    at = static_cast<uint32_t>(c);
                }
            }
            idx[j] = at;
        }
    }
}

// Argmax and count the pixels with flat indices [begin, end) of `g`.
template <class Mask, class Key, class T, class Sink>
AM_INLINE void argmax_count_range_impl(const char* t0, const char* s0, const Geometry& g,
                                       int64_t channels, int64_t cs, int64_t tile, int64_t begin,
                                       int64_t end, const Coders<T, uint32_t>& code, Sink& tab) {
    alignas(64) int32_t best[kArgmaxTile];
    alignas(64) uint32_t idx[kArgmaxTile];
    const int nd = g.ndim;
    const int64_t inner = g.inner();
    const int64_t ts = g.t_stride[nd - 1], ps = g.p_stride[nd - 1];
    const bool t_contiguous = ts == static_cast<int64_t>(sizeof(T)) && aligned_rows<T>(t0 + g.t_offset, g.t_stride, nd);
    RowCursor at(g, begin);  // its p_off is the scores' offset
    for (int64_t pos = begin; pos < end; at.next_row(g)) {
        const int64_t row_n = std::min(inner - at.col, end - pos);
        for (int64_t j = 0; j < row_n; j += tile) {
            const int64_t n = std::min(tile, row_n - j);
            const char* t = t0 + at.t_off + (at.col + j) * ts;
            const char* s = s0 + at.p_off + (at.col + j) * ps;
            argmax_tile<Key>(s, ps, cs, channels, n, best, idx);
            if (t_contiguous) {
                count_contiguous<Mask>(reinterpret_cast<const T*>(t), idx, n, code, tab);
            } else {
                count_strided<T, uint32_t>(t, ts, reinterpret_cast<const char*>(idx),
                                           static_cast<int64_t>(sizeof(uint32_t)), n, code, tab);
            }
        }
        pos += row_n;
    }
}

template <class Key, class T, class Sink>
void argmax_count_range_portable(const char* t0, const char* s0, const Geometry& g, int64_t channels,
                                 int64_t cs, int64_t tile, int64_t begin, int64_t end,
                                 const Coders<T, uint32_t>& code, Sink& tab) {
    argmax_count_range_impl<PortableMask, Key, T, Sink>(t0, s0, g, channels, cs, tile, begin, end, code, tab);
}

#if AM_HAVE_AVX2_DISPATCH
template <class Key, class T, class Sink>
AM_AVX2 void argmax_count_range_avx2(const char* t0, const char* s0, const Geometry& g, int64_t channels,
                                     int64_t cs, int64_t tile, int64_t begin, int64_t end,
                                     const Coders<T, uint32_t>& code, Sink& tab) {
    argmax_count_range_impl<Avx2Mask, Key, T, Sink>(t0, s0, g, channels, cs, tile, begin, end, code, tab);
}
#endif

#if AM_HAVE_NEON
template <class Key, class T, class Sink>
void argmax_count_range_neon(const char* t0, const char* s0, const Geometry& g, int64_t channels, int64_t cs,
                             int64_t tile, int64_t begin, int64_t end, const Coders<T, uint32_t>& code,
                             Sink& tab) {
    argmax_count_range_impl<NeonMask, Key, T, Sink>(t0, s0, g, channels, cs, tile, begin, end, code, tab);
}
#endif

template <class Key, class T, class Sink>
using ArgmaxRangeFn = void (*)(const char*, const char*, const Geometry&, int64_t, int64_t, int64_t,
                               int64_t, int64_t, const Coders<T, uint32_t>&, Sink&);

template <class Key, class T, class Sink>
ArgmaxRangeFn<Key, T, Sink> pick_argmax_range_fn(int isa) {
#if AM_HAVE_AVX2_DISPATCH
    if (isa != 0 && cpu_has_avx2()) return &argmax_count_range_avx2<Key, T, Sink>;
#endif
#if AM_HAVE_NEON
    if (isa != 0) return &argmax_count_range_neon<Key, T, Sink>;
#endif
    (void)isa;
    return &argmax_count_range_portable<Key, T, Sink>;
}

}  // namespace detail

// Add to `table` ((K+2) x (K+1) int64, see labels.hpp) the (target, argmax
// of the scores) pairs of the pixels with flat indices [begin, end) of `g`
// (end < 0: to the last pixel).  `scores` points at class 0 of the first
// pixel; `channels` >= 1 classes lie `channel_stride` bytes apart, and the
// winning index c is coded as prediction c (so channels > K gives invalid
// predictions, counted in column K).  T is the target's unsigned storage type.
// Consecutive ranges give the same table as one call.
// Memory: private tables only within private_tables(); otherwise the team
// adds to `table` and allocates nothing.  May throw std::bad_alloc before any
// counting starts; never throws after.
template <class Key, class T>
KernelResult count_argmax_pairs(const void* target, const void* scores, const Geometry& g, int64_t channels,
                                int64_t channel_stride, const TargetCoding& tc, const ArgmaxOptions& opt,
                                int64_t* table, int64_t begin = 0, int64_t end = -1) {
    using namespace detail;
    KernelResult res;
    if (channels < 1) return res;
    const int64_t k = tc.num_classes;
    const int64_t bins = table_bins(k);
    PredCoding pc;
    pc.num_classes = k;
    pc.limit = static_cast<uint64_t>(k);
    const Coders<T, uint32_t> code{TargetCoder<T>(tc), PredCoder<uint32_t>(pc),
                                   static_cast<uint32_t>(table_cols(k))};
    const char* t0 = static_cast<const char*>(target);
    const char* s0 = static_cast<const char*>(scores);
    if (end < 0 || end > g.pixels) end = g.pixels;
    begin = std::max<int64_t>(0, std::min(begin, end));
    const int64_t n = end - begin;
    if (n <= 0) return res;
    const int64_t tile = std::max<int64_t>(1, std::min(opt.tile, kArgmaxTile));
    const int64_t mult = g.multiplicity;

    int threads = 1;
#ifdef _OPENMP
    const int64_t work = n * channels;
    const int64_t by_size = std::max<int64_t>(1, work / std::max<int64_t>(1, opt.min_scores_per_thread));
    threads = static_cast<int>(std::min<int64_t>(std::max(1, opt.n_threads), std::min<int64_t>(by_size, n)));
#endif
    res.threads = threads;

    if (threads == 1 && mult == 1) {
        Tables<int64_t> tab{table};
        pick_argmax_range_fn<Key, T, Tables<int64_t>>(opt.isa)(t0, s0, g, channels, channel_stride, tile, begin, end,
                                                               code, tab);
        return res;
    }
    auto share_of = [&](int tid, int team, int64_t& first, int64_t& last) {
        const int64_t share = n / team, extra = n % team;
        first = begin + share * tid + std::min<int64_t>(tid, extra);
        last = first + share + (tid < extra ? 1 : 0);
    };
    // Runs work_share(thread id, team size) on the team.
    auto run_team = [&](auto&& work_share) {
#ifdef _OPENMP
        if (threads > 1) {
#pragma omp parallel num_threads(threads)
            work_share(omp_get_thread_num(), omp_get_num_threads());
            return;
        }
#endif
        work_share(0, 1);
    };
    if (private_tables(bins, threads, opt.private_up_to, 8)) {
        // One int64 table per thread (argmax over the classes dominates the
        // cost, so narrow counters would buy nothing); all allocation happens
        // here, outside the parallel region.
        std::unique_ptr<int64_t[]> counters(new int64_t[static_cast<size_t>(bins * threads)]());
        const auto range_fn = pick_argmax_range_fn<Key, T, Tables<int64_t>>(opt.isa);
        run_team([&](int tid, int team) {
            int64_t* c = counters.get() + bins * tid;
            Tables<int64_t> tab{c};
            int64_t first = 0, last = 0;
            share_of(tid, team, first, last);
            if (first < last) range_fn(t0, s0, g, channels, channel_stride, tile, first, last, code, tab);
#ifdef _OPENMP
#pragma omp critical(am_argmax_merge)
#endif
            for (int64_t b = 0; b < bins; ++b) table[b] += c[b] * mult;
        });
    } else {
        // A table too large to copy per thread: the team adds to it (see SharedTable).
        const auto range_fn = pick_argmax_range_fn<Key, T, SharedTable>(opt.isa);
        run_team([&](int tid, int team) {
            SharedTable tab(table, nullptr, mult, team > 1);
            int64_t first = 0, last = 0;
            share_of(tid, team, first, last);
            if (first < last) range_fn(t0, s0, g, channels, channel_stride, tile, first, last, code, tab);
            tab.flush();
        });
    }
    return res;
}

}  // namespace am
