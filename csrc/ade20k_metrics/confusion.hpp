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
//           bin per pixel in a table of 8-bit counters that stays in the L1
//           cache and carries into int64 when a counter wraps; the bins of
//           8- and 64-bit labels without a lookup are computed by SIMD.
// Small inputs count straight into int64 on one thread (or, where the table
// is too large to keep between calls, as a sorted list of bins).
// Memory: threads count into private tables only while a team's copies stay
// small (kPrivateTablesUpTo, kPrivateTablesBudget); otherwise the team adds
// to the one working table, so no call allocates per thread.
// Nothing here throws inside a parallel region.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
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

// Working tables of up to this many bins (K <= 1022: ADE20K-847, COCO-Stuff,
// Mapillary) may be given to each thread of a team, kept per OS thread between
// calls (all zeros, 9 MiB at most); larger ones are shared by the team, which
// adds to the one table (see detail::SharedTable): a private copy of a table
// that size costs more to zero and merge than the counting it saves, and
// multiplies memory by the threads.
constexpr int64_t kPrivateTablesUpTo = int64_t(1) << 20;
// The private tables of one call (8-bit and int64 counters) stay within this
// many bytes: a team that would need more shares one table instead.
constexpr int64_t kPrivateTablesBudget = int64_t(1) << 25;

// Whether a team of `threads` gets one table of `bins` each (needing `bytes_per_bin` each).
inline bool private_tables(int64_t bins, int threads, int64_t up_to, int64_t bytes_per_bin) {
    return bins <= std::min(up_to, kPrivateTablesUpTo) &&
           bins * bytes_per_bin * std::max(1, threads) <= kPrivateTablesBudget;
}

struct KernelOptions {
    int n_threads = 1;
    // Fewer threads than asked when each would get fewer pixels than this.
    // Measured on 16 cores (ade20k-metrics bench --sweep-threshold): 2^14
    // pixels per thread was at or near the best for maps of 128x171 to
    // 1024x1366; 2^18 left a 512x683 map at 2.5x less throughput.
    int64_t min_pixels_per_thread = int64_t(1) << 14;
    // The 8-bit counters are folded into int64 after at most this many pixels
    // (they carry when they wrap, so any value is exact: small ones test the folding).
    int64_t flush_limit = int64_t(1) << 31;
    // -1: best the CPU has, 0: portable, 1: AVX2 (NEON on Arm), 2: AVX-512BW (each if present).
    int isa = -1;
    // Tables of more bins than this are shared by the team (capped at
    // kPrivateTablesUpTo; smaller values test the shared path on small K).
    int64_t private_up_to = kPrivateTablesUpTo;
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

// A plain counter table (argmax.hpp's counting, where the argmax dominates).
template <class C>
struct Tables {
    C* base;

    AM_INLINE void add_run(uint32_t bin, int64_t len) { base[bin] += static_cast<C>(len); }
    AM_INLINE void add_one(uint32_t, uint32_t bin) { base[bin] += 1; }
    AM_INLINE void add_eight(const uint32_t* bin) {
        for (uint32_t u = 0; u < 8; ++u) add_one(u, bin[u]);
    }
    AM_INLINE void note_singles() {}
};

// The counters of one thread.  Runs add their length to an int64 table;
// single pixels from noisy blocks go to a table of 8-bit counters, small
// enough to stay in the L1 cache for ADE20K's 150 classes (22 KiB), whose
// wrap-around to zero (one increment in 256) carries 256 into the int64
// table.  Each add sets a byte for its 64-bin block in `marks` (a plain
// store: the touched map's read-modify-write of one word would cost four
// more instructions a run).  flush folds the 8-bit counters into the int64
// table and the marks into the touched map, leaving both all zeros.
struct ThreadTables {
    int64_t* runs;
    uint8_t* singles;
    uint64_t* touched;  // blocks of `runs` that may be non-zero
    uint8_t* marks;     // one byte a block, marks_bytes(bins) of them
    int64_t bins;
    bool used_singles = false;

    static int64_t marks_bytes(int64_t bins) { return ((((bins + 63) >> kBlockShift) + 7) / 8) * 8; }

