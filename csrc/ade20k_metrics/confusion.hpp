// The confusion-matrix kernel: histogram (target, prediction) label pairs.
//
// Pure C++17, no Python.  Inputs are raw pointers plus a Geometry (see
// geometry.hpp); labels are read through their unsigned storage type and
// coded by labels.hpp into a working table of (K+2) x (K+1) int64 counts.
//
// Two ways of counting, chosen per 64-pixel block of a contiguous row:
//   runs    real label maps are long runs of one (target, pred) pair; a block
//           where neither map changes costs one vector compare, and each run
//           adds its length once.
//   scatter a block with many changes (noise, thin structures) increments one
//           bin per pixel, spread over several sub-tables so consecutive
//           increments of the same bin do not wait on each other.
// Narrow (uint32) per-thread tables are flushed into the int64 table before
// they can overflow; small inputs count straight into int64 on one thread.
// Nothing here throws inside a parallel region.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "change_mask.hpp"
#include "geometry.hpp"
#include "labels.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define AM_INLINE inline __attribute__((always_inline))
#else
#define AM_INLINE inline
#endif

namespace am {

struct KernelOptions {
    int n_threads = 1;
    // Fewer threads than asked when each would get fewer pixels than this.
    // Measured on 16 cores (ade20k-metrics bench --sweep-threshold): 2^14
    // pixels per thread was at or near the best for maps of 128x171 to
    // 1024x1366; 2^18 left a 512x683 map at 2.5x less throughput.
    int64_t min_pixels_per_thread = int64_t(1) << 14;
    // Narrow counters are flushed after at most this many pixels (< 2^32).
    int64_t flush_limit = int64_t(1) << 31;
    // -1: best the CPU has, 0: portable, 1: AVX2, 2: AVX-512BW (each if present).
    int isa = -1;
};

struct KernelResult {
    int threads = 1;  // threads the kernel ran on
};

// Inputs with fewer pixels than this are best counted by count_pairs_small on
// one thread: for them, zeroing and merging whole tables costs more than the counting.
constexpr int64_t kSmallInputPixels = int64_t(1) << 16;

inline int64_t table_rows(int64_t k) { return k + 2; }
inline int64_t table_cols(int64_t k) { return k + 1; }
inline int64_t table_bins(int64_t k) { return table_rows(k) * table_cols(k); }

// A touched map marks which 64-bin blocks of a table may be non-zero: bit
// (b & 63) of word b / 64 for block b.  Coherent label maps touch few bins,
// so reading, merging and clearing tables through their maps costs O(touched).
constexpr int kBlockShift = 6;  // 64 bins a block
inline int64_t touched_words(int64_t bins) { return ((bins + 63) >> kBlockShift) / 64 + 1; }
inline void mark_touched(uint64_t* map, uint32_t bin) {
    map[bin >> (kBlockShift + 6)] |= uint64_t(1) << ((bin >> kBlockShift) & 63);
}

// fn(first_bin, end_bin) for every marked block of words [w_lo, w_hi).
template <class Fn>
inline void for_each_touched_block(const uint64_t* map, int64_t bins, int64_t w_lo, int64_t w_hi, Fn&& fn) {
    for (int64_t w = w_lo; w < w_hi; ++w) {
        uint64_t bits = map[w];
        while (bits != 0) {
            const int64_t block = w * 64 + __builtin_ctzll(bits);
            bits &= bits - 1;
            const int64_t b0 = block << kBlockShift;
            if (b0 >= bins) continue;
            fn(b0, std::min(bins, b0 + (int64_t(1) << kBlockShift)));
        }
    }
}

namespace detail {

// A plain counter table (or `subs` sub-tables, lane j to sub-table j % subs).
template <class C>
struct Tables {
    C* base;
    int64_t bins;
    uint32_t sub_mask;  // subs - 1, subs a power of two

