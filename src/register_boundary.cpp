// ade20k_metrics._core.accumulate_boundary: region and boundary (inner-band)
// confusion matrices in one pass, binding csrc/ade20k_metrics/boundary.hpp.
//
// Same contract as accumulate (module.cpp): checks what only the buffers can
// tell, dispatches on each input's dtype, releases the GIL around the kernel,
// and adds to the matrices only when no evaluated label is invalid and
// neither would overflow.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <new>
#include <utility>
#include <optional>
#include <string>
#include <vector>

#include "ade20k_metrics/bfscore.hpp"
#include "ade20k_metrics/boundary.hpp"
#include "binding_common.hpp"

namespace py = pybind11;
using namespace am_binding;

namespace {

// The calling thread's tables (the kernel's own per-thread set, see ThreadLease),
// left all zeros after the call and released when larger than the kernel keeps.
class TablesLease {
public:
    ~TablesLease() {
        am::BoundaryTables& tables = lease_.get();
        tables.pairs.clear();
        if (tables.pairs.capacity > am::kKeepBoundaryTablesUpTo) tables.pairs.release();
    }
    am::BoundaryTables& get() { return lease_.get(); }

private:
    ThreadLease<am::BoundaryTables, am::boundary_tables> lease_;
};

int64_t* checked_square(py::array& a, int64_t n, const char* name) {
    const py::dtype dt = a.dtype();
    if (dt.kind() != 'i' || dt.itemsize() != 8 || !native_order(dt)) {
        throw py::type_error(std::string(name) + " must be a native int64 array");
    }
    if (a.ndim() != 2 || a.shape(0) != n || a.shape(1) != n || !(a.flags() & py::array::c_style) || !a.writeable()) {
        throw py::value_error(std::string(name) + " must be a writeable C-contiguous (" + std::to_string(n) + ", " +
                              std::to_string(n) + ") array");
    }
    return static_cast<int64_t*>(a.mutable_data());
}

// Region counts into `out` (K x K) and boundary counts into `boundary_out`
// ((K+1) x (K+1)) of the 2-d maps along the last two axes, or, if any
// evaluated label is invalid, neither changes.  Returns (invalid_target,
// invalid_pred, threads_used).
py::tuple accumulate_boundary(const py::array& target, const py::array& pred, py::array out, py::array boundary_out,
                              int64_t num_classes, std::optional<int64_t> ignore_index, std::optional<py::array> lut,
                              int64_t lut_lo, bool reduce_zero_label, bool target_raw_equal, int64_t dilation,
                              int n_threads, int64_t min_pixels_per_thread, int isa) {
    check_counts(num_classes, n_threads);
    const LabelType tt = label_type(target, "target");
    const LabelType pt = label_type(pred, "pred");
    if (target.ndim() != pred.ndim()) throw py::value_error("target and pred differ in number of dimensions");
    const int nd = static_cast<int>(target.ndim());
    if (nd < 2) throw py::value_error("boundary counts need maps of at least 2 dimensions (..., H, W)");
    if (nd > am::kMaxDims) throw py::value_error("more than 64 dimensions");
    for (int a = 0; a < nd; ++a) {
        if (target.shape(a) != pred.shape(a)) throw py::value_error("target and pred differ in shape");
    }
    if (dilation < 1) throw py::value_error("dilation must be >= 1, got " + std::to_string(dilation));
    int64_t* out_data = checked_out(out, num_classes);
    int64_t* bout = checked_square(boundary_out, num_classes + 1, "boundary_out");
    const am::TargetCoding tc = target_coding(tt, num_classes, ignore_index, lut, lut_lo, reduce_zero_label);
    am::PredCoding pc;
    pc.num_classes = num_classes;
    pc.limit = class_limit(num_classes, pt);

    am::BoundaryGeometry g;
    g.height = target.shape(nd - 2);
    g.width = target.shape(nd - 1);
    g.t_row = target.strides(nd - 2);
    g.t_col = target.strides(nd - 1);
    g.p_row = pred.strides(nd - 2);
    g.p_col = pred.strides(nd - 1);
    g.lead_ndim = nd - 2;
    g.images = 1;
    for (int a = 0; a < nd - 2; ++a) {
        g.lead_shape[a] = target.shape(a);
        g.t_lead[a] = target.strides(a);
        g.p_lead[a] = pred.strides(a);
        g.images *= target.shape(a);
    }
    am::BoundaryOptions opt;
    opt.n_threads = n_threads;
    opt.min_pixels_per_thread = min_pixels_per_thread;
    opt.isa = isa;

    TablesLease lease;
    am::BoundaryTables& tables = lease.get();
    am::BoundaryResult res;
    {
        py::gil_scoped_release release;
        res = with_label_types(tt.bytes, pt.bytes, [&](auto t, auto p) {
            return am::count_boundary_pairs<decltype(t), decltype(p)>(target.data(), pred.data(), g, tc, pc, dilation,
                                                                      target_raw_equal, opt, tables);
        });
    }
    if (res.out_of_memory) throw std::bad_alloc();

    // With the GIL held again, so concurrent updates of one accumulator do not interleave.
    const int64_t k = num_classes, cols = k + 1;
    int64_t invalid_target = 0, invalid_pred = 0;
    am::for_each_count(
        tables, k,
        [&](uint64_t cell, int64_t v) {
            const auto row = static_cast<int64_t>(cell) / cols, col = static_cast<int64_t>(cell) % cols;
            if (row == k + 1) invalid_target += v;
            else if (row < k && col == k) invalid_pred += v;
        },
        [](uint64_t, int64_t) {});
    if (invalid_target != 0 || invalid_pred != 0) return py::make_tuple(invalid_target, invalid_pred, res.threads);
    // Overflow: a quick bound (no entry can grow by more than every count together), and only
    // where that bound fails the exact sums (a destination may receive up to four table bins).
    int64_t total = 0;
    for (int64_t j = 0; j < tables.pairs.n_touched; ++j) total += tables.pairs.counts[tables.pairs.touched[j]];
    bool near_limit = false;
    auto region_index = [&](uint64_t cell) -> int64_t {
        const auto row = static_cast<int64_t>(cell) / cols, col = static_cast<int64_t>(cell) % cols;
        return row < k && col < k ? row * k + col : -1;
    };
    int64_t sum = 0;
    am::for_each_count(
        tables, k,
        [&](uint64_t cell, int64_t) {
            const int64_t at = region_index(cell);
            if (at >= 0) near_limit = near_limit || __builtin_add_overflow(out_data[at], total, &sum);
        },
        [&](uint64_t bin, int64_t) { near_limit = near_limit || __builtin_add_overflow(bout[bin], total, &sum); });
    if (near_limit) {
        std::vector<std::pair<int64_t, int64_t>> region, band;  // (destination, count)
        am::for_each_count(
            tables, k,
            [&](uint64_t cell, int64_t v) {
                const int64_t at = region_index(cell);
                if (at >= 0) region.emplace_back(at, v);
            },
            [&](uint64_t bin, int64_t v) { band.emplace_back(static_cast<int64_t>(bin), v); });
        bool fits = true;
        auto check = [&](std::vector<std::pair<int64_t, int64_t>>& adds, const int64_t* dst) {
            std::sort(adds.begin(), adds.end());
            for (size_t j = 0; j < adds.size();) {
                int64_t part = 0;
                size_t e = j;
                for (; e < adds.size() && adds[e].first == adds[j].first; ++e) part += adds[e].second;
                fits = fits && !__builtin_add_overflow(dst[adds[j].first], part, &sum);
                j = e;
            }
        };
        check(region, out_data);
        check(band, bout);
        if (!fits) raise_overflow();
    }
    am::for_each_count(
        tables, k,
        [&](uint64_t cell, int64_t v) {
            const int64_t at = region_index(cell);
            if (at >= 0) out_data[at] += v;
        },
        [&](uint64_t bin, int64_t v) { bout[bin] += v; });
    return py::make_tuple(invalid_target, invalid_pred, res.threads);
}

// BF scores of the maps along the last two axes: (f1_sum (K,) float64,
// f1_count (K,) int64, image_mean_sum, images_scored).  Labels that are no
// class are skipped (the region count reports them).
py::tuple bf_scores(const py::array& target, const py::array& pred, int64_t num_classes,
                    std::optional<int64_t> ignore_index, std::optional<py::array> lut, int64_t lut_lo,
                    bool reduce_zero_label, double theta, int n_threads) {
    check_counts(num_classes, n_threads);
    const LabelType tt = label_type(target, "target");
    const LabelType pt = label_type(pred, "pred");
    const int nd = static_cast<int>(target.ndim());
    if (target.ndim() != pred.ndim() || nd < 2 || nd > am::kMaxDims) {
        throw py::value_error("target and pred must be maps of equal rank, at least 2 dimensions (..., H, W)");
    }
    for (int a = 0; a < nd; ++a) {
        if (target.shape(a) != pred.shape(a)) throw py::value_error("target and pred differ in shape");
    }
    if (!(theta > 0) || !std::isfinite(theta)) throw py::value_error("theta must be positive and finite");
    const am::TargetCoding tc = target_coding(tt, num_classes, ignore_index, lut, lut_lo, reduce_zero_label);
    am::PredCoding pc;
    pc.num_classes = num_classes;
    pc.limit = class_limit(num_classes, pt);
    am::BoundaryGeometry g;
    g.height = target.shape(nd - 2);
    g.width = target.shape(nd - 1);
    g.t_row = target.strides(nd - 2);
    g.t_col = target.strides(nd - 1);
    g.p_row = pred.strides(nd - 2);
    g.p_col = pred.strides(nd - 1);
    g.lead_ndim = nd - 2;
    for (int a = 0; a < nd - 2; ++a) {
        g.lead_shape[a] = target.shape(a);
        g.t_lead[a] = target.strides(a);
        g.p_lead[a] = pred.strides(a);
        g.images *= target.shape(a);
    }
    py::array_t<double> f1_sum(num_classes);
    py::array_t<int64_t> f1_count(num_classes);
    std::fill(f1_sum.mutable_data(), f1_sum.mutable_data() + num_classes, 0.0);
    std::fill(f1_count.mutable_data(), f1_count.mutable_data() + num_classes, int64_t(0));
    double image_mean_sum = 0;
    int64_t images_scored = 0;
    am::BfSums sums;
    sums.f1_sum = f1_sum.mutable_data();
    sums.f1_count = f1_count.mutable_data();
    sums.image_mean_sum = &image_mean_sum;
    sums.images_scored = &images_scored;
    {
        py::gil_scoped_release release;
        with_label_types(tt.bytes, pt.bytes, [&](auto t, auto p) {
            return am::bf_scores<decltype(t), decltype(p)>(target.data(), pred.data(), g, tc, pc, theta, n_threads, sums);
        });
    }
    return py::make_tuple(f1_sum, f1_count, image_mean_sum, images_scored);
}

}  // namespace

