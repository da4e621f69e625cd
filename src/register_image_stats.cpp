// ade20k_metrics._core.accumulate_image: one image's confusion matrix added to
// a dataset matrix, handing back the image's own per-class counts.
//
// ImageStats (analysis/stats.py) needs, for every image, the true-positive,
// false-positive and false-negative count of each class present in it.  The
// kernel's working table already holds them after counting; reading them
// there walks only the touched bins, where a (K, K) matrix per image would
// cost O(K^2) in zeroing and summing.  Same contract as accumulate
// (module.cpp): checks what only the buffers can tell, dispatches on dtypes,
// releases the GIL around the kernel, and adds to `out` only when no
// evaluated label is invalid and nothing would overflow.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "ade20k_metrics/confusion.hpp"
#include "binding_common.hpp"

namespace py = pybind11;
using namespace am_binding;

namespace {

// Working memory of one call: the kernel's table (all zeros between calls),
// its touched lists, and per-class sums (all zeros between calls too).
struct ImageScratch {
    std::vector<int64_t> table;
    std::vector<uint64_t> touched_map;  // blocks touched by count_pairs
    std::vector<uint32_t> touched;      // bins touched by count_pairs_small
    std::vector<int64_t> tp, gt, pred;  // (K,) sums of the image
    std::vector<uint8_t> seen;          // (K,) class already listed in `present`
    std::vector<int64_t> present;       // classes with a count, in order of discovery

    void fit(int64_t k) {
        const auto bins = static_cast<size_t>(am::table_bins(k));
        if (table.size() < bins) table.resize(bins, 0);
        const auto words = static_cast<size_t>(am::touched_words(static_cast<int64_t>(bins)));
        if (touched_map.size() < words) touched_map.resize(words, 0);
        const auto n = static_cast<size_t>(k);
        if (tp.size() < n) {
            tp.resize(n, 0);
            gt.resize(n, 0);
            pred.resize(n, 0);
            seen.resize(n, 0);
        }
        present.clear();
    }
};

// The thread's scratch (see ThreadLease) fitted to K; a table past the region
// kernel's own keep limit is dropped after the call (it is all zeros again
// there): K=4000 kept 92 MiB on every thread that ever counted.
class ImageScratchLease {
public:
    explicit ImageScratchLease(int64_t k) { lease_.get().fit(k); }
    ~ImageScratchLease() {
        ImageScratch& scratch = lease_.get();
        if (scratch.table.size() > static_cast<size_t>(am::kPrivateTablesUpTo)) {
            std::vector<int64_t>().swap(scratch.table);
            std::vector<uint64_t>().swap(scratch.touched_map);
        }
    }
    ImageScratch& get() { return lease_.get(); }

private:
    ThreadLease<ImageScratch> lease_;
};

// Per-class sums of one image, gathered bin by bin from the working table;
// the sums are zeroed again when this goes away, however the call ends.
class ClassSums {
public:
    ClassSums(ImageScratch& s, int64_t k) : s_(s), k_(k), cols_(am::table_cols(k)) {}
    ~ClassSums() {
        for (const int64_t c : s_.present) {
            const auto i = static_cast<size_t>(c);
            s_.tp[i] = s_.gt[i] = s_.pred[i] = 0;
            s_.seen[i] = 0;
        }
        s_.present.clear();
    }
    ClassSums(const ClassSums&) = delete;
    ClassSums& operator=(const ClassSums&) = delete;

    // Add `count` pixels of table bin `bin` (class bins only; false on int64 overflow).
    bool add(int64_t bin, int64_t count) {
        const int64_t row = bin / cols_, col = bin % cols_;
        if (row >= k_ || col >= k_ || count == 0) return true;
        note(row);
        note(col);
        bool ok = !__builtin_add_overflow(s_.gt[static_cast<size_t>(row)], count, &s_.gt[static_cast<size_t>(row)]);
        ok = ok && !__builtin_add_overflow(s_.pred[static_cast<size_t>(col)], count, &s_.pred[static_cast<size_t>(col)]);
        if (row == col) ok = ok && !__builtin_add_overflow(s_.tp[static_cast<size_t>(row)], count, &s_.tp[static_cast<size_t>(row)]);
        return ok;
    }