    AM_INLINE void add_run(uint32_t bin, int64_t len) { base[bin] += static_cast<C>(len); }
    AM_INLINE void add_one(uint32_t lane, uint32_t bin) {
        base[static_cast<int64_t>(lane & sub_mask) * bins + bin] += 1;
    }
    AM_INLINE void note_singles() {}
};

// The counters of one thread.  Runs add their length to an int64 table;
// single pixels from noisy blocks go to `subs` narrow uint32 sub-tables (lane
// j to sub-table j % subs), which keeps them cache-resident and breaks
// store-to-load chains on repeated bins.  The sub-tables are folded into the
// int64 table (flush) before they can overflow.
struct ThreadTables {
    int64_t* runs;
    uint32_t* singles;
    uint64_t* touched;  // blocks of `runs` that may be non-zero
    int64_t bins;
    uint32_t sub_mask;  // subs - 1: 0 or 1 (sub_tables_for)
    bool used_singles = false;
    uint32_t* lane_table[2];  // the sub-table of even and of odd lanes

    ThreadTables(int64_t* runs_, uint32_t* singles_, uint64_t* touched_, int64_t bins_, uint32_t sub_mask_)
        : runs(runs_), singles(singles_), touched(touched_), bins(bins_), sub_mask(sub_mask_),
          lane_table{singles_, singles_ + (sub_mask_ ? bins_ : 0)} {}

    AM_INLINE void add_run(uint32_t bin, int64_t len) {
        runs[bin] += len;
        mark_touched(touched, bin);
    }
    AM_INLINE void add_one(uint32_t lane, uint32_t bin) { lane_table[lane & 1][bin] += 1; }
    AM_INLINE void note_singles() { used_singles = true; }

    // Fold the sub-tables into the int64 table and zero them.
    void flush() {
        if (!used_singles) return;
        for (uint32_t s = 0; s <= sub_mask; ++s) {
            uint32_t* sub = singles + static_cast<int64_t>(s) * bins;
            for (int64_t b = 0; b < bins; ++b) runs[b] += sub[b];
            std::memset(sub, 0, static_cast<size_t>(bins) * sizeof(uint32_t));
        }
        for (int64_t b = 0; b < bins; b += int64_t(1) << kBlockShift) mark_touched(touched, static_cast<uint32_t>(b));
        used_singles = false;
    }
};

// One int64 table that is all zeros on entry, recording which bins it
// touches so that small inputs cost O(pixels), not O(K^2), to read and clear.
// `touched` must have room for one entry per add (pixels + 1).
struct TrackedTable {
    int64_t* base;
    uint32_t* touched;
    int64_t n_touched;

