// Iteration geometry shared by two equally shaped strided arrays.
//
// Arbitrary N-d views are reduced to the fewest loops that visit every element
// pair once: size-1 axes dropped, axes where both arrays have stride 0 turned
// into a multiplicity (broadcast inputs are counted, not walked), axes negative
// in both arrays flipped, the axis with the smallest strides moved innermost
// and adjacent axes that are contiguous in both arrays merged.  Nothing is
// copied; the kernel walks the original memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>

namespace am {

constexpr int kMaxDims = 64;

struct Geometry {
    int ndim = 0;                   // loops left after simplification (>= 1 unless empty)
    int64_t shape[kMaxDims] = {};   // outermost first; shape[ndim-1] is the inner loop
    int64_t t_stride[kMaxDims] = {};  // byte strides of the target array
    int64_t p_stride[kMaxDims] = {};  // byte strides of the prediction array
    int64_t t_offset = 0;           // byte offset of the first visited target element
    int64_t p_offset = 0;
    int64_t multiplicity = 1;       // every visited pair stands for this many pairs
    int64_t pixels = 0;             // pairs visited (product of shape), 0 when empty

    int64_t inner() const { return shape[ndim - 1]; }
};

// The rows (runs along the inner axis) of a geometry from flat index `begin`
// on: an odometer over the outer axes and the byte offsets of the current
// row's first pair in both arrays.
struct RowCursor {
    int64_t idx[kMaxDims];
    int64_t t_off, p_off;
    int64_t col;  // where `begin` lies in its row; 0 for every later row

    RowCursor(const Geometry& g, int64_t begin) : t_off(g.t_offset), p_off(g.p_offset) {
        int64_t row = begin / g.inner();
        col = begin % g.inner();
        for (int d = g.ndim - 2; d >= 0; --d) {
            idx[d] = row % g.shape[d];
            row /= g.shape[d];
            t_off += idx[d] * g.t_stride[d];
            p_off += idx[d] * g.p_stride[d];
        }
    }

    void next_row(const Geometry& g) {
        col = 0;
        for (int d = g.ndim - 2; d >= 0; --d) {
            t_off += g.t_stride[d];
            p_off += g.p_stride[d];
            if (++idx[d] < g.shape[d]) return;
            t_off -= g.shape[d] * g.t_stride[d];
            p_off -= g.shape[d] * g.p_stride[d];
            idx[d] = 0;
        }
    }
};

// `shape`, `t_strides`, `p_strides` describe `ndim` axes (byte strides).
// Returns false when ndim exceeds kMaxDims.
inline bool simplify_geometry(int ndim, const int64_t* shape, const int64_t* t_strides,
                              const int64_t* p_strides, Geometry& g) {
    if (ndim < 0 || ndim > kMaxDims) return false;
    g = Geometry{};
    for (int d = 0; d < ndim; ++d) {
        if (shape[d] == 0) {  // nothing to visit
            g.ndim = 1;
            g.shape[0] = 0;
            g.pixels = 0;
            return true;
        }
    }
    struct Axis { int64_t n, ts, ps; };
    Axis axes[kMaxDims];
    int n_axes = 0;
    for (int d = 0; d < ndim; ++d) {
        Axis a{shape[d], t_strides[d], p_strides[d]};
        if (a.n == 1) continue;
        if (a.ts == 0 && a.ps == 0) {
            g.multiplicity *= a.n;
            continue;
        }
        if (a.ts < 0 && a.ps < 0) {  // walk it forwards: same pairs, memory order
            g.t_offset += a.ts * (a.n - 1);
            g.p_offset += a.ps * (a.n - 1);
            a.ts = -a.ts;
            a.ps = -a.ps;
        }
        axes[n_axes++] = a;
    }
    // Largest strides outside, smallest inside (stable keeps C order on ties).
    std::stable_sort(axes, axes + n_axes, [](const Axis& x, const Axis& y) {
        return std::llabs(x.ts) + std::llabs(x.ps) > std::llabs(y.ts) + std::llabs(y.ps);
    });
    int out = 0;
    for (int k = 0; k < n_axes; ++k) {
        const Axis& a = axes[k];
        if (out > 0) {
            int last = out - 1;
            // The previous (outer) axis steps exactly over one whole inner run.
            if (g.t_stride[last] == a.ts * a.n && g.p_stride[last] == a.ps * a.n) {
                g.shape[last] *= a.n;
                g.t_stride[last] = a.ts;
                g.p_stride[last] = a.ps;
                continue;
            }
        }
        g.shape[out] = a.n;
        g.t_stride[out] = a.ts;
        g.p_stride[out] = a.ps;
        ++out;
    }
    if (out == 0) {  // a single pair (all axes of size 1 or broadcast)
        g.shape[0] = 1;
        out = 1;
    }
    g.ndim = out;
    g.pixels = 1;
    for (int d = 0; d < out; ++d) g.pixels *= g.shape[d];
    return true;
}

}  // namespace am