    // (4, n) int64: class, tp, fp, fn of the n classes present, by class.
    py::array_t<int64_t> record() {
        std::sort(s_.present.begin(), s_.present.end());
        const auto n = static_cast<py::ssize_t>(s_.present.size());
        py::array_t<int64_t> out({py::ssize_t(4), n});
        int64_t* o = out.mutable_data();
        for (py::ssize_t j = 0; j < n; ++j) {
            const auto c = static_cast<size_t>(s_.present[static_cast<size_t>(j)]);
            o[j] = static_cast<int64_t>(c);
            o[n + j] = s_.tp[c];
            o[2 * n + j] = s_.pred[c] - s_.tp[c];
            o[3 * n + j] = s_.gt[c] - s_.tp[c];
        }
        return out;
    }

private:
    void note(int64_t c) {
        const auto i = static_cast<size_t>(c);
        if (!s_.seen[i]) {
            s_.seen[i] = 1;
            s_.present.push_back(c);
        }
    }
    ImageScratch& s_;
    int64_t k_, cols_;
};

// The non-zero class cells of the table as (2, m) int64: flat index row * K + col, count.
template <class ForEachBin>
py::array_t<int64_t> cells_of(int64_t k, ForEachBin&& for_each_bin) {
    const int64_t cols = am::table_cols(k);
    std::vector<std::pair<int64_t, int64_t>> cells;
    for_each_bin([&](int64_t bin, int64_t count) {
        const int64_t row = bin / cols, col = bin % cols;
        if (row < k && col < k && count != 0) cells.emplace_back(row * k + col, count);
    });
    std::sort(cells.begin(), cells.end());
    const auto m = static_cast<py::ssize_t>(cells.size());
    py::array_t<int64_t> out({py::ssize_t(2), m});
    int64_t* o = out.mutable_data();
    for (py::ssize_t j = 0; j < m; ++j) {
        o[j] = cells[static_cast<size_t>(j)].first;
        o[m + j] = cells[static_cast<size_t>(j)].second;
    }
    return out;
}

// Count one image (any shape) against `out` (K x K int64).  Returns
// (invalid_target, invalid_pred, record, cells): when a label is invalid,
// record and cells are None and `out` is unchanged; else `out` has the image
// added, record is (4, n) int64 rows class / tp / fp / fn over the n classes
// in the image's ground truth or prediction (ascending), and cells, when
// asked for, the (2, m) non-zero cells of the image's own matrix.
py::tuple accumulate_image(const py::array& target, const py::array& pred, py::array out, int64_t num_classes,
                           std::optional<int64_t> ignore_index, std::optional<py::array> lut, int64_t lut_lo,
                           bool reduce_zero_label, bool with_cells, int n_threads, int64_t min_pixels_per_thread,
                           int64_t direct_below, int64_t flush_limit, int isa, int64_t chunk_pixels) {
    check_counts(num_classes, n_threads);
    const LabelType tt = label_type(target, "target");
    const LabelType pt = label_type(pred, "pred");
    if (target.ndim() != pred.ndim()) throw py::value_error("target and pred differ in number of dimensions");
    for (py::ssize_t d = 0; d < target.ndim(); ++d) {
        if (target.shape(d) != pred.shape(d)) throw py::value_error("target and pred differ in shape");
    }
    int64_t* out_data = checked_out(out, num_classes);
    const am::TargetCoding tc = target_coding(tt, num_classes, ignore_index, lut, lut_lo, reduce_zero_label);
    am::PredCoding pc;
    pc.num_classes = num_classes;
    pc.limit = class_limit(num_classes, pt);

    const int nd = static_cast<int>(target.ndim());
    if (nd > am::kMaxDims) throw py::value_error("more than 64 dimensions");
    std::vector<int64_t> shape(static_cast<size_t>(nd)), ts(static_cast<size_t>(nd)), ps(static_cast<size_t>(nd));
    for (int d = 0; d < nd; ++d) {
        shape[static_cast<size_t>(d)] = target.shape(d);
        ts[static_cast<size_t>(d)] = target.strides(d);
        ps[static_cast<size_t>(d)] = pred.strides(d);
    }
    am::Geometry g;
    am::simplify_geometry(nd, shape.data(), ts.data(), ps.data(), g);
    const void* t_data = target.data();
    const void* p_data = pred.data();

    ImageScratchLease lease(num_classes);
    ImageScratch& s = lease.get();
    int64_t* table = s.table.data();
    int64_t invalid_target = 0, invalid_pred = 0;
    const py::object none = py::none();

    if (g.pixels < direct_below) {
        // Small image, one thread: every touched bin is listed, counts are times g.multiplicity.
        if (s.touched.size() < static_cast<size_t>(g.pixels) + 1) s.touched.resize(static_cast<size_t>(g.pixels) + 1);
        int64_t n_touched = 0;
        {
            py::gil_scoped_release release;
            n_touched = with_label_types(tt.bytes, pt.bytes, [&](auto t, auto p) {
                return am::count_pairs_small<decltype(t), decltype(p)>(t_data, p_data, g, tc, pc, isa, table,
                                                                       s.touched.data());
            });
        }
        // Zeroes the listed bins (adding them to `out` first when asked); runs once, whatever happens.
        struct Settle {
            int64_t* table;
            const uint32_t* touched;
            int64_t n, k, mult;
            bool done = false;
            bool run(int64_t* dest, int64_t& bad_t, int64_t& bad_p) {
                done = true;
                return am::settle_small(table, touched, n, k, mult, dest, bad_t, bad_p);
            }
            ~Settle() {
                int64_t a = 0, b = 0;
                if (!done) am::settle_small(table, touched, n, k, mult, nullptr, a, b);
            }
        } settle{table, s.touched.data(), n_touched, num_classes, g.multiplicity};
        const int64_t cols = am::table_cols(num_classes);
        for (int64_t j = 0; j < n_touched; ++j) {
            const int64_t bin = s.touched[static_cast<size_t>(j)], row = bin / cols, col = bin % cols;
            if (row == num_classes + 1) invalid_target += table[bin];
            else if (row < num_classes && col == num_classes) invalid_pred += table[bin];
        }
        if (invalid_target != 0 || invalid_pred != 0) {
            settle.run(nullptr, invalid_target, invalid_pred);  // reports them times the multiplicity
            return py::make_tuple(invalid_target, invalid_pred, none, none);
        }
        ClassSums sums(s, num_classes);
        for (int64_t j = 0; j < n_touched; ++j) {
            const int64_t bin = s.touched[static_cast<size_t>(j)];
            int64_t count = 0;
            if (__builtin_mul_overflow(table[bin], g.multiplicity, &count) || !sums.add(bin, count)) raise_overflow();
        }
        py::array_t<int64_t> record = sums.record();
        py::object cells = none;
        if (with_cells) {
            cells = cells_of(num_classes, [&](auto&& fn) {
                for (int64_t j = 0; j < n_touched; ++j) {
                    const int64_t bin = s.touched[static_cast<size_t>(j)];
                    fn(bin, table[bin] * g.multiplicity);  // cannot overflow: checked above
                }
            });
        }
        if (!settle.run(out_data, invalid_target, invalid_pred)) raise_overflow();
        return py::make_tuple(int64_t(0), int64_t(0), record, cells);
    }

    am::KernelOptions opt;
    opt.n_threads = n_threads;
    opt.min_pixels_per_thread = min_pixels_per_thread;
    opt.flush_limit = flush_limit;
    opt.isa = isa;
    uint64_t* touched_map = s.touched_map.data();
    struct ClearOnExit {
        int64_t* table;
        uint64_t* map;
        int64_t k;
        ~ClearOnExit() { am::clear_touched(table, map, k); }
    } clear_on_exit{table, touched_map, num_classes};
    const int64_t chunk = chunk_size(chunk_pixels, n_threads);
    for (int64_t begin = 0, end = 0; begin < g.pixels; begin = end) {
        end = g.pixels - begin <= chunk ? g.pixels : begin + chunk;
        {
            py::gil_scoped_release release;
            with_label_types(tt.bytes, pt.bytes, [&](auto t, auto p) {
                return am::count_pairs<decltype(t), decltype(p)>(t_data, p_data, g, tc, pc, opt, table, touched_map,
                                                                 begin, end);
            });
        }
        if (end < g.pixels && PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
    am::invalid_counts(table, num_classes, invalid_target, invalid_pred);
    if (invalid_target != 0 || invalid_pred != 0) return py::make_tuple(invalid_target, invalid_pred, none, none);
    const int64_t bins = am::table_bins(num_classes);
    auto for_each_bin = [&](auto&& fn) {
        am::for_each_touched_block(touched_map, bins, 0, am::touched_words(bins), [&](int64_t b0, int64_t b1) {
            for (int64_t b = b0; b < b1; ++b) fn(b, table[b]);
        });
    };
    ClassSums sums(s, num_classes);
    bool fits = true;
    for_each_bin([&](int64_t bin, int64_t count) { fits = sums.add(bin, count) && fits; });
    if (!fits) raise_overflow();
    py::array_t<int64_t> record = sums.record();
    py::object cells = with_cells ? py::object(cells_of(num_classes, for_each_bin)) : none;
    if (!am::add_class_counts_checked(table, touched_map, num_classes, out_data)) raise_overflow();
    return py::make_tuple(int64_t(0), int64_t(0), record, cells);
}

}  // namespace

void register_image_stats(py::module_& m) {
    const am::KernelOptions defaults;
    m.def("accumulate_image", &accumulate_image, py::arg("target"), py::arg("pred"), py::arg("out"),
          py::arg("num_classes"), py::arg("ignore_index"), py::arg("lut") = py::none(), py::arg("lut_lo") = 0,
          py::arg("reduce_zero_label") = false, py::arg("with_cells") = false, py::arg("n_threads") = 1,
          py::arg("min_pixels_per_thread") = defaults.min_pixels_per_thread,
          py::arg("direct_below") = am::kSmallInputPixels, py::arg("flush_limit") = defaults.flush_limit,
          py::arg("isa") = -1, py::arg("chunk_pixels") = int64_t(1) << 26,
          "Add one image's (target, pred) histogram to out unless a label is invalid; returns "
          "(invalid_target, invalid_pred, record, cells): record (4, n) int64 rows class/tp/fp/fn over the "
          "classes present, cells (2, m) flat index/count of the image's non-zero cells when with_cells, "
          "both None when a label is invalid.");
}