    AM_INLINE void add_run(uint32_t bin, int64_t len) {
        if (len == 0) return;
        if (base[bin] == 0) touched[n_touched++] = bin;
        base[bin] += len;
    }
    AM_INLINE void add_one(uint32_t, uint32_t bin) {
        if (base[bin] == 0) touched[n_touched++] = bin;
        base[bin] += 1;
    }
    AM_INLINE void note_singles() {}
};

// Raw label -> row offset (row * width) and raw label -> column.  8-bit labels
// go through 256-entry tables built once per call, which makes the per-pixel
// cost two loads and an add; wider labels are coded with comparisons.
template <class T>
struct RowCoder {
    TargetCoder<T> coder;
    uint32_t width;
    RowCoder(const TargetCoding& c, uint32_t w) : coder(c), width(w) {}
    RowCoder(const TargetCoder<T>& c, uint32_t w) : coder(c), width(w) {}
    AM_INLINE uint32_t operator()(T v) const { return coder(v) * width; }
};

template <>
struct RowCoder<uint8_t> {
    uint32_t row[256];
    RowCoder(const TargetCoding& c, uint32_t w) : RowCoder(TargetCoder<uint8_t>(c), w) {}
    RowCoder(const TargetCoder<uint8_t>& coder, uint32_t w) {
        for (int v = 0; v < 256; ++v) row[v] = coder(static_cast<uint8_t>(v)) * w;
    }
    AM_INLINE uint32_t operator()(uint8_t v) const { return row[v]; }
};

template <class P>
struct ColCoder {
    PredCoder<P> coder;
    explicit ColCoder(const PredCoding& c) : coder(c) {}
    explicit ColCoder(const PredCoder<P>& c) : coder(c) {}
    AM_INLINE uint32_t operator()(P v) const { return coder(v); }
};

template <>
struct ColCoder<uint8_t> {
    uint32_t col[256];
    explicit ColCoder(const PredCoding& c) : ColCoder(PredCoder<uint8_t>(c)) {}
    explicit ColCoder(const PredCoder<uint8_t>& coder) {
        for (int v = 0; v < 256; ++v) col[v] = coder(static_cast<uint8_t>(v));
    }
    AM_INLINE uint32_t operator()(uint8_t v) const { return col[v]; }
};

template <class T, class P>
struct Coders {
    RowCoder<T> row;
    ColCoder<P> col;
    Coders(const TargetCoding& tc, const PredCoding& pc)
        : row(tc, static_cast<uint32_t>(table_cols(tc.num_classes))), col(pc) {}
    Coders(const TargetCoder<T>& t, const PredCoder<P>& p, uint32_t width) : row(t, width), col(p) {}
    AM_INLINE uint32_t bin(T t, P p) const { return row(t) + col(p); }
};

// Changes in a block above this count are cheaper to scatter than to walk.
constexpr int kScatterAbove = 12;

template <class T, class P, class Sink, class Coders>
AM_INLINE void scatter(const T* t, const P* p, int64_t n, const Coders& code, Sink& tab) {
    tab.note_singles();
    int64_t j = 0;
    // Bins of 8 pixels first, then their increments: the lookups (loads) are
    // not ordered behind the table stores, which the compiler must assume alias.
    for (; j + 8 <= n; j += 8) {
        uint32_t bin[8];
        for (int u = 0; u < 8; ++u) bin[u] = code.bin(t[j + u], p[j + u]);
        for (int u = 0; u < 8; ++u) tab.add_one(static_cast<uint32_t>(u), bin[u]);
    }
    for (; j < n; ++j) tab.add_one(static_cast<uint32_t>(j), code.bin(t[j], p[j]));
}

template <class Mask, class T, class P, class Sink, class Coders>
AM_INLINE void count_contiguous(const T* t, const P* p, int64_t n, const Coders& code, Sink& tab) {
    if (n <= 0) return;
    int64_t run_start = 0;
    T run_t = t[0];
    P run_p = p[0];
    int64_t i = 1;
    for (; i + 64 <= n; i += 64) {
        uint64_t m = Mask::pair_change_mask64(t + i, p + i);
        if (m == 0) continue;  // the current run goes on through the block
        if (__builtin_popcountll(m) > kScatterAbove) {
            tab.add_run(code.bin(run_t, run_p), i - run_start);
            scatter(t + i, p + i, 64, code, tab);
            run_start = i + 64;  // a run continuing past the block starts here
            run_t = t[i + 63];
            run_p = p[i + 63];
            continue;
        }
        do {
            const int64_t at = i + __builtin_ctzll(m);
            tab.add_run(code.bin(run_t, run_p), at - run_start);
            run_start = at;
            run_t = t[at];
            run_p = p[at];
            m &= m - 1;
        } while (m != 0);
    }
    for (; i < n; ++i) {
        if (t[i] != run_t || p[i] != run_p) {
            tab.add_run(code.bin(run_t, run_p), i - run_start);
            run_start = i;
            run_t = t[i];
            run_p = p[i];
        }
    }
    tab.add_run(code.bin(run_t, run_p), n - run_start);
}

template <class T, class P, class Sink, class Coders>
AM_INLINE void count_strided(const char* t, int64_t ts, const char* p, int64_t ps, int64_t n,
                             const Coders& code, Sink& tab) {
    tab.note_singles();
    auto bin_at = [&](int64_t j) {
        T tv;
        P pv;
        std::memcpy(&tv, t + j * ts, sizeof(T));
        std::memcpy(&pv, p + j * ps, sizeof(P));
        return code.bin(tv, pv);
    };
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {  // loads before stores, as in scatter
        uint32_t bin[8];
        for (int u = 0; u < 8; ++u) bin[u] = bin_at(j + u);
        for (int u = 0; u < 8; ++u) tab.add_one(static_cast<uint32_t>(u), bin[u]);
    }
    for (; j < n; ++j) tab.add_one(static_cast<uint32_t>(j), bin_at(j));
}

// Whether every row of an array starting at `first` with these byte strides is aligned for T.
template <class T>
AM_INLINE bool aligned_rows(const char* first, const int64_t* strides, int nd) {
    bool ok = reinterpret_cast<uintptr_t>(first) % alignof(T) == 0;
    for (int d = 0; d < nd; ++d) ok = ok && strides[d] % static_cast<int64_t>(alignof(T)) == 0;
    return ok;
}

// Count the pairs with flat indices [begin, end) of the simplified geometry.
template <class Mask, class T, class P, class Sink>
AM_INLINE void count_range_impl(const char* t0, const char* p0, const Geometry& g, int64_t begin,
                                int64_t end, const Coders<T, P>& code, Sink& tab) {
    const int nd = g.ndim;
    const int64_t inner = g.inner();
    const int64_t ts = g.t_stride[nd - 1], ps = g.p_stride[nd - 1];
    // Contiguous rows are read through T* and P*, so they must also be aligned
    // (a view of a byte buffer may not be); others are read bytewise.
    const bool contiguous = ts == static_cast<int64_t>(sizeof(T)) && ps == static_cast<int64_t>(sizeof(P)) &&
                            aligned_rows<T>(t0 + g.t_offset, g.t_stride, nd) &&
                            aligned_rows<P>(p0 + g.p_offset, g.p_stride, nd);
    // Odometer over the outer axes, started at the row holding `begin`.
    int64_t idx[kMaxDims];
    int64_t row = begin / inner, col = begin % inner;
    int64_t t_off = g.t_offset, p_off = g.p_offset;
    for (int d = nd - 2; d >= 0; --d) {
        idx[d] = row % g.shape[d];
        row /= g.shape[d];
        t_off += idx[d] * g.t_stride[d];
        p_off += idx[d] * g.p_stride[d];
    }
    int64_t pos = begin;
    while (pos < end) {
        const int64_t n = std::min(inner - col, end - pos);
        const char* t = t0 + t_off + col * ts;
        const char* p = p0 + p_off + col * ps;
        if (contiguous) {
            count_contiguous<Mask>(reinterpret_cast<const T*>(t), reinterpret_cast<const P*>(p), n,
                                   code, tab);
        } else {
            count_strided<T, P>(t, ts, p, ps, n, code, tab);
        }
        pos += n;
        col = 0;
        for (int d = nd - 2; d >= 0; --d) {  // next row
            t_off += g.t_stride[d];
            p_off += g.p_stride[d];
            if (++idx[d] < g.shape[d]) break;
            t_off -= g.shape[d] * g.t_stride[d];
            p_off -= g.shape[d] * g.p_stride[d];
            idx[d] = 0;
        }
    }
}

template <class T, class P, class Sink>
void count_range_portable(const char* t0, const char* p0, const Geometry& g, int64_t begin,
                          int64_t end, const Coders<T, P>& code, Sink& tab) {
    count_range_impl<PortableMask>(t0, p0, g, begin, end, code, tab);
}

#if AM_HAVE_AVX2_DISPATCH
template <class T, class P, class Sink>
AM_AVX512 void count_range_avx512(const char* t0, const char* p0, const Geometry& g, int64_t begin,
                                  int64_t end, const Coders<T, P>& code, Sink& tab) {
    count_range_impl<Avx512Mask>(t0, p0, g, begin, end, code, tab);
}

template <class T, class P, class Sink>
AM_AVX2 void count_range_avx2(const char* t0, const char* p0, const Geometry& g, int64_t begin,
                              int64_t end, const Coders<T, P>& code, Sink& tab) {
    count_range_impl<Avx2Mask>(t0, p0, g, begin, end, code, tab);
}
#endif

template <class T, class P, class Sink>
using RangeFn = void (*)(const char*, const char*, const Geometry&, int64_t, int64_t,
                         const Coders<T, P>&, Sink&);

template <class T, class P, class Sink>
RangeFn<T, P, Sink> pick_range_fn(int isa) {
#if AM_HAVE_AVX2_DISPATCH
    if ((isa < 0 || isa >= 2) && cpu_has_avx512bw()) return &count_range_avx512<T, P, Sink>;
    if (isa != 0 && cpu_has_avx2()) return &count_range_avx2<T, P, Sink>;
#endif
    (void)isa;
    return &count_range_portable<T, P, Sink>;
}

// How many sub-tables a thread scatters into (1 or 2): two break
// store-to-load chains on repeated bins, but both must stay cache-resident.
inline uint32_t sub_tables_for(int64_t bins) {
    const int64_t bytes = bins * static_cast<int64_t>(sizeof(uint32_t));
    if (bytes * 2 <= (int64_t(1) << 19)) return 2;
    return 1;
}

// Per-thread counter memory.  Kept per OS thread between calls (OpenMP
// reuses its worker threads), all zeros whenever no call is running, so a
// call costs no allocation and no page faults; tables too large to keep are
// allocated for the call.  Never throws: reports failure by returning false.
struct ThreadCounters {
    std::unique_ptr<int64_t[]> runs;
    std::unique_ptr<uint32_t[]> singles;
    std::unique_ptr<uint64_t[]> touched;
    int64_t capacity = 0;  // bins
    uint32_t subs = 0;

