// Instruction counts of the confusion kernel on given label maps, for callgrind (issue 19).
// Counts `maps` maps of h x w uint8 labels (150 classes, 255 ignored) `reps` times, one call per
// map (count_pairs + settle_touched + clearing, as ConfusionMatrix.update does), on 1 thread.
// Run once with reps=0 and once with reps=R: the difference over R * pixels is instructions a pixel.
//
//   g++ -O3 -g -std=c++17 -fopenmp -Icsrc -o /tmp/native_profile bench/native_profile.cpp
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out /tmp/native_profile T.bin P.bin maps h w reps
// Optional: [isa] (-1 best, 0 portable, 1 AVX2, 2 AVX-512BW) and [evict_mib]: write that many MiB
// between calls, untimed, so that every call starts with cold caches; [wide] 1: count the labels widened
// to uint64 (PyTorch's int64); [rewarm] after the eviction read back 1: the labels, 2: the tables.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "ade20k_metrics/confusion.hpp"

int main(int argc, char** argv) {
    if (argc < 7) {
        std::fprintf(stderr, "usage: %s T.bin P.bin maps h w reps [isa]\n", argv[0]);
        return 2;
    }
    const int64_t maps = std::atoll(argv[3]), h = std::atoll(argv[4]), w = std::atoll(argv[5]);
    const int reps = std::atoi(argv[6]);
    const int isa = argc > 7 ? std::atoi(argv[7]) : -1;
    // evict_mib > 0: write that many MiB between calls (the caches go cold, as after a network's forward pass).
    const int64_t evict_mib = argc > 8 ? std::atoll(argv[8]) : 0;
    std::vector<uint8_t> junk(static_cast<size_t>(evict_mib) << 20, 1);
    // wide = 1: the labels widened to uint64 (PyTorch's int64) before counting.
    const bool wide = argc > 9 && std::atoi(argv[9]) == 1;
    // rewarm (with evict_mib): after the eviction, read back 1: the next map's labels, 2: the working
    // table, its touched map and the result matrix, untimed, to see which cold part costs the time.
    const int rewarm = argc > 10 ? std::atoi(argv[10]) : 0;
    volatile uint64_t sink = 0;
    double evict_seconds = 0;
    const int64_t per = h * w, n = maps * per, k = 150, bins = am::table_bins(k);
    std::vector<uint8_t> t(n), p(n);
    if (!std::ifstream(argv[1], std::ios::binary).read(reinterpret_cast<char*>(t.data()), n) ||
        !std::ifstream(argv[2], std::ios::binary).read(reinterpret_cast<char*>(p.data()), n)) {
        std::fprintf(stderr, "short read\n");
        return 2;
    }
    am::Geometry one;
    int64_t shape[2] = {h, w}, stride[2] = {w, 1};
    am::simplify_geometry(2, shape, stride, stride, one);
    am::TargetCoding tc;
    tc.num_classes = k;
    tc.limit = k;
    tc.has_ignore = true;
    tc.ignore_bits = 255;
    am::PredCoding pc;
    pc.num_classes = k;
    pc.limit = k;
    std::vector<int64_t> table(static_cast<size_t>(bins)), out(k * k);
    std::vector<uint64_t> touched(static_cast<size_t>(am::touched_words(bins)));
    am::KernelOptions opt;
    opt.isa = isa;
    opt.n_threads = 1;
    const std::vector<uint64_t> t64(wide ? t.begin() : t.end(), t.end()), p64(wide ? p.begin() : p.end(), p.end());
    am::Geometry one64;
    int64_t stride64[2] = {w * 8, 8};
    am::simplify_geometry(2, shape, stride64, stride64, one64);
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r)
        for (int64_t m = 0; m < maps; ++m) {
            if (wide) {
                am::count_pairs<uint64_t, uint64_t>(t64.data() + m * per, p64.data() + m * per, one64, tc, pc, opt,
                                                    table.data(), touched.data());
            } else {
                am::count_pairs<uint8_t, uint8_t>(t.data() + m * per, p.data() + m * per, one, tc, pc, opt,
                                                  table.data(), touched.data());
            }
            int64_t bad_t = 0, bad_p = 0;
            if (!am::settle_touched(table.data(), touched.data(), k, out.data(), bad_t, bad_p)) std::abort();
            am::clear_touched(table.data(), touched.data(), k);
            if (evict_mib > 0) {
                const auto e0 = std::chrono::steady_clock::now();
                for (size_t j = 0; j < junk.size(); j += 64) junk[j] += 1;
                const int64_t next = (m + 1) % maps;
                uint64_t acc = 0;
                if (rewarm == 1) {
                    for (int64_t j = 0; j < per; j += 64) acc += t[next * per + j] + p[next * per + j];
                    for (int64_t j = 0; j < per * 8 && wide; j += 64) acc += t64[next * per + j / 8] + p64[next * per + j / 8];
                } else if (rewarm == 2) {
                    for (size_t j = 0; j < table.size(); j += 8) acc += static_cast<uint64_t>(table[j]);
                    for (size_t j = 0; j < out.size(); j += 8) acc += static_cast<uint64_t>(out[j]);
                    for (uint64_t word : touched) acc += word;
                }
                sink = sink + acc;
                evict_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
            }
        }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() - evict_seconds;
    int64_t total = 0, weighted = 0;
    for (int64_t i = 0; i < k * k; ++i) {
        total += out[i];
        weighted += out[i] * (i % 9973 + 1);
    }
    // pixels counted, a checksum of the matrix, and Mpix/s of the counting loop (reps > 0)
    std::printf("%lld %lld %.0f\n", static_cast<long long>(total), static_cast<long long>(weighted),
                reps > 0 ? static_cast<double>(reps) * n / seconds / 1e6 : 0.0);
}
