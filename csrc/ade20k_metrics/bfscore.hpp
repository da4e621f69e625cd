// BF score (Csurka et al., BMVC 2013; MATLAB's bfscore) of every class of
// every image: contours, then for each contour pixel whether the other map
// has a contour pixel of the same class at Euclidean distance < theta.
//
// Pure C++17, no Python.  The contour of class c: pixels of class c with a
// 4-neighbour that is not c (outside the image is not c; an ignored target
// pixel is not c).  Predicted contour pixels whose target is ignored are not
// counted (neither scored nor matched).
//
// Matching is exact and bounded: the disc of radius theta around a contour
// pixel is scanned row by row (nearest rows first, so a match usually ends
// the scan at once) over bitsets of the other map's contour pixels, 64
// pixels a word, checking the class only where a contour bit is set.  Each
// row's half-width is the largest dx with sqrt(dx*dx + dy*dy) < theta in
// float64, the very comparison the NumPy reference makes.  Cost per contour
// pixel: O(theta) words when unmatched, less when matched; nothing outside
// the contours' neighbourhoods is visited.
//
// Labels that are no class are skipped here (the region count reports them).
// Nothing here throws inside a parallel region.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "boundary.hpp"
#include "labels.hpp"

namespace am {

struct BfSums {
    double* f1_sum = nullptr;        // (K,) sum over images where defined
    int64_t* f1_count = nullptr;     // (K,) images where defined
    double* image_mean_sum = nullptr;  // sum over images of the mean over the classes defined there
    int64_t* images_scored = nullptr;  // images with at least one class defined
};

namespace bf_detail {

// Largest dx >= 0 with sqrt(dx^2 + dy^2) < theta for dy = 0, 1, ...; stops at the first dy with none.
inline std::vector<int64_t> half_widths(double theta) {
    std::vector<int64_t> out;
    for (int64_t dy = 0;; ++dy) {
        if (!(std::sqrt(static_cast<double>(dy * dy)) < theta)) break;
        int64_t dx = static_cast<int64_t>(std::floor(theta)) + 1;
        while (dx > 0 && !(std::sqrt(static_cast<double>(dx * dx + dy * dy)) < theta)) --dx;
        out.push_back(dx);
    }
    return out;
}

// Whether row `row` (bits: contour pixels, labels: their codes) has a contour
// pixel of class c in columns [lo, hi].
inline bool span_has(const uint64_t* bits, const uint16_t* labels, int64_t lo, int64_t hi, uint16_t c) {
    const int64_t wl = lo >> 6, wh = hi >> 6;
    for (int64_t w = wl; w <= wh; ++w) {
        uint64_t m = bits[w];
        if (w == wl) m &= ~uint64_t(0) << (lo & 63);
        if (w == wh) m &= ~uint64_t(0) >> (63 - (hi & 63));
        while (m != 0) {
            const int64_t x = w * 64 + __builtin_ctzll(m);
            m &= m - 1;
            if (labels[x] == c) return true;
        }
    }
    return false;
}

}  // namespace bf_detail

// Working memory of bf_scores, allocated by the caller before any thread starts.
struct BfWorkspace {
    std::vector<uint16_t> t_codes, p_codes;  // h * w: target rows (0..K+1), predicted columns (0..K)
    std::vector<uint64_t> t_bits, p_bits;    // h * words: contour pixels
    std::vector<int64_t> counts;             // threads * 4K: per class P, matched P, G, matched G
};

// Add the BF scores of every image of `g` to `sums`, with threshold `theta`
// (pixels).  T, P: the labels' unsigned storage types.  K <= 65534.
// Throws std::bad_alloc (before anything is added) when memory runs out.
template <class T, class P>
int bf_scores(const void* target, const void* pred, const BoundaryGeometry& g, const TargetCoding& tc,
              const PredCoding& pc, double theta, int n_threads, const BfSums& sums) {
    using namespace bf_detail;
    const int64_t h = g.height, w = g.width, k = tc.num_classes;
    if (h <= 0 || w <= 0 || g.images <= 0) return 1;
    const int64_t nw = (w + 63) / 64;
    int threads = 1;
#ifdef _OPENMP
    threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n_threads, h)));