    bool ensure(int64_t bins, uint32_t want_subs) noexcept {
        if (capacity >= bins && subs >= want_subs) return true;
        runs.reset(new (std::nothrow) int64_t[static_cast<size_t>(bins)]());
        singles.reset(new (std::nothrow) uint32_t[static_cast<size_t>(bins * want_subs)]());
        touched.reset(new (std::nothrow) uint64_t[static_cast<size_t>(touched_words(bins))]());
        if (!runs || !singles || !touched) {
            runs.reset();
            singles.reset();
            touched.reset();
            capacity = 0;
            subs = 0;
            return false;
        }
        capacity = bins;
        subs = want_subs;
        return true;
    }
};

constexpr int64_t kKeepCountersUpTo = int64_t(1) << 19;  // bins kept per thread between calls

inline ThreadCounters& thread_counters() {
    thread_local ThreadCounters counters;
    return counters;
}

}  // namespace detail

// Add the counts of the (target, pred) pairs with flat indices [begin, end)
// of `g` (end < 0: to the last pair) to `table` ((K+2) x (K+1) int64, see
// labels.hpp), marking the blocks it adds to in `table_touched` (a touched
// map of touched_words(bins) words).  `target` and `pred` point at the arrays' data; T and P are the
// labels' unsigned storage types.  Calling it on consecutive ranges gives the
// same table as one call, which lets a caller stop between ranges.
// Throws std::bad_alloc (before counting anything) when memory runs out;
// nothing escapes the parallel region.
template <class T, class P>
KernelResult count_pairs(const void* target, const void* pred, const Geometry& g,
                         const TargetCoding& tc, const PredCoding& pc, const KernelOptions& opt,
                         int64_t* table, uint64_t* table_touched, int64_t begin = 0, int64_t end = -1) {
    using namespace detail;
    KernelResult res;
    if (end < 0 || end > g.pixels) end = g.pixels;
    begin = std::max<int64_t>(0, std::min(begin, end));
    const int64_t n = end - begin;
    if (n <= 0) return res;

    const int64_t bins = table_bins(tc.num_classes);
    const int64_t mult = g.multiplicity;
    const char* t0 = static_cast<const char*>(target);
    const char* p0 = static_cast<const char*>(pred);
    const Coders<T, P> code(tc, pc);
    const auto range_fn = pick_range_fn<T, P, ThreadTables>(opt.isa);
    const uint32_t subs = sub_tables_for(bins);
    const int64_t flush_limit = std::max<int64_t>(1, std::min<int64_t>(opt.flush_limit, int64_t(0xFFFFFFFF)));

    int threads = 1;
#ifdef _OPENMP
    const int64_t by_size = std::max<int64_t>(1, n / std::max<int64_t>(1, opt.min_pixels_per_thread));
    threads = static_cast<int>(std::min<int64_t>(std::max(1, opt.n_threads), by_size));
#endif
    // Large tables are not kept between calls: allocate them here, before any thread starts.
    const bool keep = bins <= kKeepCountersUpTo;
    std::vector<ThreadCounters> call_counters(keep ? 0 : static_cast<size_t>(threads));
    for (auto& c : call_counters) {
        if (!c.ensure(bins, subs)) throw std::bad_alloc();
    }
    std::vector<ThreadCounters*> counters_of(static_cast<size_t>(threads), nullptr);
    const int64_t words = touched_words(bins);
    int failed = 0;  // written only as 1, read after barriers
    int team_size = 1;

    auto work = [&](int tid, int team) {
        ThreadCounters& mine = keep ? thread_counters() : call_counters[static_cast<size_t>(tid)];
        if (!mine.ensure(bins, subs)) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        }
        if (mine.runs) counters_of[static_cast<size_t>(tid)] = &mine;
#ifdef _OPENMP
        if (team > 1) {  // on one thread, a barrier would bind to a caller's own team
#pragma omp barrier
        }
#endif
        int any_failed;
#ifdef _OPENMP
#pragma omp atomic read
#endif
        any_failed = failed;
        if (!any_failed) {
            ThreadTables tab{mine.runs.get(), mine.singles.get(), mine.touched.get(), bins, subs - 1};
            const int64_t share = n / team, extra = n % team;
            const int64_t first = begin + share * tid + std::min<int64_t>(tid, extra);
            const int64_t last = first + share + (tid < extra ? 1 : 0);
            for (int64_t a = first; a < last; a += flush_limit) {
                range_fn(t0, p0, g, a, std::min(last, a + flush_limit), code, tab);
                tab.flush();  // sub-tables hold fewer than flush_limit < 2^32 counts
            }
        }
#ifdef _OPENMP
        if (team > 1) {  // on one thread, a barrier would bind to a caller's own team
#pragma omp barrier
        }
#endif
        // Each thread sums a slice of the touched maps' words over every
        // thread's table into `table`, zeroing what it read, so all counters
        // are zero again afterwards.  Slices are whole words: no word of a map
        // is written by two threads.
        const int64_t slice = (words + team - 1) / team;
        const int64_t w_lo = std::min(words, slice * tid), w_hi = std::min(words, w_lo + slice);
        for (int other = 0; other < team; ++other) {
            ThreadCounters* c = counters_of[static_cast<size_t>(other)];
            if (c == nullptr) continue;
            int64_t* r = c->runs.get();
            uint64_t* map = c->touched.get();
            for_each_touched_block(map, bins, w_lo, w_hi, [&](int64_t b0, int64_t b1) {
                if (!any_failed) {
                    for (int64_t b = b0; b < b1; ++b) table[b] += r[b] * mult;
                    mark_touched(table_touched, static_cast<uint32_t>(b0));
                }
                std::memset(r + b0, 0, static_cast<size_t>(b1 - b0) * sizeof(int64_t));
            });
            for (int64_t w = w_lo; w < w_hi; ++w) map[w] = 0;
        }
    };
#ifdef _OPENMP
    if (threads > 1) {
        // The runtime may grant fewer threads than asked; shares follow the team.
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
    if (failed) throw std::bad_alloc();
    return res;
}

// Small inputs, one thread: count all pairs of `g` into `table`, which must be
// all zeros on entry, and list the bins touched in `touched` (room for
// g.pixels + 1 entries).  Returns how many were touched.  Hand the result to
// settle_small, which leaves the table all zeros again.
template <class T, class P>
int64_t count_pairs_small(const void* target, const void* pred, const Geometry& g,
                          const TargetCoding& tc, const PredCoding& pc, int isa, int64_t* table,
                          uint32_t* touched) {
    using namespace detail;
    const Coders<T, P> code(tc, pc);
    TrackedTable tab{table, touched, 0};
    if (g.pixels > 0) {
        pick_range_fn<T, P, TrackedTable>(isa)(static_cast<const char*>(target), static_cast<const char*>(pred),
                                               g, 0, g.pixels, code, tab);
    }
    return tab.n_touched;
}

// Count the invalid pixels among the touched bins; when there are none and
// `out` (K x K) is given, add the counts (times `multiplicity`) to it, unless
// some entry of `out` would overflow int64 (then returns false and adds
// nothing).  Either way the touched bins are zeroed.
inline bool settle_small(int64_t* table, const uint32_t* touched, int64_t n_touched, int64_t k,
                         int64_t multiplicity, int64_t* out, int64_t& invalid_target, int64_t& invalid_pred) {
    const int64_t cols = table_cols(k);
    invalid_target = 0;
    invalid_pred = 0;
    bool fits = true;
    for (int64_t j = 0; j < n_touched; ++j) {
        const int64_t bin = touched[j], row = bin / cols, col = bin % cols;
        if (row == k + 1) invalid_target += table[bin];
        else if (row < k && col == k) invalid_pred += table[bin];
        else if (row < k && out != nullptr) {
            int64_t add = 0, sum = 0;
            fits = fits && !__builtin_mul_overflow(table[bin], multiplicity, &add) &&
                   !__builtin_add_overflow(out[row * k + col], add, &sum);
        }
    }
    const bool apply = out != nullptr && fits && invalid_target == 0 && invalid_pred == 0;
    for (int64_t j = 0; j < n_touched; ++j) {
        const int64_t bin = touched[j], row = bin / cols, col = bin % cols;
        if (apply && row < k && col < k) out[row * k + col] += table[bin] * multiplicity;
        table[bin] = 0;
    }
    invalid_target *= multiplicity;
    invalid_pred *= multiplicity;
    return fits || invalid_target != 0 || invalid_pred != 0;  // invalid labels are reported first
}

// fn(bin, row, col) for every bin of the marked blocks of a table with `cols` columns.
template <class Fn>
inline void for_each_touched_bin(const uint64_t* map, int64_t bins, int64_t cols, Fn&& fn) {
    for_each_touched_block(map, bins, 0, touched_words(bins), [&](int64_t b0, int64_t b1) {
        int64_t row = b0 / cols, col = b0 % cols;
        for (int64_t b = b0; b < b1; ++b) {
            fn(b, row, col);
            if (++col == cols) {
                col = 0;
                ++row;
            }
        }
    });
}

// Pixels counted in `table` with an invalid target (row K+1) or, among
// evaluated pixels, an invalid prediction (column K).
inline void invalid_counts(const int64_t* table, const uint64_t* touched, int64_t k, int64_t& invalid_target,
                           int64_t& invalid_pred) {
    invalid_target = 0;
    invalid_pred = 0;
    for_each_touched_bin(touched, table_bins(k), table_cols(k), [&](int64_t b, int64_t row, int64_t col) {
        if (row == k + 1) invalid_target += table[b];
        else if (row < k && col == k) invalid_pred += table[b];
    });
}

// out (K x K) += the class part of the working table.
inline void add_class_counts(const int64_t* table, const uint64_t* touched, int64_t k, int64_t* out) {
    for_each_touched_bin(touched, table_bins(k), table_cols(k), [&](int64_t b, int64_t row, int64_t col) {
        if (row < k && col < k) out[row * k + col] += table[b];
    });
}

// Whether out (K x K) += the class part of the table stays within int64.
inline bool class_counts_fit(const int64_t* table, const uint64_t* touched, int64_t k, const int64_t* out) {
    bool fits = true;
    for_each_touched_bin(touched, table_bins(k), table_cols(k), [&](int64_t b, int64_t row, int64_t col) {
        int64_t sum = 0;
        if (row < k && col < k) fits = fits && !__builtin_add_overflow(out[row * k + col], table[b], &sum);
    });
    return fits;
}

// The same over a whole table, for callers that keep no touched map.
inline void invalid_counts(const int64_t* table, int64_t k, int64_t& invalid_target, int64_t& invalid_pred) {
    const int64_t cols = table_cols(k);
    invalid_target = 0;
    invalid_pred = 0;
    for (int64_t c = 0; c < cols; ++c) invalid_target += table[(k + 1) * cols + c];
    for (int64_t r = 0; r < k; ++r) invalid_pred += table[r * cols + k];
}

inline void add_class_counts(const int64_t* table, int64_t k, int64_t* out) {
    const int64_t cols = table_cols(k);
    for (int64_t r = 0; r < k; ++r) {
        for (int64_t c = 0; c < k; ++c) out[r * k + c] += table[r * cols + c];
    }
}

// Zero the marked blocks of `table` and the map itself.
inline void clear_touched(int64_t* table, uint64_t* touched, int64_t k) {
    const int64_t bins = table_bins(k);
    for_each_touched_block(touched, bins, 0, touched_words(bins), [&](int64_t b0, int64_t b1) {
        std::memset(table + b0, 0, static_cast<size_t>(b1 - b0) * sizeof(int64_t));
    });
    std::memset(touched, 0, static_cast<size_t>(touched_words(bins)) * sizeof(uint64_t));
}

}  // namespace am