    // add_run through copies of the pointers, for a loop of runs: the mark's
    // byte store may alias the members, which would be reloaded after each.
    struct RunAdder {
        int64_t* runs;
        uint8_t* marks;
        AM_INLINE void mark(uint32_t bin) const { marks[bin >> kBlockShift] = 1; }
        AM_INLINE void add_run(uint32_t bin, int64_t len) const {
            runs[bin] += len;
            mark(bin);
        }
    };
    RunAdder run_adder() const { return {runs, marks}; }
    AM_INLINE void mark(uint32_t bin) { run_adder().mark(bin); }
    AM_INLINE void add_run(uint32_t bin, int64_t len) { run_adder().add_run(bin, len); }
    AM_INLINE void add_one(uint32_t, uint32_t bin) {
        if (__builtin_expect(++singles[bin] == 0, 0)) carry(bin);
    }
    // The same for eight bins.  The pointers are copied first: a store through
    // uint8_t* may alias anything, which would reload them after every store.
    AM_INLINE void add_eight(const uint32_t* bin) {
        uint8_t* const s = singles;
        const RunAdder r = run_adder();
        for (int u = 0; u < 8; ++u) {
            if (__builtin_expect(++s[bin[u]] == 0, 0)) r.add_run(bin[u], 256);
        }
    }
    void carry(uint32_t bin) { add_run(bin, 256); }
    AM_INLINE void note_singles() { used_singles = true; }

    void flush() {
        fold_singles();
        // Marks to the touched map, eight blocks a word read.
        const int64_t bytes = marks_bytes(bins);
        for (int64_t b = 0; b < bytes; b += 8) {
            uint64_t word;
            std::memcpy(&word, marks + b, sizeof(word));
            if (word == 0) continue;
            for (int64_t u = b; u < b + 8; ++u) {
                if (marks[u] != 0) mark_touched(touched, static_cast<uint32_t>(u << kBlockShift));
            }
            std::memset(marks + b, 0, 8);
        }
    }

   private:
    // Fold the 8-bit counters into the int64 table and zero them, eight at a
    // time, skipping (and leaving unmarked) the many zero ones of coherent
    // maps, which are tested 64 at a time (one 64-bin block).
    void fold_singles() {
        if (!used_singles) return;
        int64_t b = 0;
        for (; b + 64 <= bins; b += 64) {
            uint64_t any = 0;
            for (int w = 0; w < 64; w += 8) {
                uint64_t word;
                std::memcpy(&word, singles + b + w, sizeof(word));
                any |= word;
            }
            if (any == 0) continue;
            for (int64_t e = b; e < b + 64; e += 8) fold_eight(e);
        }
        for (; b + 8 <= bins; b += 8) fold_eight(b);
        for (; b < bins; ++b) {
            if (singles[b] == 0) continue;
            runs[b] += singles[b];
            singles[b] = 0;
            mark(static_cast<uint32_t>(b));
        }
        used_singles = false;
    }
    void fold_eight(int64_t b) {
        uint64_t word;
        std::memcpy(&word, singles + b, sizeof(word));
        if (word == 0) return;
        for (int u = 0; u < 8; ++u) runs[b + u] += singles[b + u];
        std::memset(singles + b, 0, 8);
        mark(static_cast<uint32_t>(b));  // b % 8 == 0: the eight share a 64-bin block
    }
};

// What a loop of runs adds through: the sink itself, or a copy of the
// pointers it adds through (ThreadTables::RunAdder).
template <class Sink>
AM_INLINE Sink& run_adder(Sink& tab) {
    return tab;
}
AM_INLINE ThreadTables::RunAdder run_adder(ThreadTables& tab) { return tab.run_adder(); }

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
    AM_INLINE void add_eight(const uint32_t* bin) {
        for (uint32_t u = 0; u < 8; ++u) add_one(u, bin[u]);
    }
    AM_INLINE void note_singles() {}
};

// mark_touched for a map that the threads of a team mark at once.
inline void mark_touched_shared(uint64_t* map, uint32_t bin) {
    uint64_t* word = map + (bin >> (kBlockShift + 6));
    const uint64_t bit = uint64_t(1) << ((bin >> kBlockShift) & 63);
    uint64_t now;
#ifdef _OPENMP
#pragma omp atomic read
#endif
    now = *word;
    if ((now & bit) != 0) return;  // most marks are already there: no write
#ifdef _OPENMP
#pragma omp atomic update
#endif
    *word |= bit;
}

