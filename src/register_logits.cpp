// ade20k_metrics._core.accumulate_argmax: the confusion matrix of argmax(scores)
// against a target, binding csrc/ade20k_metrics/argmax.hpp.
//
// Same contract as accumulate (module.cpp): checks what only the buffers can
// tell, dispatches on dtypes, releases the GIL around the kernel, adds to
// `out` only when no evaluated label is invalid.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ade20k_metrics/argmax.hpp"
#include "ade20k_metrics/memory.hpp"
#include "binding_common.hpp"

namespace py = pybind11;
using namespace am_binding;

namespace {

void check_score_dtype(const py::array& scores, int score_type) {
    const py::dtype dt = scores.dtype();
    const char kind = dt.kind();
    const auto size = dt.itemsize();
    bool ok = false;
    switch (static_cast<am::ScoreType>(score_type)) {
        case am::ScoreType::float32: ok = kind == 'f' && size == 4; break;
        case am::ScoreType::float16: ok = kind == 'f' && size == 2; break;
        case am::ScoreType::bfloat16: ok = (kind == 'i' || kind == 'u') && size == 2; break;
        default: throw py::value_error("score_type must be 0 (float32), 1 (float16) or 2 (bfloat16 bits)");
    }
    if (!ok) {
        throw py::type_error("scores dtype " + py::str(dt).cast<std::string>() + " does not match score_type " +
                             std::to_string(score_type));
    }
    if (!native_order(dt)) throw py::value_error("scores have non-native byte order; convert them first");
    // The kernel reads whole elements through typed pointers.
    bool aligned = reinterpret_cast<uintptr_t>(scores.data()) % static_cast<uintptr_t>(size) == 0;
    for (py::ssize_t d = 0; d < scores.ndim(); ++d) aligned = aligned && scores.strides(d) % size == 0;
    if (!aligned) throw py::value_error("scores are not aligned; copy them first");
}

template <class Key, class T>
am::KernelResult run(const void* t, const void* s, const am::Geometry& g, int64_t channels, int64_t cs,
                     const am::TargetCoding& tc, const am::ArgmaxOptions& opt, int64_t* table, int64_t begin,
                     int64_t end) {
    return am::count_argmax_pairs<Key, T>(t, s, g, channels, cs, tc, opt, table, begin, end);
}

template <class Key>
am::KernelResult dispatch_target(int target_bytes, const void* t, const void* s, const am::Geometry& g,
                                 int64_t channels, int64_t cs, const am::TargetCoding& tc,
                                 const am::ArgmaxOptions& opt, int64_t* table, int64_t begin, int64_t end) {
    switch (target_bytes) {
        case 1: return run<Key, uint8_t>(t, s, g, channels, cs, tc, opt, table, begin, end);
        case 2: return run<Key, uint16_t>(t, s, g, channels, cs, tc, opt, table, begin, end);
        case 4: return run<Key, uint32_t>(t, s, g, channels, cs, tc, opt, table, begin, end);
        default: return run<Key, uint64_t>(t, s, g, channels, cs, tc, opt, table, begin, end);
    }
}

am::KernelResult dispatch(int score_type, int target_bytes, const void* t, const void* s, const am::Geometry& g,
                          int64_t channels, int64_t cs, const am::TargetCoding& tc, const am::ArgmaxOptions& opt,
                          int64_t* table, int64_t begin, int64_t end) {
    switch (static_cast<am::ScoreType>(score_type)) {
        case am::ScoreType::float16:
            return dispatch_target<am::detail::Float16Key>(target_bytes, t, s, g, channels, cs, tc, opt, table, begin, end);
        case am::ScoreType::bfloat16:
            return dispatch_target<am::detail::BFloat16Key>(target_bytes, t, s, g, channels, cs, tc, opt, table, begin, end);
        default:
            return dispatch_target<am::detail::Float32Key>(target_bytes, t, s, g, channels, cs, tc, opt, table, begin, end);
    }
}

// Histogram (target, argmax over `axis` of scores) and add it to `out`, or, if
// any evaluated target label is invalid, leave `out` untouched.  Returns
// (invalid_target, invalid_pred, threads_used).
py::tuple accumulate_argmax(const py::array& target, const py::array& scores, int score_type, int axis,
                            py::array out, int64_t num_classes, std::optional<int64_t> ignore_index,
                            std::optional<py::array> lut, int64_t lut_lo, bool reduce_zero_label, int n_threads,
                            int64_t min_scores_per_thread, int64_t tile, int isa, int64_t chunk_pixels,
                            int64_t private_up_to) {
    check_counts(num_classes, n_threads);
    const LabelType tt = label_type(target, "target");
    check_score_dtype(scores, score_type);
    check_aligned(scores, "scores");
    const int nd = static_cast<int>(target.ndim());
    if (scores.ndim() != nd + 1) throw py::value_error("scores must have one dimension more than target");
    if (axis < 0 || axis > nd) throw py::value_error("axis out of range");
    if (nd > am::kMaxDims) throw py::value_error("more than 64 dimensions");
    const int64_t channels = scores.shape(axis);
    if (channels < 1) throw py::value_error("scores have no classes along axis");
    int64_t* out_data = checked_out(out, num_classes);
    std::vector<int64_t> shape(static_cast<size_t>(nd)), ts(static_cast<size_t>(nd)), ss(static_cast<size_t>(nd));
    for (int d = 0; d < nd; ++d) {
        const int sd = d < axis ? d : d + 1;
        if (scores.shape(sd) != target.shape(d)) throw py::value_error("scores and target differ in shape");
        shape[static_cast<size_t>(d)] = target.shape(d);
        ts[static_cast<size_t>(d)] = target.strides(d);
        ss[static_cast<size_t>(d)] = scores.strides(sd);
    }
    const int64_t channel_stride = scores.strides(axis);

    const am::TargetCoding tc = target_coding(tt, num_classes, ignore_index, lut, lut_lo, reduce_zero_label);

    am::Geometry g;
    am::simplify_geometry(nd, shape.data(), ts.data(), ss.data(), g);
    am::ArgmaxOptions opt;
    opt.n_threads = n_threads;
    opt.min_scores_per_thread = min_scores_per_thread;
    opt.tile = tile;
    opt.isa = isa;
    opt.private_up_to = private_up_to;

    // The working table, zeroed; a large one costs only the pages it touches.
    const int64_t bins = am::table_bins(num_classes);
    am::ZeroedArray<int64_t> table;
    if (!table.allocate(static_cast<size_t>(bins))) raise_no_memory(bins * 8, "the working table");
    // Chunks with a look for Ctrl-C between them; `out` sees nothing until the end.
    const int64_t chunk = chunk_size(chunk_pixels, n_threads);
    int threads_used = 1;
    for (int64_t begin = 0, end = 0; begin < g.pixels; begin = end) {
        end = g.pixels - begin <= chunk ? g.pixels : begin + chunk;
        bool no_memory = false;
        {
            py::gil_scoped_release release;
            try {
                const am::KernelResult res = dispatch(score_type, tt.bytes, target.data(), scores.data(), g, channels,
                                                      channel_stride, tc, opt, table.data(), begin, end);
                threads_used = std::max(threads_used, res.threads);
            } catch (const std::bad_alloc&) {  // thrown before anything was counted
                no_memory = true;
            }
        }
        if (no_memory) raise_no_memory(bins * 8 * n_threads, "the threads' tables");
        if (end < g.pixels && PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
    int64_t invalid_target = 0, invalid_pred = 0;
    am::invalid_counts(table.data(), num_classes, invalid_target, invalid_pred);
    // With the GIL held again, so concurrent updates of one matrix do not interleave.
    if (invalid_target == 0 && invalid_pred == 0) add_whole_table(table.data(), num_classes, out_data);
    return py::make_tuple(invalid_target, invalid_pred, threads_used);
}

}  // namespace

void register_logits(py::module_& m) {
    const am::ArgmaxOptions defaults;
    m.def("accumulate_argmax", &accumulate_argmax, py::arg("target"), py::arg("scores"), py::arg("score_type"),
          py::arg("axis"), py::arg("out"), py::arg("num_classes"), py::arg("ignore_index"),
          py::arg("lut") = py::none(), py::arg("lut_lo") = 0, py::arg("reduce_zero_label") = false,
          py::arg("n_threads") = 1, py::arg("min_scores_per_thread") = defaults.min_scores_per_thread,
          py::arg("tile") = defaults.tile, py::arg("isa") = -1, py::arg("chunk_pixels") = int64_t(1) << 22,
          py::arg("private_up_to") = defaults.private_up_to,
          "Add the histogram of (target, argmax of scores over axis) to out unless a label is invalid; "
          "returns (invalid_target, invalid_pred, threads_used).  score_type: 0 float32, 1 float16, "
          "2 bfloat16 (passed as its 16-bit integer bits).");
}
