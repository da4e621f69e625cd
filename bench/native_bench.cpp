// The kernel timed without Python: count_pairs plus the checked add into a
// K x K matrix, one batch and one call per map, on ADE20K-like and uniform
// maps, uint8 and int64, for one SIMD path and thread count.  For comparing
// kernel changes and SIMD paths (medians of 21 runs; not part of the tests).
//
//   python -c "from ade20k_metrics import benchmark as b; t, p = b.ade20k_like(16);
//              t.tofile('/tmp/ade_t.bin'); p.tofile('/tmp/ade_p.bin')"     (one line)
//   g++ -O3 -std=c++17 -fopenmp -Icsrc -o /tmp/native_bench bench/native_bench.cpp
//   /tmp/native_bench /tmp/ade_t.bin /tmp/ade_p.bin [isa (-1 best, 0 portable, 1 AVX2/NEON, 2 AVX-512)] [threads]
//
// The files hold 16 maps of 512 x 683 uint8 labels each (150 classes, 255 ignored).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <vector>

#include "ade20k_metrics/confusion.hpp"

namespace {

constexpr int64_t kClasses = 150, kMaps = 16, kMapPixels = 512 * 683;

template <class F>
double median_seconds(F&& f) {
    std::vector<double> times;
    for (int r = 0; r < 21; ++r) {
        const auto start = std::chrono::steady_clock::now();
        f();
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

template <class L>
void run(const char* name, const std::vector<uint8_t>& t8, const std::vector<uint8_t>& p8, int isa, int threads) {
    const int64_t n = static_cast<int64_t>(t8.size()), bins = am::table_bins(kClasses);
    const std::vector<L> t(t8.begin(), t8.end()), p(p8.begin(), p8.end());
    am::Geometry batch, one;
    int64_t batch_shape[1] = {n}, map_shape[1] = {kMapPixels}, stride[1] = {sizeof(L)};
    am::simplify_geometry(1, batch_shape, stride, stride, batch);
    am::simplify_geometry(1, map_shape, stride, stride, one);
    am::TargetCoding tc;
    tc.num_classes = kClasses;
    tc.limit = kClasses;
    tc.has_ignore = true;
    tc.ignore_bits = 255;
    am::PredCoding pc;
    pc.num_classes = kClasses;
    pc.limit = kClasses;
    std::vector<int64_t> table(static_cast<size_t>(bins)), out(kClasses * kClasses);
    std::vector<uint64_t> touched(static_cast<size_t>(am::touched_words(bins)));
    am::KernelOptions opt;
    opt.isa = isa;
    opt.n_threads = threads;
    auto count = [&](const L* tp, const L* pp, const am::Geometry& g) {
        am::count_pairs<L, L>(tp, pp, g, tc, pc, opt, table.data(), touched.data());
        if (!am::add_class_counts_checked(table.data(), touched.data(), kClasses, out.data())) std::abort();
        am::clear_touched(table.data(), touched.data(), kClasses);
    };
    const double whole = median_seconds([&] { count(t.data(), p.data(), batch); });
    const double per_map = median_seconds([&] {
        for (int64_t m = 0; m < n / kMapPixels; ++m) count(t.data() + m * kMapPixels, p.data() + m * kMapPixels, one);
    });
    std::printf("%-8s %zu-byte labels  isa=%d threads=%d  one batch %7.0f Mpix/s  per map %7.0f Mpix/s\n", name,
                sizeof(L), isa, threads, n / whole / 1e6, n / per_map / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s TARGETS.bin PREDS.bin [isa] [threads]\n", argv[0]);
        return 2;
    }
    const int64_t n = kMaps * kMapPixels;
    std::vector<uint8_t> t(n), p(n);
    if (!std::ifstream(argv[1], std::ios::binary).read(reinterpret_cast<char*>(t.data()), n) ||
        !std::ifstream(argv[2], std::ios::binary).read(reinterpret_cast<char*>(p.data()), n)) {
        std::fprintf(stderr, "could not read %lld bytes from each file\n", static_cast<long long>(n));
        return 2;
    }
    const int isa = argc > 3 ? std::atoi(argv[3]) : -1;
    const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
    std::vector<uint8_t> tu(n), pu(n);
    std::mt19937 rng(1);
    for (int64_t i = 0; i < n; ++i) {
        tu[i] = static_cast<uint8_t>(rng() % kClasses);
        pu[i] = static_cast<uint8_t>(rng() % kClasses);
    }
    run<uint8_t>("ade-like", t, p, isa, threads);
    run<uint8_t>("uniform", tu, pu, isa, threads);
    run<uint64_t>("ade-like", t, p, isa, threads);
    run<uint64_t>("uniform", tu, pu, isa, threads);
}