// One thread's counts for a table that the whole team adds to (tables too
// large for a copy per thread).  A small direct-mapped cache of (bin, count)
// in front of the table absorbs the long runs and the few busy bins of real
// label maps, so the team's atomic adds are few and rarely meet on one cache
// line; noise, which misses this cache, misses the cache of a table this
// large anyway.  Counts reach the table, times `mult`, when their slot is
// taken by another bin and at flush(), which must be called at the end.
struct SharedTable {
    static constexpr int kSlotBits = 8;
    static constexpr int kSlots = 1 << kSlotBits;
    static constexpr uint32_t kNoBin = 0xFFFFFFFFu;  // above every bin: (K+2)(K+1) < 2^32
    int64_t* table;
    uint64_t* touched;  // marked as counts arrive; may be null
    int64_t mult;
    bool atomic;        // false: this thread is the only one adding to `table`
    uint32_t bin_of[kSlots];
    int64_t count_of[kSlots];

    SharedTable(int64_t* t, uint64_t* map, int64_t m, bool shared) : table(t), touched(map), mult(m), atomic(shared) {
        for (int s = 0; s < kSlots; ++s) {
            bin_of[s] = kNoBin;
            count_of[s] = 0;
        }
    }
    static AM_INLINE uint32_t slot(uint32_t bin) { return (bin * 2654435761u) >> (32 - kSlotBits); }

    AM_INLINE void add_run(uint32_t bin, int64_t len) {
        const uint32_t s = slot(bin);
        if (bin_of[s] != bin) {
            spill(s);
            bin_of[s] = bin;
        }
        count_of[s] += len;
    }
    AM_INLINE void add_one(uint32_t, uint32_t bin) { add_run(bin, 1); }
    AM_INLINE void add_eight(const uint32_t* bin) {
        for (int u = 0; u < 8; ++u) add_run(bin[u], 1);
    }
    AM_INLINE void note_singles() {}

    void spill(uint32_t s) {
        const int64_t c = count_of[s];
        if (c == 0) return;
        count_of[s] = 0;
        const uint32_t bin = bin_of[s];
        const int64_t add = c * mult;  // at most the input's size: fits
        if (atomic) {
#ifdef _OPENMP
#pragma omp atomic update
#endif
            table[bin] += add;
            if (touched != nullptr) mark_touched_shared(touched, bin);
        } else {
            table[bin] += add;
            if (touched != nullptr) mark_touched(touched, bin);
        }
    }
    void flush() {
        for (uint32_t s = 0; s < static_cast<uint32_t>(kSlots); ++s) spill(s);
    }
};

// Every (bin, length) of the runs and single pixels, in order of arrival,
// packed as bin << 32 | length (lengths below 2^32), for sorting.
struct PairList {
    uint64_t* items;
    int64_t n;

    AM_INLINE void add_run(uint32_t bin, int64_t len) {
        if (len != 0) items[n++] = uint64_t(bin) << 32 | static_cast<uint64_t>(len);
    }
    AM_INLINE void add_one(uint32_t, uint32_t bin) { items[n++] = uint64_t(bin) << 32 | 1; }
    AM_INLINE void add_eight(const uint32_t* bin) {
        for (int u = 0; u < 8; ++u) add_one(0, bin[u]);
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
        for (int v = 0; v < 256; ++v) row[v] = coder(static_cast<uint8_t>(coder.boolean && v != 0 ? 1 : v)) * w;
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
        for (int v = 0; v < 256; ++v) col[v] = coder(static_cast<uint8_t>(coder.boolean && v != 0 ? 1 : v));
    }
    AM_INLINE uint32_t operator()(uint8_t v) const { return col[v]; }
};

