// How a raw label becomes a row (target) or column (prediction) of the
// working table.
//
// The working table has num_classes + 2 rows and num_classes + 1 columns:
//   rows 0..K-1     ground-truth classes        columns 0..K-1  predicted classes
//   row  K          ignored pixels              column  K       invalid predictions
//   row  K+1        invalid ground truth
// Every pixel lands somewhere without a branch; afterwards row K is dropped
// and anything in row K+1 or column K is reported as an error.
//
// Labels are read through their unsigned storage type.  A signed value v is
// valid when 0 <= v < K; read as unsigned, negative values become huge, so one
// unsigned comparison against `limit` (K, capped at 2^(bits-1) for signed
// types, where every non-negative value is below K anyway) decides validity.
#pragma once

#include <cstdint>

namespace am {

struct TargetCoding {
    int64_t num_classes = 0;
    uint64_t limit = 0;          // raw (unsigned) values below this are classes
    bool has_ignore = false;     // ignore_index representable in the target dtype
    uint64_t ignore_bits = 0;    // ignore_index as the target's unsigned bit pattern
    // Optional lookup for raw values lo .. lo+lut_size-1 (label_map,
    // reduce_zero_label): lut[v - lo] is the row (0..K+1) for raw value v.
    const int32_t* lut = nullptr;
    uint64_t lut_lo_bits = 0;    // lo as the target's unsigned bit pattern
    uint64_t lut_size = 0;
    // reduce_zero_label for values outside the lookup: v -> v - 1, after
    // checking v itself against ignore_index.  The lookup must hold v = 0.
    bool reduce_zero_label = false;
    uint64_t type_min_bits = 0;  // smallest value of the type (v - 1 would wrap)
    bool type_min_reduces_to_ignore = false;  // ignore_index == type minimum - 1
    // The bytes of a bool array: any nonzero byte is True, label 1 (NumPy's
    // rule; frombuffer or a view can make bytes other than 0 and 1).
    bool boolean = false;
};

struct PredCoding {
    int64_t num_classes = 0;
    uint64_t limit = 0;
    bool boolean = false;  // as TargetCoding::boolean
};

template <class T>
struct TargetCoder {
    uint32_t k;
    uint64_t limit;
    bool has_ignore;
    T ignore;
    const int32_t* lut;
    T lut_lo;
    uint64_t lut_size;
    bool reduce;
    T type_min;
    bool type_min_reduces_to_ignore;
    bool boolean;  // applied where raw values are tabulated (RowCoder<uint8_t>), not per call

    explicit TargetCoder(const TargetCoding& c)
        : k(static_cast<uint32_t>(c.num_classes)),
          limit(c.limit),
          has_ignore(c.has_ignore),
          ignore(static_cast<T>(c.ignore_bits)),
          lut(c.lut),
          lut_lo(static_cast<T>(c.lut_lo_bits)),
          lut_size(c.lut ? c.lut_size : 0),
          reduce(c.reduce_zero_label),
          type_min(static_cast<T>(c.type_min_bits)),
          type_min_reduces_to_ignore(c.type_min_reduces_to_ignore),
          boolean(c.boolean) {}

    inline uint32_t operator()(T v) const {
        // Unsigned wrap-around makes this one test for lo <= v < lo + size.
        const T off = static_cast<T>(v - lut_lo);
        if (static_cast<uint64_t>(off) < lut_size) return static_cast<uint32_t>(lut[off]);
        // ignore_index wins over a class of the same value (mmseg masks it first).
        if (has_ignore && v == ignore) return k;
        if (reduce) {
            if (v == type_min) return type_min_reduces_to_ignore ? k : k + 1;  // v - 1 is below every class
            v = static_cast<T>(v - 1);
            if (has_ignore && v == ignore) return k;
        }
        return static_cast<uint64_t>(v) < limit ? static_cast<uint32_t>(v) : k + 1;
    }
};

template <class T>
struct PredCoder {
    uint32_t k;
    uint64_t limit;
    bool boolean;  // as TargetCoder::boolean

    explicit PredCoder(const PredCoding& c)
        : k(static_cast<uint32_t>(c.num_classes)), limit(c.limit), boolean(c.boolean) {}

    inline uint32_t operator()(T v) const {
        return static_cast<uint64_t>(v) < limit ? static_cast<uint32_t>(v) : k;
    }
};

}  // namespace am
