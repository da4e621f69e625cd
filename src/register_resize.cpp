// ade20k_metrics._core.accumulate_resized_argmax: the confusion matrix of
// argmax(bilinear upsampling of low-resolution scores) against a target,
// binding csrc/ade20k_metrics/resize_argmax.hpp.
//
// Same contract as accumulate_argmax (register_logits.cpp): checks what only
// the buffers can tell, dispatches on dtypes, releases the GIL around the
// kernel, adds to `out` only when no evaluated label is invalid.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ade20k_metrics/argmax.hpp"
#include "ade20k_metrics/resize_argmax.hpp"
#include "binding_common.hpp"

namespace py = pybind11;
using namespace am_binding;

namespace {

template <class Load>
am::KernelResult dispatch_target(int target_bytes, const void* t, const void* s, const am::ResizeGeometry& g,
                                 const am::TargetCoding& tc, const am::ResizeOptions& opt, int64_t* table,
                                 int64_t begin, int64_t end) {
    switch (target_bytes) {
        case 1: return am::count_resized_argmax_pairs<Load, uint8_t>(t, s, g, tc, opt, table, begin, end);
        case 2: return am::count_resized_argmax_pairs<Load, uint16_t>(t, s, g, tc, opt, table, begin, end);
        case 4: return am::count_resized_argmax_pairs<Load, uint32_t>(t, s, g, tc, opt, table, begin, end);
        default: return am::count_resized_argmax_pairs<Load, uint64_t>(t, s, g, tc, opt, table, begin, end);
    }
}

am::KernelResult dispatch(int score_type, int target_bytes, const void* t, const void* s, const am::ResizeGeometry& g,
                          const am::TargetCoding& tc, const am::ResizeOptions& opt, int64_t* table, int64_t begin,
                          int64_t end) {
    switch (static_cast<am::ScoreType>(score_type)) {
        case am::ScoreType::float16:
            return dispatch_target<am::detail::LoadFloat16>(target_bytes, t, s, g, tc, opt, table, begin, end);
        case am::ScoreType::bfloat16:
            return dispatch_target<am::detail::LoadBFloat16>(target_bytes, t, s, g, tc, opt, table, begin, end);
        default:
            return dispatch_target<am::detail::LoadFloat32>(target_bytes, t, s, g, tc, opt, table, begin, end);
    }
}

void check_scores(const py::array& scores, int score_type) {
    const py::dtype dt = scores.dtype();
    const auto size = dt.itemsize();
    bool ok = false;
    switch (static_cast<am::ScoreType>(score_type)) {
        case am::ScoreType::float32: ok = dt.kind() == 'f' && size == 4; break;
        case am::ScoreType::float16: ok = dt.kind() == 'f' && size == 2; break;
        case am::ScoreType::bfloat16: ok = (dt.kind() == 'i' || dt.kind() == 'u') && size == 2; break;
        default: throw py::value_error("score_type must be 0 (float32), 1 (float16) or 2 (bfloat16 bits)");
    }
    if (!ok) throw py::type_error("scores dtype does not match score_type " + std::to_string(score_type));
    if (!native_order(dt)) throw py::value_error("scores have non-native byte order; convert them first");
}

// Histogram (target, argmax over classes of the scores upsampled to the
// target's size) and add it to `out`, or, if any evaluated target label is
// invalid, leave `out` untouched.  Returns (invalid_target, invalid_pred, threads_used).
py::tuple accumulate_resized_argmax(const py::array& target, const py::array& scores, int score_type, py::array out,
                                    int64_t num_classes, std::optional<int64_t> ignore_index,
                                    std::optional<py::array> lut, int64_t lut_lo, bool reduce_zero_label,
                                    int n_threads, int64_t min_scores_per_thread, int64_t chunk_pixels) {
    check_counts(num_classes, n_threads);
    const LabelType tt = label_type(target, "target");
    check_scores(scores, score_type);
    check_aligned(scores, "scores");
    check_aligned(target, "target");
    if (target.ndim() != 3 || scores.ndim() != 4) {
        throw py::value_error("resize needs (N, C, h, w) scores and an (N, H, W) target");
    }
    if (scores.shape(0) != target.shape(0)) throw py::value_error("scores and target differ in batch size");
    am::ResizeGeometry g;
    g.images = target.shape(0);
    g.channels = scores.shape(1);
    g.in_h = scores.shape(2);
    g.in_w = scores.shape(3);
    g.out_h = target.shape(1);
    g.out_w = target.shape(2);
    if (g.channels < 1) throw py::value_error("scores have no classes");
    if (g.images > 0 && g.out_h > 0 && g.out_w > 0 && (g.in_h < 1 || g.in_w < 1)) {
        throw py::value_error("scores have an empty spatial size");
    }
    g.s_n = scores.strides(0);
    g.s_c = scores.strides(1);
    g.s_y = scores.strides(2);
    g.s_x = scores.strides(3);
    g.t_n = target.strides(0);
    g.t_y = target.strides(1);
    g.t_x = target.strides(2);
    int64_t* out_data = checked_out(out, num_classes);
    const am::TargetCoding tc = target_coding(tt, num_classes, ignore_index, lut, lut_lo, reduce_zero_label);
    am::ResizeOptions opt;
    opt.n_threads = n_threads;
    opt.min_scores_per_thread = min_scores_per_thread;

    std::vector<int64_t> table(static_cast<size_t>(am::table_bins(num_classes)), 0);
    const int64_t rows = g.images * g.out_h;
    // Chunks of whole rows with a look for Ctrl-C between them; `out` sees nothing until the end.
    const int64_t chunk = std::max<int64_t>(1, chunk_size(chunk_pixels, n_threads) / std::max<int64_t>(1, g.out_w));
    int threads_used = 1;
    for (int64_t begin = 0, end = 0; begin < rows; begin = end) {
        end = rows - begin <= chunk ? rows : begin + chunk;
        {
            py::gil_scoped_release release;
            const am::KernelResult res = dispatch(score_type, tt.bytes, target.data(), scores.data(), g, tc, opt,
                                                  table.data(), begin, end);
            threads_used = std::max(threads_used, res.threads);
        }
        if (end < rows && PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
    int64_t invalid_target = 0, invalid_pred = 0;
    am::invalid_counts(table.data(), num_classes, invalid_target, invalid_pred);
    // With the GIL held again, so concurrent updates of one matrix do not interleave.
    if (invalid_target == 0 && invalid_pred == 0) add_whole_table(table.data(), num_classes, out_data);
    return py::make_tuple(invalid_target, invalid_pred, threads_used);
}

}  // namespace

void register_resize(py::module_& m) {
    const am::ResizeOptions defaults;
    m.def("accumulate_resized_argmax", &accumulate_resized_argmax, py::arg("target"), py::arg("scores"),
          py::arg("score_type"), py::arg("out"), py::arg("num_classes"), py::arg("ignore_index"),
          py::arg("lut") = py::none(), py::arg("lut_lo") = 0, py::arg("reduce_zero_label") = false,
          py::arg("n_threads") = 1, py::arg("min_scores_per_thread") = defaults.min_scores_per_thread,
          py::arg("chunk_pixels") = int64_t(1) << 22,
          "Add the histogram of (target, argmax over classes of the (N, C, h, w) scores bilinearly upsampled "
          "to the (N, H, W) target, torch's align_corners=False rule) to out unless a label is invalid; "
          "returns (invalid_target, invalid_pred, threads_used).");
}
