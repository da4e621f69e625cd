// Argument checks, label coding, the label-type dispatch and the per-thread
// scratch lease shared by the bindings (src/*.cpp).  Binding-side only: includes pybind11, no arithmetic
// on pixels.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "ade20k_metrics/confusion.hpp"

namespace am_binding {

namespace py = pybind11;

// Whether values of this dtype are stored in the machine's byte order:
// numpy writes '=' for native, '|' where order does not apply, and may keep
// an explicit '<' or '>' (dtype.newbyteorder('<')) that is native all the same.
inline bool native_order(const py::dtype& dt) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    constexpr char kNative = '>';
#else
    constexpr char kNative = '<';
#endif
    const char order = dt.byteorder();
    return order == '=' || order == '|' || order == kNative;
}

struct LabelType {
    int bytes;
    bool is_signed;
    bool is_bool = false;  // a bool array: any nonzero byte is label 1
};

inline LabelType label_type(const py::array& a, const char* name) {
    const py::dtype dt = a.dtype();
    const char kind = dt.kind();
    const int bytes = static_cast<int>(dt.itemsize());
    const bool integer = kind == 'i' || kind == 'u' || kind == 'b';
    if (!integer || !(bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8)) {
        throw py::type_error(std::string(name) + " labels must be integers, got dtype " +
                             py::str(dt).cast<std::string>());
    }
    if (!native_order(dt)) {
        throw py::value_error(std::string(name) + " has non-native byte order; convert it first");
    }
    return {bytes, kind == 'i', kind == 'b'};
}

// Largest unsigned raw value below which labels are classes (see labels.hpp).
inline uint64_t class_limit(int64_t k, LabelType lt) {
    uint64_t limit = static_cast<uint64_t>(k);
    if (lt.is_signed) limit = std::min<uint64_t>(limit, uint64_t(1) << (8 * lt.bytes - 1));
    return limit;
}

inline uint64_t type_mask(LabelType lt) {
    return lt.bytes == 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * lt.bytes)) - 1;
}

// v as the unsigned bit pattern of the label type, if the type can hold v.
inline std::optional<uint64_t> bits_in(int64_t v, LabelType lt) {
    const int bits = 8 * lt.bytes;
    const uint64_t mask = type_mask(lt);
    if (lt.is_signed) {
        if (bits < 64) {
            const int64_t lo = -(int64_t(1) << (bits - 1)), hi = (int64_t(1) << (bits - 1)) - 1;
            if (v < lo || v > hi) return std::nullopt;
        }
    } else {
        if (v < 0) return std::nullopt;
        if (bits < 64 && static_cast<uint64_t>(v) > mask) return std::nullopt;
    }
    return static_cast<uint64_t>(v) & mask;
}

// Arrays whose elements are read in place as their type must be aligned for it.
inline void check_aligned(const py::array& a, const char* name) {
    if ((a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) == 0) {
        throw py::value_error(std::string(name) + " is not aligned for its dtype; pass a copy (np.array(x))");
    }
}

inline void check_counts(int64_t num_classes, int n_threads) {
    if (num_classes < 1 || num_classes > 65534) {
        throw py::value_error("num_classes must be in [1, 65534], got " + std::to_string(num_classes));
    }
    if (n_threads < 1) throw py::value_error("n_threads must be >= 1, got " + std::to_string(n_threads));
}

// The K x K int64 matrix the counts are added to.
inline int64_t* checked_out(py::array& out, int64_t num_classes) {
    const py::dtype dt = out.dtype();
    if (dt.kind() != 'i' || dt.itemsize() != 8 || !native_order(dt)) {
        throw py::type_error("out must be a native int64 array");
    }
    if (out.ndim() != 2 || out.shape(0) != num_classes || out.shape(1) != num_classes ||
        !(out.flags() & py::array::c_style) || !out.writeable()) {
        throw py::value_error("out must be a writeable C-contiguous (num_classes, num_classes) array");
    }
    return static_cast<int64_t*>(out.mutable_data());
}