#endif
    (void)n_threads;
    BfWorkspace ws;
    ws.t_codes.assign(static_cast<size_t>(h * w), 0);
    ws.p_codes.assign(static_cast<size_t>(h * w), 0);
    ws.t_bits.assign(static_cast<size_t>(h * nw), 0);
    ws.p_bits.assign(static_cast<size_t>(h * nw), 0);
    ws.counts.assign(static_cast<size_t>(threads * 4 * k), 0);
    const std::vector<int64_t> widths = half_widths(theta);
    const auto reach = static_cast<int64_t>(widths.size()) - 1;  // rows above and below to look at
    const TargetCoder<T> tcode(tc);
    const PredCoder<P> pcode(pc);
    const auto kk = static_cast<uint16_t>(k);

    for (int64_t n = 0; n < g.images; ++n) {
        int64_t t_off, p_off;
        g.image_offset(n, t_off, p_off);
        const char* t_img = static_cast<const char*>(target) + t_off;
        const char* p_img = static_cast<const char*>(pred) + p_off;
        uint16_t* tcodes = ws.t_codes.data();
        uint16_t* pcodes = ws.p_codes.data();
        uint64_t* tbits = ws.t_bits.data();
        uint64_t* pbits = ws.p_bits.data();
        int64_t* counts = ws.counts.data();
        std::fill(ws.counts.begin(), ws.counts.end(), 0);

        auto code_row = [&](int64_t y) {
            for (int64_t x = 0; x < w; ++x) {
                T tv;
                P pv;
                std::memcpy(&tv, t_img + y * g.t_row + x * g.t_col, sizeof(T));
                std::memcpy(&pv, p_img + y * g.p_row + x * g.p_col, sizeof(P));
                tcodes[y * w + x] = static_cast<uint16_t>(std::min<uint32_t>(tcode(tv), 0xFFFFu));
                pcodes[y * w + x] = static_cast<uint16_t>(pcode(pv));
            }
        };
        // Contour bits: a class pixel with a 4-neighbour of another code or on the border.
        auto contour_row = [&](int64_t y) {
            uint64_t* tb = tbits + y * nw;
            uint64_t* pb = pbits + y * nw;
            std::fill(tb, tb + nw, uint64_t(0));
            std::fill(pb, pb + nw, uint64_t(0));
            const uint16_t* tr = tcodes + y * w;
            const uint16_t* pr = pcodes + y * w;
            for (int64_t x = 0; x < w; ++x) {
                const bool border = y == 0 || y == h - 1 || x == 0 || x == w - 1;
                const uint16_t tv = tr[x], pv = pr[x];
                if (tv >= kk) continue;  // ignored or invalid target: no contour of either map counts
                const bool t_edge = border || tr[x - 1] != tv || tr[x + 1] != tv || tr[x - w] != tv || tr[x + w] != tv;
                const bool p_edge =
                    pv < kk && (border || pr[x - 1] != pv || pr[x + 1] != pv || pr[x - w] != pv || pr[x + w] != pv);
                tb[x >> 6] |= static_cast<uint64_t>(t_edge) << (x & 63);
                pb[x >> 6] |= static_cast<uint64_t>(p_edge) << (x & 63);
            }
        };
        // Whether the contour of class c of the map (bits, codes) reaches within theta of (y, x).
        auto near = [&](const uint64_t* bits, const uint16_t* codes, int64_t y, int64_t x, uint16_t c) {
            for (int64_t r = 0; r <= reach; ++r) {
                const int64_t lo = std::max<int64_t>(0, x - widths[static_cast<size_t>(r)]);
                const int64_t hi = std::min<int64_t>(w - 1, x + widths[static_cast<size_t>(r)]);
                const int64_t rows[2] = {y - r, y + r};
                for (int side = 0; side < (r == 0 ? 1 : 2); ++side) {
                    const int64_t yy = rows[side];
                    if (yy < 0 || yy >= h) continue;
                    if (span_has(bits + yy * nw, codes + yy * w, lo, hi, c)) return true;
                }
            }
            return false;
        };
        auto query_row = [&](int64_t y, int64_t* mine) {
            for (int64_t word = 0; word < nw; ++word) {
                uint64_t m = tbits[y * nw + word];
                while (m != 0) {  // ground-truth contour pixels: recall
                    const int64_t x = word * 64 + __builtin_ctzll(m);
                    m &= m - 1;
                    const uint16_t c = tcodes[y * w + x];
                    mine[2 * k + c] += 1;
                    mine[3 * k + c] += near(pbits, pcodes, y, x, c) ? 1 : 0;
                }
                m = pbits[y * nw + word];
                while (m != 0) {  // predicted contour pixels: precision
                    const int64_t x = word * 64 + __builtin_ctzll(m);
                    m &= m - 1;
                    const uint16_t c = pcodes[y * w + x];
                    mine[c] += 1;
                    mine[k + c] += near(tbits, tcodes, y, x, c) ? 1 : 0;
                }
            }
        };
        auto run = [&](int tid, int team) {
            const int64_t share = h / team, extra = h % team;
            const int64_t first = share * tid + std::min<int64_t>(tid, extra);
            const int64_t last = first + share + (tid < extra ? 1 : 0);
            for (int64_t y = first; y < last; ++y) code_row(y);
#ifdef _OPENMP
            if (team > 1) {
#pragma omp barrier
            }
#endif
            for (int64_t y = first; y < last; ++y) contour_row(y);
#ifdef _OPENMP
            if (team > 1) {
#pragma omp barrier
            }
#endif
            // Rows of contour pixels are uneven: interleave them over the team.
            int64_t* mine = counts + 4 * k * tid;
            for (int64_t y = tid; y < h; y += team) query_row(y, mine);
        };
#ifdef _OPENMP
        if (threads > 1) {
#pragma omp parallel num_threads(threads)
            run(omp_get_thread_num(), omp_get_num_threads());
        } else {
            run(0, 1);
        }
#else
        run(0, 1);
#endif
        for (int other = 1; other < threads; ++other) {
            for (int64_t j = 0; j < 4 * k; ++j) counts[j] += counts[4 * k * other + j];
        }
        // Per class: F1 where defined, in the reference's arithmetic order.
        double image_sum = 0;
        int64_t image_classes = 0;
        for (int64_t c = 0; c < k; ++c) {
            const int64_t np = counts[c], mp = counts[k + c], ng = counts[2 * k + c], mg = counts[3 * k + c];
            if (np == 0 && ng == 0) continue;
            double f = 0.0;
            if (np > 0 && ng > 0) {
                const double precision = static_cast<double>(mp) / static_cast<double>(np);
                const double recall = static_cast<double>(mg) / static_cast<double>(ng);
                f = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
            }
            sums.f1_sum[c] += f;
            sums.f1_count[c] += 1;
            image_sum += f;
            ++image_classes;
        }
        if (image_classes > 0) {
            *sums.image_mean_sum += image_sum / static_cast<double>(image_classes);
            *sums.images_scored += 1;
        }
    }
    return threads;
}

}  // namespace am
