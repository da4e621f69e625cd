// Self-check of the C++ kernel without Python, for every SIMD path this CPU
// (or emulator) has: count_pairs (private per-thread tables and one shared
// table), count_pairs_small and count_pairs_sorted against a plain loop over
// the pixels, and each change-mask policy against a plain loop too.
// Built and run by tests/test_native.py, natively and, where a cross
// compiler and qemu are installed, for 64-bit Arm (the NEON path).
// Prints what it checked; exits 1 on the first disagreement.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "ade20k_metrics/bfscore.hpp"
#include "ade20k_metrics/boundary.hpp"
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

// settle_touched: the invalid counts, and the class counts added to `out`
// only when there are none and nothing overflows (else `out` is unchanged;
// with invalid labels the result is true: they are reported first).
void check_settle(const std::vector<int64_t>& table, const std::vector<uint64_t>& touched,
                  const std::vector<int64_t>& expected, int64_t k, int64_t want_t, int64_t want_p,
                  const std::string& what) {
    const int64_t cols = k + 1;
    std::vector<int64_t> want(static_cast<size_t>(k * k), 7), out(want);
    if (want_t == 0 && want_p == 0) {
        for (int64_t r = 0; r < k; ++r)
            for (int64_t c = 0; c < k; ++c) want[size_t(r * k + c)] += expected[size_t(r * cols + c)];
    }
    int64_t bad_t = -1, bad_p = -1;
    const bool fits = am::settle_touched(table.data(), touched.data(), k, out.data(), bad_t, bad_p);
    expect(fits && out == want && bad_t == want_t && bad_p == want_p, what + " settle_touched");
    // An entry that would overflow: nothing is added, and it says so (invalid labels are reported first).
    int64_t busiest = 0;
    for (int64_t r = 0; r < k; ++r)
        for (int64_t c = 0; c < k; ++c)
            if (expected[size_t(r * cols + c)] > expected[size_t(busiest / k * cols + busiest % k)]) busiest = r * k + c;
    if (expected[size_t(busiest / k * cols + busiest % k)] == 0) return;
    std::vector<int64_t> full(static_cast<size_t>(k * k), 1);
    full[size_t(busiest)] = INT64_MAX;
    const std::vector<int64_t> before = full;
    const bool fits_full = am::settle_touched(table.data(), touched.data(), k, full.data(), bad_t, bad_p);
    const bool invalid = want_t != 0 || want_p != 0;
    expect(full == before && fits_full == invalid && bad_t == want_t && bad_p == want_p,
           what + " settle_touched overflow");
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
                    check_settle(table, touched, expected, k, want_t, want_p, what);
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
        // The same pairs as 64-bit labels (their own pair mask), with a high word that sometimes
        // differs alone: a change the low byte does not show.
        uint64_t t64[65], p64[65];
        const uint64_t high = uint64_t(1) << uniform_int(8, 63);
        uint64_t want64 = 0;
        for (int j = 0; j < 65; ++j) {
            t64[j] = t[j] | (uniform_int(0, 9) == 0 ? high : 0);
            p64[j] = p[j] | (uniform_int(0, 9) == 0 ? high : 0);
        }
        for (int j = 0; j < 64; ++j) want64 |= static_cast<uint64_t>(t64[j + 1] != t64[j] || p64[j + 1] != p64[j]) << j;
        expect(Mask::pair_change_mask64(t64 + 1, p64 + 1) == want64, std::string(name) + " pair_change_mask64 u64");
    }
}