template <class T, class P>
struct Coders {
    RowCoder<T> row;
    ColCoder<P> col;
    SimpleCoding simple;      // ok: SIMD may compute the bins (8-bit labels, no lookup)
    SimpleCoding64 simple64;  // the same for 64-bit labels
    Coders(const TargetCoding& tc, const PredCoding& pc)
        : row(tc, static_cast<uint32_t>(table_cols(tc.num_classes))), col(pc) {
        if (sizeof(T) == 1 && sizeof(P) == 1 && tc.lut == nullptr && !tc.reduce_zero_label && !tc.boolean &&
            !pc.boolean && table_bins(tc.num_classes) <= (int64_t(1) << 16)) {
            simple.ok = true;
            simple.k = static_cast<uint16_t>(tc.num_classes);
            simple.width = static_cast<uint16_t>(table_cols(tc.num_classes));
            simple.t_limit = static_cast<uint16_t>(std::min<uint64_t>(tc.limit, 256));
            simple.t_ignore = tc.has_ignore ? static_cast<uint16_t>(tc.ignore_bits) : uint16_t(0xFFFF);
            simple.p_limit = static_cast<uint16_t>(std::min<uint64_t>(pc.limit, 256));
        }
        if (sizeof(T) == 8 && sizeof(P) == 8 && tc.lut == nullptr && !tc.reduce_zero_label) {
            simple64.ok = true;
            simple64.has_ignore = tc.has_ignore;
            simple64.k = static_cast<uint64_t>(tc.num_classes);
            simple64.width = static_cast<uint64_t>(table_cols(tc.num_classes));
            simple64.t_limit = tc.limit;
            simple64.t_ignore = tc.ignore_bits;
            simple64.p_limit = pc.limit;
        }
    }
    Coders(const TargetCoder<T>& t, const PredCoder<P>& p, uint32_t width) : row(t, width), col(p) {}
    AM_INLINE uint32_t bin(T t, P p) const { return row(t) + col(p); }
};

// Changes in a block above this count are cheaper to scatter than to walk.
constexpr int kScatterAbove = 12;

template <class Mask, class T, class P, class Sink, class Coders>
AM_INLINE void scatter(const T* t, const P* p, int64_t n, const Coders& code, Sink& tab) {
    tab.note_singles();
    // SIMD bins for 8-bit and for 64-bit labels without a lookup.
    if constexpr (Mask::kVectorBins && sizeof(T) == sizeof(P) && (sizeof(T) == 1 || sizeof(T) == 8)) {
        using U = std::conditional_t<sizeof(T) == 1, uint8_t, uint64_t>;
        const auto& simple = [&]() -> const auto& {
            if constexpr (sizeof(T) == 1) return code.simple;
            else return code.simple64;
        }();
        if (n == 64 && simple.ok) {
            alignas(32) uint32_t bin[64];
            Mask::simple_bins64(reinterpret_cast<const U*>(t), reinterpret_cast<const U*>(p), simple, bin);
            for (int u = 0; u < 64; u += 8) tab.add_eight(bin + u);
            return;
        }
    }
    int64_t j = 0;
    // Bins of 8 pixels first, then their increments: the lookups (loads) are
    // not ordered behind the table stores, which the compiler must assume alias.
    for (; j + 8 <= n; j += 8) {
        uint32_t bin[8];
        for (int u = 0; u < 8; ++u) bin[u] = code.bin(t[j + u], p[j + u]);
        tab.add_eight(bin);
    }
    for (; j < n; ++j) tab.add_one(static_cast<uint32_t>(j), code.bin(t[j], p[j]));
}

// Blocks whose change positions are collected before their runs are added.
constexpr int kBlocksPerPass = 64;

// Where the pair changes in blocks [i, stop) of a row (block starts 64 apart),
// as offsets from `base` in `out`, written without a branch per change (four
// per block unconditionally, the rest rarely).  Stops early, with i at the
// block, before a block of more than kScatterAbove changes.  Returns how many
// it wrote.  Kept apart from the runs so that its few live values stay in
// registers.
template <class Mask, class T, class P>
AM_INLINE int collect_changes(const T* t, const P* p, int64_t& i, int64_t stop, int64_t base, uint32_t* out) {
    uint32_t* const first = out;
    int64_t at = i;
    for (; at < stop; at += 64) {
        uint64_t m = Mask::pair_change_mask64(t + at, p + at);
        const int changes = __builtin_popcountll(m);
        if (__builtin_expect(changes > kScatterAbove, 0)) break;
        const auto off = static_cast<uint32_t>(at - base);
        // Entries past `changes` are junk, overwritten by the next block's.
        out[0] = off + Mask::lowest_bit_or_junk(m);
        m &= m - 1;
        out[1] = off + Mask::lowest_bit_or_junk(m);
        m &= m - 1;
        out[2] = off + Mask::lowest_bit_or_junk(m);
        m &= m - 1;
        out[3] = off + Mask::lowest_bit_or_junk(m);
        if (__builtin_expect(changes > 4, 0)) {
            m &= m - 1;
            for (int u = 4; u < changes; ++u) {
                out[u] = off + static_cast<uint32_t>(__builtin_ctzll(m));
                m &= m - 1;
            }
        }
        out += changes;
    }
    i = at;
    return static_cast<int>(out - first);
}

