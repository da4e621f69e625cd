// Self-check of the C++ kernel without Python, for every SIMD path this CPU
// (or emulator) has: count_pairs (private per-thread tables and one shared
// table), count_pairs_small and count_pairs_sorted against a plain loop over
// the pixels, and each change-mask policy against a plain loop too.
// Built and run by tests/test_native.py, natively and, where a cross
// compiler and qemu are installed, for 64-bit Arm (the NEON path).
// Prints what it checked; exits 1 on the first disagreement.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "ade20k_metrics/confusion.hpp"

namespace {

std::mt19937_64 rng(12345);

int64_t uniform_int(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

// Labels of type L: runs of one value (coherent maps) mixed with noisy
// stretches, with ignored, negative and too-large values sprinkled in.
template <class L>
std::vector<L> make_labels(int64_t n, int64_t k, int64_t ignore, int64_t* extra_ptr = nullptr) {
    std::vector<L> v(static_cast<size_t>(n));
    auto draw = [&]() -> int64_t {
        const int64_t r = uniform_int(0, 99);
        if (r < 3) return ignore;
        if (r < 4) return extra_ptr ? *extra_ptr : k;  // invalid
        if (r < 5 && std::is_signed<L>::value) return -1;
        return uniform_int(0, k - 1);
    };
    int64_t i = 0;
    while (i < n) {
        const bool noisy = uniform_int(0, 5) == 0;
        const int64_t len = std::min(n - i, uniform_int(1, noisy ? 200 : 400));
        const int64_t value = draw();
        for (int64_t j = 0; j < len; ++j) v[static_cast<size_t>(i + j)] = static_cast<L>(noisy ? draw() : value);
        i += len;
    }
    return v;
}

// The (K+2) x (K+1) working table, one pixel at a time (labels.hpp's rules).
template <class T, class P>
std::vector<int64_t> plain_table(const std::vector<T>& t, const std::vector<P>& p, int64_t k, bool has_ignore,
                                 int64_t ignore) {
    std::vector<int64_t> table(static_cast<size_t>((k + 2) * (k + 1)), 0);
    for (size_t j = 0; j < t.size(); ++j) {
        const auto tv = static_cast<int64_t>(t[j]);
        const auto pv = static_cast<int64_t>(p[j]);
        const bool t_class = std::is_signed<T>::value ? (tv >= 0 && tv < k) : (static_cast<uint64_t>(t[j]) < uint64_t(k));
        const bool p_class = std::is_signed<P>::value ? (pv >= 0 && pv < k) : (static_cast<uint64_t>(p[j]) < uint64_t(k));
        const int64_t row = (has_ignore && tv == ignore) ? k : (t_class ? tv : k + 1);
        const int64_t col = p_class ? pv : k;
        table[static_cast<size_t>(row * (k + 1) + col)] += 1;
    }
    return table;
}

template <class L>
am::TargetCoding target_coding(int64_t k, bool has_ignore, int64_t ignore) {
    am::TargetCoding tc;
    tc.num_classes = k;
    tc.limit = static_cast<uint64_t>(k);
    if (std::is_signed<L>::value) tc.limit = std::min<uint64_t>(tc.limit, uint64_t(1) << (8 * sizeof(L) - 1));
    tc.has_ignore = has_ignore;
    tc.ignore_bits = static_cast<uint64_t>(static_cast<std::make_unsigned_t<L>>(static_cast<L>(ignore)));
    return tc;
}

int failures = 0;
int checks = 0;

void expect(bool ok, const std::string& what) {
    ++checks;
    if (!ok && failures++ < 10) std::printf("MISMATCH: %s\n", what.c_str());
}

template <class T, class P>
void check_counts(const char* name, int64_t k, int64_t n, bool has_ignore, int64_t ignore) {
    using UT = std::make_unsigned_t<T>;
    using UP = std::make_unsigned_t<P>;
    const std::vector<T> t = make_labels<T>(n, k, ignore);
    const std::vector<P> p = make_labels<P>(n, k, 0);
    const std::vector<int64_t> expected = plain_table(t, p, k, has_ignore, ignore);
    am::Geometry g;
    int64_t shape[1] = {n}, ts[1] = {sizeof(T)}, ps[1] = {sizeof(P)};
    am::simplify_geometry(1, shape, ts, ps, g);
    const am::TargetCoding tc = target_coding<T>(k, has_ignore, ignore);
    am::PredCoding pc;
    pc.num_classes = k;
    pc.limit = static_cast<uint64_t>(k);
    if (std::is_signed<P>::value) pc.limit = std::min<uint64_t>(pc.limit, uint64_t(1) << (8 * sizeof(P) - 1));
    const int64_t bins = am::table_bins(k);
    for (int isa : {0, 1, 2}) {
        for (int threads : {1, 3}) {
            // private_up_to 0: the team shares one table (the path of K > 722).
            for (int64_t private_up_to : {am::kPrivateTablesUpTo, int64_t(0)}) {
                for (int64_t flush : {int64_t(1) << 31, int64_t(777)}) {
                    std::vector<int64_t> table(static_cast<size_t>(bins), 0);
                    std::vector<uint64_t> touched(static_cast<size_t>(am::touched_words(bins)), 0);
                    am::KernelOptions opt;
                    opt.isa = isa;
                    opt.n_threads = threads;
                    opt.min_pixels_per_thread = 1;
                    opt.flush_limit = flush;
                    opt.private_up_to = private_up_to;
                    // Two ranges, as the binding's chunks: the second adds to the first.
                    am::count_pairs<UT, UP>(t.data(), p.data(), g, tc, pc, opt, table.data(), touched.data(), 0, n / 3);
                    am::count_pairs<UT, UP>(t.data(), p.data(), g, tc, pc, opt, table.data(), touched.data(), n / 3);
                    int64_t bad_t = 0, bad_p = 0, want_t = 0, want_p = 0;
                    am::invalid_counts_touched(table.data(), touched.data(), k, bad_t, bad_p);
                    am::invalid_counts(expected.data(), k, want_t, want_p);
                    const std::string what = std::string(name) + " count_pairs k=" + std::to_string(k) + " isa=" +
                                             std::to_string(isa) + " threads=" + std::to_string(threads) +
                                             " private_up_to=" + std::to_string(private_up_to);
                    expect(table == expected, what);
                    expect(bad_t == want_t && bad_p == want_p, what + " invalid_counts_touched");
                    am::clear_touched(table.data(), touched.data(), k);  // the touched map covers every count
                    expect(std::all_of(table.begin(), table.end(), [](int64_t c) { return c == 0; }),
                           what + " touched map");
                    if (private_up_to == 0) break;  // no 8-bit counters to flush
                }
            }
        }
        std::vector<int64_t> small(static_cast<size_t>(bins), 0);
        std::vector<uint32_t> list(static_cast<size_t>(n + 1));
        const int64_t touched = am::count_pairs_small<UT, UP>(t.data(), p.data(), g, tc, pc, isa, small.data(), list.data());
        expect(small == expected && touched <= n + 1, std::string(name) + " count_pairs_small isa=" + std::to_string(isa));
        std::vector<uint64_t> pairs(static_cast<size_t>(n + 1));
        const int64_t distinct = am::count_pairs_sorted<UT, UP>(t.data(), p.data(), g, tc, pc, isa, pairs.data());
        std::vector<int64_t> from_pairs(static_cast<size_t>(bins), 0);
        bool sorted = true;
        for (int64_t j = 0; j < distinct; ++j) {
            sorted = sorted && (j == 0 || (pairs[size_t(j - 1)] >> 32) < (pairs[size_t(j)] >> 32));
            from_pairs[static_cast<size_t>(pairs[size_t(j)] >> 32)] += static_cast<int64_t>(pairs[size_t(j)] & 0xFFFFFFFFu);
        }
        expect(sorted && from_pairs == expected, std::string(name) + " count_pairs_sorted isa=" + std::to_string(isa));
    }
}

template <class Mask>
void check_masks(const char* name) {
    for (int trial = 0; trial < 2000; ++trial) {
        uint8_t t[65], p[65];
        const int changes = static_cast<int>(uniform_int(0, 70));
        const uint8_t a = static_cast<uint8_t>(uniform_int(0, 255)), b = static_cast<uint8_t>(uniform_int(0, 255));
        for (int j = 0; j < 65; ++j) {
            t[j] = a;
            p[j] = b;
        }
        for (int c = 0; c < changes; ++c) {
            (uniform_int(0, 1) ? t : p)[uniform_int(0, 64)] = static_cast<uint8_t>(uniform_int(0, 255));
        }
        uint64_t want_t = 0, want = 0;  // bit j: pixel j differs from pixel j - 1
        for (int j = 0; j < 64; ++j) {
            want_t |= static_cast<uint64_t>(t[j + 1] != t[j]) << j;
            want |= static_cast<uint64_t>(t[j + 1] != t[j] || p[j + 1] != p[j]) << j;
        }
        expect(Mask::pair_change_mask64(t + 1, p + 1) == want, std::string(name) + " pair_change_mask64");
        expect(Mask::change_mask64(t + 1) == want_t, std::string(name) + " change_mask64");
    }
}

}  // namespace

int main() {
    const int64_t sizes[] = {1, 63, 64, 65, 1000, 70001};
    for (int64_t n : sizes) {
        for (int64_t k : {1, 3, 150, 255, 300, 1000}) {
            if (k == 1000 && n > 1000) continue;  // the shared path of large K, on short inputs (8 MB tables)
            check_counts<uint8_t, uint8_t>("u8/u8", k, n, true, 255);
            check_counts<uint8_t, uint8_t>("u8/u8 no ignore", k, n, false, 255);
            check_counts<uint8_t, uint8_t>("u8/u8 ignore inside", k, n, true, 0);
            check_counts<int8_t, uint8_t>("i8/u8", k, n, true, -1);
            check_counts<uint8_t, int8_t>("u8/i8", k, n, true, 255);
            check_counts<uint16_t, uint8_t>("u16/u8", k, n, true, 255);
            check_counts<int64_t, int64_t>("i64/i64", k, n, true, -1);
            check_counts<int64_t, int64_t>("i64/i64 no ignore", k, n, false, -1);
            check_counts<int64_t, int64_t>("i64/i64 ignore inside", k, n, true, 1);
            check_counts<uint64_t, uint64_t>("u64/u64", k, n, true, int64_t(1) << 40);
        }
    }
    check_masks<am::PortableMask>("portable");
#if AM_HAVE_AVX2_DISPATCH
    if (am::cpu_has_avx2()) check_masks<am::Avx2Mask>("avx2");
    if (am::cpu_has_avx512bw()) check_masks<am::Avx512Mask>("avx512bw");
    const char* simd = am::cpu_has_avx512bw() ? "avx512bw" : am::cpu_has_avx2() ? "avx2" : "portable";
#elif AM_HAVE_NEON
    check_masks<am::NeonMask>("neon");
    const char* simd = "neon";
#else
    const char* simd = "portable";
#endif
    std::printf("%d checks, %d failures; best SIMD path: %s\n", checks, failures, simd);
    return failures == 0 ? 0 : 1;
}
