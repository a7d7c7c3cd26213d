#include "quant/tensor_conversion.h"

#include <atomic>
#include <cmath>
#include <vector>

#include "ops/weights.h"
#include "quant/dequantize.h"
#include "quant/quantize.h"
#include "runtime/threadpool.h"

namespace glimpse {

Status check_tensor_conversion(DType from, DType to, int64_t row_length, Requantize requantize) {
    if (from == to) return Status::ok();
    GLIMPSE_CHECK_OR_RETURN(quantize_supported(to), unsupported, "cannot write type %s", dtype_name(to));
    const int64_t block = dtype_info(to).block_size;
    GLIMPSE_CHECK_OR_RETURN(row_length > 0 && row_length % block == 0, invalid_argument,
                            "row length %lld is not a multiple of the %s block size %lld",
                            static_cast<long long>(row_length), dtype_name(to), static_cast<long long>(block));
    if (dtype_is_quantized(from) && requantize == Requantize::refuse) {
        // Bits per value of `to` below those of `from`: the precision is gone either way.
        const bool lower_precision = dtype_info(from).block_bytes * dtype_info(to).block_size <
                                     dtype_info(to).block_bytes * dtype_info(from).block_size;
        return Status::error(StatusCode::invalid_argument,
                             "already quantized to %s; converting it to %s %s. Quantize from the f32/f16/bf16 model "
                             "instead (or allow requantizing explicitly)",
                             dtype_name(from), dtype_name(to),
                             lower_precision ? "cannot restore the precision it lost"
                                             : "would stack a second rounding on the first");
    }
    GLIMPSE_CHECK_OR_RETURN(dequantize_supported(from), unsupported, "cannot convert type %s to %s", dtype_name(from),
                            dtype_name(to));
    return Status::ok();
}

Status convert_tensor_rows(DType from, const void* src, DType to, void* out, int64_t rows, int64_t row_length,
                           ThreadPool* pool) {
    const uint8_t* in = static_cast<const uint8_t*>(src);
    uint8_t* dst = static_cast<uint8_t*>(out);
    const int64_t in_row_bytes = dtype_row_bytes(from, row_length);
    const int64_t out_row_bytes = dtype_row_bytes(to, row_length);
    // The lowest row holding a non-finite value, and the lowest whose scales overflowed: minima,
    // so the error names the same row whichever thread met it first.
    std::atomic<int64_t> first_non_finite{rows}, first_overflow{rows};
    auto lower_to = [](std::atomic<int64_t>& slot, int64_t row) {
        int64_t seen = slot.load(std::memory_order_relaxed);
        while (row < seen && !slot.compare_exchange_weak(seen, row, std::memory_order_relaxed)) {
        }
    };
    // f32/f16/bf16 rows: the SIMD widening of ops/weights.h (any address, bit-identical to the
    // reference reader, with which the f16 -> q8_0 conversion of the 256M mmproj took ~1.3x as
    // long); block types: the reference reader, which needs no alignment (weights_row_to_f32 wants
    // 2-byte aligned blocks, and a hand-made file may misplace them).
    const bool plain_float = from == DType::f32 || from == DType::f16 || from == DType::bf16;
    auto convert = [&](int64_t r0, int64_t r1, int) {
        std::vector<float> values(static_cast<size_t>(row_length));  // one row widened to f32
        for (int64_t r = r0; r < r1; ++r) {
            if (plain_float) weights_row_to_f32(in, from, row_length, r, values.data());
            else dequantize_row(from, in + r * in_row_bytes, values.data(), row_length);
            bool finite = true;
            for (float v : values) finite = finite && std::isfinite(v);
            if (!finite) {
                lower_to(first_non_finite, r);
                return;  // rows after it in this chunk cannot lower the minimum
            }
            quantize_row(to, values.data(), dst + r * out_row_bytes, row_length);
            if (!quantized_scales_finite(to, dst + r * out_row_bytes, row_length)) lower_to(first_overflow, r);
        }
    };
    if (pool) pool->parallel_for(rows, convert);
    else convert(0, rows, 0);
    GLIMPSE_CHECK_OR_RETURN(first_non_finite.load() == rows, invalid_argument,
                            "holds NaN or infinite values (row %lld)", static_cast<long long>(first_non_finite.load()));
    GLIMPSE_CHECK_OR_RETURN(first_overflow.load() == rows, invalid_argument,
                            "its values are too large for %s's f16 scales (row %lld)", dtype_name(to),
                            static_cast<long long>(first_overflow.load()));
    return Status::ok();
}

}  // namespace glimpse