void register_boundary(py::module_& m) {
    const am::BoundaryOptions defaults;
    m.def("accumulate_boundary", &accumulate_boundary, py::arg("target"), py::arg("pred"), py::arg("out"),
          py::arg("boundary_out"), py::arg("num_classes"), py::arg("ignore_index"), py::arg("lut") = py::none(),
          py::arg("lut_lo") = 0, py::arg("reduce_zero_label") = false, py::arg("target_raw_equal") = true,
          py::arg("dilation") = 1, py::arg("n_threads") = 1,
          py::arg("min_pixels_per_thread") = defaults.min_pixels_per_thread, py::arg("isa") = -1,
          "Add the region (K, K) and boundary (K+1, K+1) counts of the maps along the last two axes to out and "
          "boundary_out unless a label is invalid; returns (invalid_target, invalid_pred, threads_used).");
    m.def("bf_scores", &bf_scores, py::arg("target"), py::arg("pred"), py::arg("num_classes"), py::arg("ignore_index"),
          py::arg("lut") = py::none(), py::arg("lut_lo") = 0, py::arg("reduce_zero_label") = false,
          py::arg("theta") = 1.0, py::arg("n_threads") = 1,
          "BF scores of the maps along the last two axes: (f1_sum, f1_count, image_mean_sum, images_scored).");
}