// How the kernel codes target labels: ignore_index, and the optional lookup
// table that carries reduce_zero_label / label_map (built in confusion.py).
// `lut` must outlive the returned coding.
inline am::TargetCoding target_coding(LabelType tt, int64_t num_classes, std::optional<int64_t> ignore_index,
                                      const std::optional<py::array>& lut, int64_t lut_lo, bool reduce_zero_label) {
    am::TargetCoding tc;
    tc.num_classes = num_classes;
    tc.limit = class_limit(num_classes, tt);
    tc.boolean = tt.is_bool;
    if (ignore_index) {
        if (auto bits = bits_in(*ignore_index, tt)) {
            tc.has_ignore = true;
            tc.ignore_bits = *bits;
        }
    }
    if (lut) {
        const py::array& l = *lut;
        if (l.ndim() != 1 || l.dtype().kind() != 'i' || l.itemsize() != 4 || !(l.flags() & py::array::c_style)) {
            throw py::type_error("lut must be a contiguous 1-d int32 array");
        }
        const auto size = static_cast<uint64_t>(l.shape(0));
        if (tt.bytes < 8 && size > (uint64_t(1) << (8 * tt.bytes))) {
            throw py::value_error("lut is longer than the target dtype's range");
        }
        const auto lo = bits_in(lut_lo, tt);
        if (!lo) throw py::value_error("lut_lo is outside the target dtype's range");
        const auto* v = static_cast<const int32_t*>(l.data());
        for (uint64_t j = 0; j < size; ++j) {
            if (v[j] < 0 || v[j] > num_classes + 1) throw py::value_error("lut values must be in [0, num_classes + 1]");
        }
        tc.lut = v;
        tc.lut_lo_bits = *lo;
        tc.lut_size = size;
    }
    if (reduce_zero_label) {
        // Label 0 must be in the lookup: lo <= 0 < lo + size, in the type's wrap-around.
        if (!tc.lut || ((uint64_t(0) - tc.lut_lo_bits) & type_mask(tt)) >= tc.lut_size) {
            throw py::value_error("reduce_zero_label needs a lut that covers label 0");
        }
        tc.reduce_zero_label = true;
        tc.type_min_bits = tt.is_signed ? (uint64_t(1) << (8 * tt.bytes - 1)) : 0;
        // The type's minimum reduces to a value the type cannot hold; it may still be ignore_index.
        if (ignore_index && tt.is_signed && tt.bytes < 8) {
            tc.type_min_reduces_to_ignore = *ignore_index == -(int64_t(1) << (8 * tt.bytes - 1)) - 1;
        }
    }
    return tc;
}

// Pixels per chunk of a long call (a look for Ctrl-C between chunks), without overflow.
inline int64_t chunk_size(int64_t chunk_pixels, int n_threads) {
    const int64_t team = std::max(1, n_threads);
    return std::min(std::max<int64_t>(1, chunk_pixels), INT64_MAX / team) * team;
}

// MemoryError naming what could not be had (the memory check before a call,
// core/inputs.py, counts everything a call allocates, so this is rare).
[[noreturn]] inline void raise_no_memory(int64_t bytes, const char* what) {
    const std::string message = "out of memory allocating " + std::to_string(bytes >> 20) + " MiB for " + what +
                                "; nothing was added";
    PyErr_SetString(PyExc_MemoryError, message.c_str());
    throw py::error_already_set();
}

[[noreturn]] inline void raise_overflow() {
    PyErr_SetString(PyExc_OverflowError, "adding these counts would overflow the int64 matrix; nothing was added");
    throw py::error_already_set();
}

// out (K x K) += the class part of a whole working table, or OverflowError
// leaving out unchanged.
inline void add_whole_table(const int64_t* table, int64_t k, int64_t* out) {
    const int64_t cols = am::table_cols(k);
    for (int64_t r = 0; r < k; ++r) {
        for (int64_t c = 0; c < k; ++c) {
            int64_t sum = 0;
            if (__builtin_add_overflow(out[r * k + c], table[r * cols + c], &sum)) raise_overflow();
        }
    }
    am::add_class_counts(table, k, out);
}

// Calls fn(T{}, P{}) with T, P the unsigned storage types of labels of
// target_bytes and pred_bytes (1, 2, 4, else 8) bytes: the one place the
// bindings turn runtime label sizes into kernel instantiations.
template <class T, class Fn>
auto with_pred_type(int pred_bytes, Fn&& fn) {
    switch (pred_bytes) {
        case 1: return fn(T{}, uint8_t{});
        case 2: return fn(T{}, uint16_t{});
        case 4: return fn(T{}, uint32_t{});
        default: return fn(T{}, uint64_t{});
    }
}

template <class Fn>
auto with_label_types(int target_bytes, int pred_bytes, Fn&& fn) {
    switch (target_bytes) {
        case 1: return with_pred_type<uint8_t>(pred_bytes, fn);
        case 2: return with_pred_type<uint16_t>(pred_bytes, fn);
        case 4: return with_pred_type<uint32_t>(pred_bytes, fn);
        default: return with_pred_type<uint64_t>(pred_bytes, fn);
    }
}

template <class S>
S& thread_local_instance() {
    thread_local S instance;
    return instance;
}

// The calling OS thread's working memory `Shared()` for one call, unless a call
// on this thread already holds it (a Python signal handler run between the
// chunks of a long call may count too): then a private S for this call.
template <class S, S& (*Shared)() = thread_local_instance<S>>
class ThreadLease {
public:
    ThreadLease() : nested_(busy()), s_(nested_ ? own_ : Shared()) {
        if (!nested_) busy() = true;
    }
    ~ThreadLease() {
        if (!nested_) busy() = false;
    }
    ThreadLease(const ThreadLease&) = delete;
    ThreadLease& operator=(const ThreadLease&) = delete;
    S& get() { return s_; }

private:
    static bool& busy() {
        thread_local bool in_use = false;
        return in_use;
    }
    S own_;  // constructed before s_ may refer to it
    bool nested_;
    S& s_;
};

}  // namespace am_binding