// Runs along a contiguous row.  Each pass collects where the pair changes in
// up to kBlocksPerPass blocks (collect_changes), then adds the runs in a loop
// of known length: real maps give blocks with 0, 1, 2 or 3 changes in no
// predictable order, and a loop over each block's changes would mispredict
// its exit about once a block.  A block of many changes is scattered.
template <class Mask, class T, class P, class Sink, class Coders>
AM_INLINE void count_contiguous(const T* t, const P* p, int64_t n, const Coders& code, Sink& tab) {
    if (n <= 0) return;
    int64_t run_start = 0;
    uint32_t run_bin = code.bin(t[0], p[0]);
    uint32_t pos[kBlocksPerPass * kScatterAbove + 4];  // offsets from the pass's first block
    int64_t i = 1;
    while (i + 64 <= n) {
        const int64_t base = i;
        const int64_t stop = std::min(n - 63, i + 64 * int64_t(kBlocksPerPass));
        while (i < stop) {
            const int count = collect_changes<Mask>(t, p, i, stop, base, pos);
            // The runs, with positions counted from `base`.
            const T* const tb = t + base;
            const P* const pb = p + base;
            int64_t start = run_start - base;
            auto&& runs = run_adder(tab);
            for (int j = 0; j < count; ++j) {
                const int64_t at = pos[j];
                runs.add_run(run_bin, at - start);
                start = at;
                run_bin = code.bin(tb[at], pb[at]);
            }
            run_start = start + base;
            if (i < stop) {  // a block of many changes
                tab.add_run(run_bin, i - run_start);
                scatter<Mask>(t + i, p + i, 64, code, tab);
                run_start = i + 64;  // a run continuing past the block starts here
                run_bin = code.bin(t[i + 63], p[i + 63]);
                i += 64;
            }
        }
    }
    for (; i < n; ++i) {
        if (t[i] != t[i - 1] || p[i] != p[i - 1]) {
            tab.add_run(run_bin, i - run_start);
            run_start = i;
            run_bin = code.bin(t[i], p[i]);
        }
    }
    tab.add_run(run_bin, n - run_start);
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
        tab.add_eight(bin);
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
    RowCursor at(g, begin);
    for (int64_t pos = begin; pos < end; at.next_row(g)) {
        const int64_t n = std::min(inner - at.col, end - pos);
        const char* t = t0 + at.t_off + at.col * ts;
        const char* p = p0 + at.p_off + at.col * ps;
        if (contiguous) {
            count_contiguous<Mask>(reinterpret_cast<const T*>(t), reinterpret_cast<const P*>(p), n,
                                   code, tab);
        } else {
            count_strided<T, P>(t, ts, p, ps, n, code, tab);
        }
        pos += n;
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

#if AM_HAVE_NEON
template <class T, class P, class Sink>
void count_range_neon(const char* t0, const char* p0, const Geometry& g, int64_t begin, int64_t end,
                      const Coders<T, P>& code, Sink& tab) {
    count_range_impl<NeonMask>(t0, p0, g, begin, end, code, tab);
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
#if AM_HAVE_NEON
    if (isa != 0) return &count_range_neon<T, P, Sink>;
#endif
    (void)isa;
    return &count_range_portable<T, P, Sink>;
}

// Per-thread counter memory for private tables.  Kept per OS thread between
// calls (OpenMP reuses its worker threads), all zeros whenever no call is
// running, so a call costs no allocation and no page faults; never larger
// than kPrivateTablesUpTo bins (9 MiB, and a byte of marks a 64-bin block).  Never throws: reports failure by
// returning false.
struct ThreadCounters {
    std::unique_ptr<int64_t[]> runs;
    std::unique_ptr<uint8_t[]> singles;
    std::unique_ptr<uint64_t[]> touched;
    std::unique_ptr<uint8_t[]> marks;
    int64_t capacity = 0;  // bins

    bool ensure(int64_t bins) noexcept {
        if (capacity >= bins) return true;
        runs.reset(new (std::nothrow) int64_t[static_cast<size_t>(bins)]());
        singles.reset(new (std::nothrow) uint8_t[static_cast<size_t>(bins)]());
        touched.reset(new (std::nothrow) uint64_t[static_cast<size_t>(touched_words(bins))]());
        marks.reset(new (std::nothrow) uint8_t[static_cast<size_t>(ThreadTables::marks_bytes(bins))]());
        if (!runs || !singles || !touched || !marks) {
            runs.reset();
            singles.reset();
            touched.reset();
            marks.reset();
            capacity = 0;
            return false;
        }
        capacity = bins;
        return true;
    }
};

inline ThreadCounters& thread_counters() {
    thread_local ThreadCounters counters;
    return counters;
}

// Bytes of private counters per bin: int64 runs and 8-bit singles.
constexpr int64_t kPrivateBytesPerBin = 9;

}  // namespace detail

// Add the counts of the (target, pred) pairs with flat indices [begin, end)
// of `g` (end < 0: to the last pair) to `table` ((K+2) x (K+1) int64, see
// labels.hpp), marking the blocks it adds to in `table_touched` (a touched
// map of touched_words(bins) words).  `target` and `pred` point at the arrays' data; T and P are the
// labels' unsigned storage types.  Calling it on consecutive ranges gives the
// same table as one call, which lets a caller stop between ranges.
// Memory: threads get private counters (kept per OS thread) only within
// private_tables(); otherwise they add to `table` itself and allocate nothing.
// Throws std::bad_alloc (before counting anything) when memory for private
// counters runs out; nothing escapes the parallel region.
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
    const int64_t flush_limit = std::max<int64_t>(1, std::min<int64_t>(opt.flush_limit, int64_t(0xFFFFFFFF)));

    int threads = 1;
#ifdef _OPENMP
    const int64_t by_size = std::max<int64_t>(1, n / std::max<int64_t>(1, opt.min_pixels_per_thread));
    threads = static_cast<int>(std::min<int64_t>(std::max(1, opt.n_threads), by_size));
#endif
    const bool own_tables = private_tables(bins, threads, opt.private_up_to, kPrivateBytesPerBin);
    const auto private_fn = pick_range_fn<T, P, ThreadTables>(opt.isa);
    const auto shared_fn = pick_range_fn<T, P, SharedTable>(opt.isa);
    std::vector<ThreadCounters*> counters_of(own_tables ? static_cast<size_t>(threads) : 0, nullptr);
    const int64_t words = touched_words(bins);
    int failed = 0;  // written only as 1, read after barriers
    int team_size = 1;

    auto share_of = [&](int tid, int team, int64_t& first, int64_t& last) {
        const int64_t share = n / team, extra = n % team;
        first = begin + share * tid + std::min<int64_t>(tid, extra);
        last = first + share + (tid < extra ? 1 : 0);
    };
    // Large tables: every thread adds to `table` through its own cache.
    auto shared_work = [&](int tid, int team) {
        SharedTable tab(table, table_touched, mult, team > 1);
        int64_t first = 0, last = 0;
        share_of(tid, team, first, last);
        if (first < last) shared_fn(t0, p0, g, first, last, code, tab);
        tab.flush();
    };
    auto private_work = [&](int tid, int team) {
        ThreadCounters& mine = thread_counters();
        if (!mine.ensure(bins)) {
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
        // Alone and with every pair counted once, the thread counts straight
        // into `table`: nothing to merge.
        const bool direct = team == 1 && mult == 1;
        if (!any_failed) {
            ThreadTables tab{direct ? table : mine.runs.get(), mine.singles.get(),
                             direct ? table_touched : mine.touched.get(), mine.marks.get(), bins};
            int64_t first = 0, last = 0;
            share_of(tid, team, first, last);
            for (int64_t a = first; a < last; a += flush_limit) {
                private_fn(t0, p0, g, a, std::min(last, a + flush_limit), code, tab);
                tab.flush();
            }
        }
        if (direct) return;
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
    auto work = [&](int tid, int team) {
        if (own_tables) private_work(tid, team);
        else shared_work(tid, team);
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

// Bytes one call may allocate besides its (K, K) output matrix, whatever its
// thread count: the working table and its touched map, the private counters
// of a team (kPrivateTablesBudget at most, only for tables that small) and the
// small-input scratch (a bin list of kSmallInputPixels entries).  The
// memory check before a call (python/.../core/inputs.py) counts this.
inline int64_t call_scratch_bytes(int64_t k) {
    const int64_t bins = table_bins(k);
    int64_t bytes = bins * 8 + touched_words(bins) * 8 + kSmallInputPixels * 12;
    if (bins <= kPrivateTablesUpTo) bytes += kPrivateTablesBudget;
    return bytes;
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

// Small inputs whose table is too large to keep (see kPrivateTablesUpTo),
// one thread: the (bin, count) pairs of `g`, sorted by bin, with one entry
// per bin (packed as bin << 32 | count) in `pairs`, which needs room for
// g.pixels + 1 entries; g.pixels must be below 2^32.  Returns how many.
// Costs O(pixels log pixels) and no memory of the table's size.
template <class T, class P>
int64_t count_pairs_sorted(const void* target, const void* pred, const Geometry& g, const TargetCoding& tc,
                           const PredCoding& pc, int isa, uint64_t* pairs) {
    using namespace detail;
    const Coders<T, P> code(tc, pc);
    PairList list{pairs, 0};
    if (g.pixels > 0) {
        pick_range_fn<T, P, PairList>(isa)(static_cast<const char*>(target), static_cast<const char*>(pred), g, 0,
                                           g.pixels, code, list);
    }
    std::sort(pairs, pairs + list.n);
    int64_t distinct = 0;
    for (int64_t j = 0; j < list.n; ++j) {
        if (distinct > 0 && (pairs[distinct - 1] >> 32) == (pairs[j] >> 32)) {
            pairs[distinct - 1] += pairs[j] & 0xFFFFFFFFu;  // counts of one bin sum to < 2^32
        } else {
            pairs[distinct++] = pairs[j];
        }
    }
    return distinct;
}

// settle_small for the pairs of count_pairs_sorted.
inline bool settle_sorted(const uint64_t* pairs, int64_t n, int64_t k, int64_t multiplicity, int64_t* out,
                          int64_t& invalid_target, int64_t& invalid_pred) {
    const int64_t cols = table_cols(k);
    invalid_target = 0;
    invalid_pred = 0;
    bool fits = true;
    for (int64_t j = 0; j < n; ++j) {
        const auto bin = static_cast<int64_t>(pairs[j] >> 32), count = static_cast<int64_t>(pairs[j] & 0xFFFFFFFFu);
        const int64_t row = bin / cols, col = bin % cols;
        if (row == k + 1) invalid_target += count;
        else if (row < k && col == k) invalid_pred += count;
        else if (row < k && out != nullptr) {
            int64_t add = 0, sum = 0;
            fits = fits && !__builtin_mul_overflow(count, multiplicity, &add) &&
                   !__builtin_add_overflow(out[row * k + col], add, &sum);
        }
    }
    if (out != nullptr && fits && invalid_target == 0 && invalid_pred == 0) {
        for (int64_t j = 0; j < n; ++j) {
            const auto bin = static_cast<int64_t>(pairs[j] >> 32), count = static_cast<int64_t>(pairs[j] & 0xFFFFFFFFu);
            const int64_t row = bin / cols, col = bin % cols;
            if (row < k && col < k) out[row * k + col] += count * multiplicity;
        }
    }
    invalid_target *= multiplicity;
    invalid_pred *= multiplicity;
    return fits || invalid_target != 0 || invalid_pred != 0;  // invalid labels are reported first
}

// fn(table offset, row, column, length) for each piece of a touched block
// that lies in one row of the (K+2) x (K+1) table (a block may span rows).
template <class Fn>
inline void for_each_touched_segment(const uint64_t* touched, int64_t k, Fn&& fn) {
    const int64_t cols = table_cols(k), bins = table_bins(k);
    for_each_touched_block(touched, bins, 0, touched_words(bins), [&](int64_t b0, int64_t b1) {
        int64_t row = b0 / cols, col = b0 % cols;
        for (int64_t b = b0; b < b1; ++row, col = 0) {
            const int64_t len = std::min(b1 - b, cols - col);
            fn(b, row, col, len);
            b += len;
        }
    });
}

// out (K x K) += the class part of the working table, over the touched
// blocks only, unless some entry would overflow int64: then out is left as
// it was and the result is false.  One pass; the rare overflow is undone.
inline bool add_class_counts_checked(const int64_t* table, const uint64_t* touched, int64_t k, int64_t* out) {
    // fn(table offset, out offset, length) for each run of class bins (row and column < K).
    auto for_each_class_run = [&](auto&& fn) {
        for_each_touched_segment(touched, k, [&](int64_t b, int64_t row, int64_t col, int64_t len) {
            const int64_t cls = std::min(len, k - col);  // columns < K of this segment
            if (row < k && cls > 0) fn(b, row * k + col, cls);
        });
    };
    // Wrapping arithmetic on uint64 (defined), overflow read from the signs.
    uint64_t overflowed = 0;
    for_each_class_run([&](int64_t b, int64_t o, int64_t len) {
        auto* dst = reinterpret_cast<uint64_t*>(out + o);
        const auto* src = reinterpret_cast<const uint64_t*>(table + b);
        for (int64_t j = 0; j < len; ++j) {
            const uint64_t x = dst[j], y = src[j], sum = x + y;
            overflowed |= (x ^ sum) & (y ^ sum);  // sign bit: both operands' signs differ from the sum's
            dst[j] = sum;
        }
    });
    if ((overflowed >> 63) == 0) return true;
    for_each_class_run([&](int64_t b, int64_t o, int64_t len) {
        auto* dst = reinterpret_cast<uint64_t*>(out + o);
        const auto* src = reinterpret_cast<const uint64_t*>(table + b);
        for (int64_t j = 0; j < len; ++j) dst[j] -= src[j];
    });
    return false;
}

// Pixels counted in `table` with an invalid target (row K+1) or, among
// evaluated pixels, an invalid prediction (column K).
inline void invalid_counts(const int64_t* table, int64_t k, int64_t& invalid_target, int64_t& invalid_pred) {
    const int64_t cols = table_cols(k);
    invalid_target = 0;
    invalid_pred = 0;
    for (int64_t c = 0; c < cols; ++c) invalid_target += table[(k + 1) * cols + c];
    for (int64_t r = 0; r < k; ++r) invalid_pred += table[r * cols + k];
}

// invalid_counts over the touched blocks only (the rest of the table is
// zero): reads no page of a large table that the call did not write.
inline void invalid_counts_touched(const int64_t* table, const uint64_t* touched, int64_t k, int64_t& invalid_target,
                                   int64_t& invalid_pred) {
    invalid_target = 0;
    invalid_pred = 0;
    for_each_touched_segment(touched, k, [&](int64_t b, int64_t row, int64_t col, int64_t len) {
        if (row < k && col + len > k) {
            invalid_pred += table[b + (k - col)];  // column K
        } else if (row == k + 1) {
            for (int64_t j = 0; j < len; ++j) invalid_target += table[b + j];
        }
    });
}

// The invalid counts of the touched blocks and, when there are none,
// add_class_counts_checked (its result; out unchanged when false).  With
// invalid pixels `out` is not written and the result is true: they are
// reported first.
inline bool settle_touched(const int64_t* table, const uint64_t* touched, int64_t k, int64_t* out,
                           int64_t& invalid_target, int64_t& invalid_pred) {
    invalid_counts_touched(table, touched, k, invalid_target, invalid_pred);
    if (invalid_target != 0 || invalid_pred != 0) return true;
    return add_class_counts_checked(table, touched, k, out);
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
