// ade20k_metrics._core: binds the C++ kernel in csrc/ to Python.
//
// This file checks what only the buffers can tell, dispatches on each input's
// dtype, releases the GIL around the kernel and turns errors into Python
// exceptions.  It does no arithmetic of its own.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ade20k_metrics/confusion.hpp"
#include "ade20k_metrics/memory.hpp"
#include "binding_common.hpp"
#include "ade20k_metrics/stream.hpp"

namespace py = pybind11;
using namespace am_binding;

namespace {

// Calls fn(T{}, P{}) with the unsigned storage types of target and pred.
// Working tables of up to this many bins (8 MiB, K <= 1022) are kept per OS
// thread between calls; larger ones are allocated for the call and freed after it.
constexpr int64_t kKeepTableUpTo = am::kPrivateTablesUpTo;

// Scratch, one per OS thread: for tables of up to kKeepTableUpTo bins a
// working table kept all zeros between calls and a list of touched bins, so a
// 64 x 64 map costs no K^2 work; for larger ones only the small inputs' bin
// list (512 KiB at most), the table being allocated per call.
struct SmallScratch {
    std::vector<int64_t> table;
    std::vector<uint32_t> touched;     // bins touched by count_pairs_small
    std::vector<uint64_t> touched_map; // blocks touched by count_pairs (see confusion.hpp)
    std::vector<uint64_t> pairs;       // count_pairs_sorted's (bin, count) list
};

// The thread's scratch (see ThreadLease), grown to a dense table when K allows.
class ScratchLease {
public:
    ScratchLease(int64_t num_classes, int64_t keep_up_to)
        : dense_(am::table_bins(num_classes) <= std::min(keep_up_to, kKeepTableUpTo)) {
        if (!dense_) return;
        SmallScratch& scratch = lease_.get();
        const auto bins = static_cast<size_t>(am::table_bins(num_classes));
        if (scratch.table.size() < bins) scratch.table.resize(bins, 0);
        const auto words = static_cast<size_t>(am::touched_words(static_cast<int64_t>(bins)));
        if (scratch.touched_map.size() < words) scratch.touched_map.resize(words, 0);
    }
    SmallScratch& get() { return lease_.get(); }
    // Whether the scratch holds the working table (else the caller allocates it).
    bool dense() const { return dense_; }

private:
    ThreadLease<SmallScratch> lease_;
    bool dense_;
};

// Entries of the small inputs' lists kept per thread (a call forced onto the
// small path with more pixels, direct_below, frees its larger list).
constexpr size_t kKeptListEntries = static_cast<size_t>(am::kSmallInputPixels) + 1;

// The small-input path (one thread, cost O(pixels)): count into the
// thread's scratch table and settle it into `out` (see am::settle_small), or,
// for tables too large to keep, sort the bins (am::count_pairs_sorted).
// Returns false when adding would overflow `out` (nothing added).
inline bool count_small(ScratchLease& lease, LabelType tt, LabelType pt, const void* t_data, const void* p_data,
                        const am::Geometry& g, const am::TargetCoding& tc, const am::PredCoding& pc, int isa,
                        int64_t* out_data, int64_t& invalid_target, int64_t& invalid_pred) {
    SmallScratch& scratch = lease.get();
    const auto room = static_cast<size_t>(g.pixels) + 1;
    if (!lease.dense()) {
        if (scratch.pairs.size() < room) scratch.pairs.resize(room);
        int64_t n_pairs = 0;
        {
            py::gil_scoped_release release;
            n_pairs = with_label_types(tt.bytes, pt.bytes, [&](auto t, auto p) {
                return am::count_pairs_sorted<decltype(t), decltype(p)>(t_data, p_data, g, tc, pc, isa,
                                                                        scratch.pairs.data());
            });
        }
        const bool fits = am::settle_sorted(scratch.pairs.data(), n_pairs, tc.num_classes, g.multiplicity, out_data,
                                            invalid_target, invalid_pred);
        if (room > kKeptListEntries) std::vector<uint64_t>().swap(scratch.pairs);  // keep only what small inputs need
        return fits;
    }
    if (scratch.touched.size() < room) scratch.touched.resize(room);
    int64_t n_touched = 0;
    {
        py::gil_scoped_release release;
        n_touched = with_label_types(tt.bytes, pt.bytes, [&](auto t, auto p) {
            return am::count_pairs_small<decltype(t), decltype(p)>(t_data, p_data, g, tc, pc, isa,
                                                                   scratch.table.data(), scratch.touched.data());
        });
    }
    // With the GIL held, so concurrent updates of one matrix do not interleave.
    const bool fits = am::settle_small(scratch.table.data(), scratch.touched.data(), n_touched, tc.num_classes,
                                       g.multiplicity, out_data, invalid_target, invalid_pred);
    if (room > kKeptListEntries) std::vector<uint32_t>().swap(scratch.touched);
    return fits;
}

// Histogram (target, pred) pairs and add them to `out` (K x K int64), or, if
// any evaluated label is out of range, leave `out` untouched.  Returns
// (invalid_target, invalid_pred, threads_used).
py::tuple accumulate(const py::array& target, const py::array& pred, py::array out, int64_t num_classes,
                     std::optional<int64_t> ignore_index, std::optional<py::array> lut, int64_t lut_lo,
                     bool reduce_zero_label, int n_threads, int64_t min_pixels_per_thread, int64_t direct_below,
                     int64_t flush_limit, int isa, int64_t chunk_pixels, int64_t private_up_to,
                     int64_t keep_up_to) {
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
    pc.boolean = pt.is_bool;

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
    int64_t invalid_target = 0, invalid_pred = 0;
    int threads_used = 1;

    ScratchLease lease(num_classes, keep_up_to);
    if (g.pixels < direct_below && g.pixels < (int64_t(1) << 32)) {
        if (!count_small(lease, tt, pt, t_data, p_data, g, tc, pc, isa, out_data, invalid_target, invalid_pred)) {
            raise_overflow();
        }
        return py::make_tuple(invalid_target, invalid_pred, threads_used);
    }

    am::KernelOptions opt;
    opt.n_threads = n_threads;
    opt.min_pixels_per_thread = min_pixels_per_thread;
    opt.flush_limit = flush_limit;
    opt.isa = isa;
    opt.private_up_to = private_up_to;
    // The working table: the thread's scratch, all zeros between calls (zeroed
    // again however this call ends), or, too large to keep, one for this call.
    const int64_t bins = am::table_bins(num_classes);
    am::ZeroedArray<int64_t> call_table;
    std::vector<uint64_t> call_map;
    int64_t* table = nullptr;
    uint64_t* touched_map = nullptr;
    if (lease.dense()) {
        table = lease.get().table.data();
        touched_map = lease.get().touched_map.data();
    } else {
        if (!call_table.allocate(static_cast<size_t>(bins))) raise_no_memory(bins * 8, "the working table");
        call_map.assign(static_cast<size_t>(am::touched_words(bins)), 0);
        table = call_table.data();
        touched_map = call_map.data();
    }
    struct ClearOnExit {
        int64_t* table;
        uint64_t* map;
        int64_t k;
        bool kept;
        ~ClearOnExit() {
            if (kept) am::clear_touched(table, map, k);
        }
    } clear_on_exit{table, touched_map, num_classes, lease.dense()};
    // Large inputs run in chunks with a look for Ctrl-C between them; the
    // counts only reach `out` once everything has been counted.
    const int64_t chunk = chunk_size(chunk_pixels, n_threads);
    for (int64_t begin = 0, end = 0; begin < g.pixels; begin = end) {
        end = g.pixels - begin <= chunk ? g.pixels : begin + chunk;
        bool no_memory = false;
        {
            py::gil_scoped_release release;
            try {
                const am::KernelResult res = with_label_types(tt.bytes, pt.bytes, [&](auto t, auto p) {
                    return am::count_pairs<decltype(t), decltype(p)>(t_data, p_data, g, tc, pc, opt, table,
                                                                     touched_map, begin, end);
                });
                threads_used = std::max(threads_used, res.threads);
            } catch (const std::bad_alloc&) {  // thrown before anything was counted
                no_memory = true;
            }
        }
        if (no_memory) raise_no_memory(bins * 9, "a thread's counters");
        if (end < g.pixels && PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
    // Bins outside the touched blocks are zero: only those are read.  With the
    // GIL held again, so concurrent updates of one matrix do not interleave.
    // False only on overflow: invalid labels are reported (returned) first.
    if (!am::settle_touched(table, touched_map, num_classes, out_data, invalid_target, invalid_pred)) raise_overflow();
    return py::make_tuple(invalid_target, invalid_pred, threads_used);
}

// confusion_matrix's path for a small map with default settings, where the
// checks and the allocation are most of the cost: a new (K, K) matrix, or
// None when the general path must run (anything but native, aligned integer
// ndarrays of one shape and fewer than kSmallInputPixels pixels, more than
// 1024 classes, or an invalid label, for which the general path raises its
// detailed error).  Up to 1024 classes the general path's memory check has
// nothing to refuse (it looks only from 64 MiB up).
py::object confusion_matrix_small(const py::array& target, const py::array& pred, int64_t num_classes,
                                  const py::object& ignore_index) {
    auto integer = [&](const py::array& a) {
        const py::dtype dt = a.dtype();
        const char kind = dt.kind();
        return (kind == 'i' || kind == 'u') && native_order(dt) &&
               (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
    };
    if (num_classes < 1 || num_classes > 1024 || !integer(target) || !integer(pred) ||
        target.ndim() != pred.ndim() || target.ndim() > am::kMaxDims || target.size() >= am::kSmallInputPixels) {
        return py::none();
    }
    for (py::ssize_t d = 0; d < target.ndim(); ++d) {
        if (target.shape(d) != pred.shape(d)) return py::none();
    }
    std::optional<int64_t> ignore;
    if (!ignore_index.is_none()) {
        int overflow = 0;
        const long long v = PyLong_AsLongLongAndOverflow(ignore_index.ptr(), &overflow);
        if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return py::none();
        }
        ignore = v;
    }
    const LabelType tt{static_cast<int>(target.itemsize()), target.dtype().kind() == 'i'};
    const LabelType pt{static_cast<int>(pred.itemsize()), pred.dtype().kind() == 'i'};
    const am::TargetCoding tc = target_coding(tt, num_classes, ignore, std::nullopt, 0, false);
    am::PredCoding pc;
    pc.num_classes = num_classes;
    pc.limit = class_limit(num_classes, pt);
    const int nd = static_cast<int>(target.ndim());
    int64_t shape[am::kMaxDims], ts[am::kMaxDims], ps[am::kMaxDims];
    for (int d = 0; d < nd; ++d) {
        shape[d] = target.shape(d);
        ts[d] = target.strides(d);
        ps[d] = pred.strides(d);
    }
    am::Geometry g;
    am::simplify_geometry(nd, shape, ts, ps, g);

    py::array_t<int64_t> out({num_classes, num_classes});
    int64_t* out_data = out.mutable_data();
    std::memset(out_data, 0, static_cast<size_t>(num_classes * num_classes) * sizeof(int64_t));
    ScratchLease lease(num_classes, kKeepTableUpTo);
    int64_t invalid_target = 0, invalid_pred = 0;
    count_small(lease, tt, pt, target.data(), pred.data(), g, tc, pc, -1, out_data, invalid_target,
                invalid_pred);  // a fresh matrix of fewer than 2^16 counts cannot overflow
    if (invalid_target != 0 || invalid_pred != 0) return py::none();
    return std::move(out);
}

// out += other for two (K, K) int64 matrices, with the GIL held (so it does
// not interleave with accumulate's own add), or OverflowError leaving out unchanged.
void add_counts(py::array out, const py::array& other) {
    if (out.ndim() != 2 || out.shape(0) != out.shape(1)) throw py::value_error("out must be a square matrix");
    int64_t* o = checked_out(out, out.shape(0));
    const py::dtype dt = other.dtype();
    if (dt.kind() != 'i' || dt.itemsize() != 8 || !native_order(dt) || other.ndim() != 2 ||
        other.shape(0) != out.shape(0) || other.shape(1) != out.shape(1) || !(other.flags() & py::array::c_style)) {
        throw py::value_error("other must be a C-contiguous int64 matrix of out's shape");
    }
    const auto* a = static_cast<const int64_t*>(other.data());
    const int64_t n = out.shape(0) * out.shape(1);
    for (int64_t j = 0; j < n; ++j) {
        int64_t sum = 0;
        if (__builtin_add_overflow(o[j], a[j], &sum)) raise_overflow();
    }
    for (int64_t j = 0; j < n; ++j) o[j] += a[j];
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int omp_max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// Benchmark helper: read a contiguous buffer once (the memory-bandwidth limit).
uint64_t stream_read(const py::buffer& buf, int n_threads) {
    const py::buffer_info info = buf.request();
    bool contiguous = true;
    py::ssize_t expected = info.itemsize;
    for (py::ssize_t d = info.ndim - 1; d >= 0; --d) {
        if (info.shape[static_cast<size_t>(d)] != 1 && info.strides[static_cast<size_t>(d)] != expected) contiguous = false;
        expected *= info.shape[static_cast<size_t>(d)];
    }
    if (!contiguous) throw py::value_error("stream_read needs a C-contiguous buffer");
    if (reinterpret_cast<uintptr_t>(info.ptr) % 8 != 0) throw py::value_error("stream_read needs an 8-byte aligned buffer");
    const int64_t bytes = static_cast<int64_t>(info.size * info.itemsize);
    py::gil_scoped_release release;
    return am::stream_read(info.ptr, bytes, n_threads);
}

std::string simd() {
    if (am::cpu_has_avx512bw()) return "avx512bw";
    if (am::cpu_has_avx2()) return "avx2";
    return AM_HAVE_NEON ? "neon" : "portable";
}

}  // namespace

void register_logits(py::module_& m);  // register_logits.cpp
void register_image_stats(py::module_& m);  // register_image_stats.cpp
void register_resize(py::module_& m);  // register_resize.cpp
void register_boundary(py::module_& m);  // register_boundary.cpp

PYBIND11_MODULE(_core, m) {
    // pybind11 looks NumPy's C API up on first use, inside a std::call_once,
    // and the look-up runs Python code (numpy.lib.NumpyVersion).  A Python
    // signal handler can run there; one that calls this module re-enters the
    // same call_once on the same thread and waits forever.  Done here, before
    // anything is defined, no call ever runs it.  It is the bindings' only lazy
    // initialisation that runs Python code: test_reliability_kernel.py checks
    // that first calls run none.
    py::detail::npy_api::get();
    m.doc() = "C++ confusion-matrix kernel (internal; use the ade20k_metrics API)";
    m.def("accumulate", &accumulate, py::arg("target"), py::arg("pred"), py::arg("out"),
          py::arg("num_classes"), py::arg("ignore_index"), py::arg("lut") = py::none(),
          py::arg("lut_lo") = 0, py::arg("reduce_zero_label") = false, py::arg("n_threads") = 1,
          py::arg("min_pixels_per_thread") = am::KernelOptions{}.min_pixels_per_thread,
          py::arg("direct_below") = am::kSmallInputPixels,
          py::arg("flush_limit") = am::KernelOptions{}.flush_limit, py::arg("isa") = -1,
          py::arg("chunk_pixels") = int64_t(1) << 26, py::arg("private_up_to") = am::kPrivateTablesUpTo,
          py::arg("keep_up_to") = kKeepTableUpTo,
          "Add the (target, pred) histogram to out unless a label is invalid; "
          "returns (invalid_target, invalid_pred, threads_used).");
    m.def("confusion_matrix_small", &confusion_matrix_small, py::arg("target"), py::arg("pred"),
          py::arg("num_classes"), py::arg("ignore_index"),
          "A new (K, K) matrix for a small map, or None where accumulate must run (see module.cpp).");
    register_logits(m);
    m.def("call_scratch_bytes", &am::call_scratch_bytes, py::arg("num_classes"),
          "Bytes one accumulate or accumulate_argmax call may allocate besides its (K, K) output.");
    register_image_stats(m);
    register_resize(m);
    register_boundary(m);
    m.def("add_counts", &add_counts, py::arg("out"), py::arg("other"),
          "out += other for (K, K) int64 matrices, with the GIL held; OverflowError leaves out unchanged.");
    m.def("openmp_enabled", &openmp_enabled, "Whether the kernel was built with OpenMP.");
    m.def("omp_max_threads", &omp_max_threads, "OpenMP's default team size (1 without OpenMP).");
    m.def("stream_read", &stream_read, py::arg("buffer"), py::arg("n_threads") = 1,
          "Read a C-contiguous buffer once (benchmark memory limit); returns the OR of its words.");
    m.def("simd", &simd, "The vector instruction set the kernel uses on this CPU.");
}