// A label map of blocks (and some noise) of classes 0..k-1, `ignore` sprinkled in.
template <class L>
std::vector<L> make_map(int64_t h, int64_t w, int64_t k, int64_t ignore) {
    std::vector<L> v(static_cast<size_t>(h * w), static_cast<L>(uniform_int(0, k - 1)));
    for (int b = 0; b < 6; ++b) {
        const int64_t y0 = uniform_int(0, h - 1), x0 = uniform_int(0, w - 1);
        const int64_t y1 = std::min(h, y0 + uniform_int(1, h)), x1 = std::min(w, x0 + uniform_int(1, w));
        const L c = static_cast<L>(uniform_int(0, k - 1));
        for (int64_t y = y0; y < y1; ++y)
            for (int64_t x = x0; x < x1; ++x) v[static_cast<size_t>(y * w + x)] = c;
    }
    for (auto& x : v) {
        const int64_t r = uniform_int(0, 99);
        if (r < 3) x = static_cast<L>(ignore);
        else if (r < 6) x = static_cast<L>(uniform_int(0, k - 1));
    }
    return v;
}

// In its label's band: some pixel within chessboard distance d has another label or is outside.
template <class L>
std::vector<bool> plain_band(const std::vector<L>& v, int64_t h, int64_t w, int64_t d) {
    std::vector<bool> band(v.size(), false);
    for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
            bool b = false;
            for (int64_t yy = y - d; yy <= y + d && !b; ++yy)
                for (int64_t xx = x - d; xx <= x + d && !b; ++xx)
                    b = yy < 0 || yy >= h || xx < 0 || xx >= w || v[size_t(yy * w + xx)] != v[size_t(y * w + x)];
            band[size_t(y * w + x)] = b;
        }
    return band;
}

template <class T, class P>
void check_boundary(const char* name, int64_t k, int64_t h, int64_t w, int64_t d, int64_t ignore) {
    using UT = std::make_unsigned_t<T>;
    using UP = std::make_unsigned_t<P>;
    const std::vector<T> t = make_map<T>(h, w, k, ignore);
    std::vector<P> p = make_map<P>(h, w, k, 0);
    for (size_t j = 0; j < p.size(); ++j) {
        if (static_cast<int64_t>(t[j]) == ignore && uniform_int(0, 1)) p[j] = static_cast<P>(k);  // no class, not counted
    }
    const am::TargetCoding tc = target_coding<T>(k, true, ignore);
    am::PredCoding pc;
    pc.num_classes = k;
    pc.limit = static_cast<uint64_t>(k);
    // The plain loop: region and boundary matrices of the evaluated pixels.
    std::vector<int64_t> codes(t.size());
    for (size_t j = 0; j < t.size(); ++j) codes[j] = static_cast<int64_t>(t[j]) == ignore ? -1 : static_cast<int64_t>(t[j]);
    const std::vector<bool> gb = plain_band(codes, h, w, d), pb = plain_band(p, h, w, d);
    std::vector<int64_t> want_region(size_t(k * k), 0), want_band(size_t((k + 1) * (k + 1)), 0);
    for (size_t j = 0; j < t.size(); ++j) {
        if (codes[j] < 0) continue;
        const int64_t r = codes[j], c = static_cast<int64_t>(p[j]);
        want_region[size_t(r * k + c)] += 1;
        want_band[size_t((gb[j] ? r : k) * (k + 1) + (pb[j] ? c : k))] += 1;
    }
    am::BoundaryGeometry g;
    g.height = h;
    g.width = w;
    g.t_row = w * int64_t(sizeof(T));
    g.t_col = sizeof(T);
    g.p_row = w * int64_t(sizeof(P));
    g.p_col = sizeof(P);
    for (int isa : {0, 1, 2}) {
        for (int threads : {1, 3}) {
            for (bool raw : {true, false}) {
                am::BoundaryOptions opt;
                opt.isa = isa;
                opt.n_threads = threads;
                opt.min_pixels_per_thread = 1;
                am::BoundaryTables tables;
                am::count_boundary_pairs<UT, UP>(t.data(), p.data(), g, tc, pc, d, raw, opt, tables);
                std::vector<int64_t> region(size_t(k * k), 0), band(size_t((k + 1) * (k + 1)), 0);
                const auto cols = static_cast<uint64_t>(k + 1);
                am::for_each_count(
                    tables, k,
                    [&](uint64_t cell, int64_t v) {
                        if (cell / cols < uint64_t(k) && cell % cols < uint64_t(k))
                            region[size_t((cell / cols) * uint64_t(k) + cell % cols)] += v;
                    },
                    [&](uint64_t bin, int64_t v) { band[size_t(bin)] += v; });
                expect(region == want_region && band == want_band,
                       std::string(name) + " count_boundary_pairs " + std::to_string(h) + "x" + std::to_string(w) +
                           " d=" + std::to_string(d) + " isa=" + std::to_string(isa) + " threads=" +
                           std::to_string(threads) + (raw ? " raw" : " coded"));
            }
        }
    }
    // BF: every contour pixel's nearest contour pixel of its class in the other map, found by brute force.
    const double theta = 0.05 * std::sqrt(double(h * h + w * w)) + 0.7;
    auto contour = [&](auto&& label, int64_t y, int64_t x) {
        const int64_t v = label(y, x);
        if (y == 0 || x == 0 || y == h - 1 || x == w - 1) return true;
        return label(y - 1, x) != v || label(y + 1, x) != v || label(y, x - 1) != v || label(y, x + 1) != v;
    };
    auto tl = [&](int64_t y, int64_t x) { return codes[size_t(y * w + x)]; };
    auto pl = [&](int64_t y, int64_t x) { return static_cast<int64_t>(p[size_t(y * w + x)]); };
    std::vector<std::vector<std::pair<int64_t, int64_t>>> gpts(static_cast<size_t>(k)), ppts(static_cast<size_t>(k));
    for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
            if (tl(y, x) < 0) continue;
            if (contour(tl, y, x)) gpts[size_t(tl(y, x))].push_back({y, x});
            if (pl(y, x) < k && contour(pl, y, x)) ppts[size_t(pl(y, x))].push_back({y, x});
        }
    auto matched = [&](const std::vector<std::pair<int64_t, int64_t>>& a, const std::vector<std::pair<int64_t, int64_t>>& b) {
        int64_t n = 0;
        for (const auto& q : a) {
            bool hit = false;
            for (const auto& o : b) {
                const int64_t dy = q.first - o.first, dx = q.second - o.second;
                hit = hit || std::sqrt(static_cast<double>(dy * dy + dx * dx)) < theta;
            }
            n += hit;
        }
        return n;
    };
    std::vector<double> want_sum(size_t(k), 0.0);
    std::vector<int64_t> want_count(size_t(k), 0);
    for (int64_t c = 0; c < k; ++c) {
        const auto& G = gpts[size_t(c)];
        const auto& Q = ppts[size_t(c)];
        if (G.empty() && Q.empty()) continue;
        double f = 0;
        if (!G.empty() && !Q.empty()) {
            const double precision = double(matched(Q, G)) / double(Q.size()), recall = double(matched(G, Q)) / double(G.size());
            f = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
        }
        want_sum[size_t(c)] = f;
        want_count[size_t(c)] = 1;
    }
    for (int threads : {1, 3}) {
        std::vector<double> sum(size_t(k), 0.0);
        std::vector<int64_t> count(size_t(k), 0);
        double image_sum = 0;
        int64_t images = 0;
        am::BfSums sums;
        sums.f1_sum = sum.data();
        sums.f1_count = count.data();
        sums.image_mean_sum = &image_sum;
        sums.images_scored = &images;
        am::bf_scores<UT, UP>(t.data(), p.data(), g, tc, pc, theta, threads, sums);
        expect(sum == want_sum && count == want_count,
               std::string(name) + " bf_scores " + std::to_string(h) + "x" + std::to_string(w) + " threads=" +
                   std::to_string(threads));
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
    for (int64_t w : {1, 7, 63, 64, 65, 130}) {
        for (int64_t h : {1, 5, 12}) {
            for (int64_t d : {1, 2, 5}) {
                check_boundary<uint8_t, uint8_t>("u8/u8", 6, h, w, d, 255);
                check_boundary<int64_t, int16_t>("i64/i16", 300, h, w, d, -1);
                check_boundary<uint16_t, uint32_t>("u16/u32", 4, h, w, d, 9);
            }
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
