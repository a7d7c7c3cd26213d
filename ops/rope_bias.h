// RoPE-only attention bias and the debiasing of an attention score by it (issue 24: the
// `debias` argument of the attention-based decoder methods; SparseVLM v2's "gravity
// correction", research notes A2: attn /= rope_bias, rope_bias = the softmax-free q·k of
// all-ones q and k after RoPE).
//
// With q = k = 1 (one head of D dims, n_rot of them rotated by rope_norm), the pair i of a query
// at position p_q and a key at p_k is (1, 1) rotated by p_q·θ_i and by p_k·θ_i; their dot product
// is 2·cos((p_q − p_k)·θ_i), and unrotated dims give 1 each:
//   b(Δ) = Σ_{i < n_rot/2} 2·cos(Δ·θ_i) + (D − n_rot),   θ_i = base^(−2i/n_rot),   Δ = p_q − p_k
// b depends only on the distance, b(0) = D, and it falls (unevenly) with |Δ|: RoPE alone makes a
// query attend more to nearby keys, which is why the last prompt row's attention favours the
// visual tokens nearest the end of the image (the bottom rows; FEATHER's critique of FastV).
// Every head sees the same b, so dividing each head's probabilities by it and then reducing
// over heads (mean or max) equals dividing the reduced score.
//
// b can come near 0 or go negative for some distances (head_dim 32, base 1e4: min −2.4 near
// Δ = 487), where a literal division would blow a score up or flip its sign; the divisor is
// therefore clamped below at kRopeBiasFloorShare · b(0) (stated, and tested).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/status.h"

namespace glimpse {

inline constexpr double kRopeBiasFloorShare = 1.0 / 16.0;

// The model's rotary parameters, with the per-pair angles precomputed (n_rot / 2 doubles;
// made once per plan so scoring allocates nothing).
struct RopeBiasTable {
    int64_t head_dim = 0;
    int64_t n_rot = 0;
    std::vector<double> theta;     // θ_i, i < n_rot / 2
    std::vector<double> divisors;  // divisor(Δ) for Δ in [0, size), filled by cache_divisors

    // b(Δ) as above, in double.
    double bias(int64_t delta) const;
    // The divisor used by rope_debias_ref: max(b(Δ), kRopeBiasFloorShare · head_dim); read
    // from `divisors` when Δ is in it (the same values), else computed (n_rot/2 cos).
    double divisor(int64_t delta) const;
    // Precomputes divisor(Δ) for Δ in [0, n) (allocates; call when a plan is made). Without it a
    // boundary of 1100 visual rows costs ~3.3 M instructions of cos (callgrind), 4.5x the
    // query_key_score__avx2 call it corrects; with it, a lookup per row.
    void cache_divisors(int64_t n);
};

// Refuses head_dim < 1, odd n_rot or n_rot outside [2, head_dim], a non-finite or non-positive base.
Result<RopeBiasTable> rope_bias_table(int64_t head_dim, int64_t n_rot, float base);

// scores:(n) f32 attention scores of keys at key_pos:(n) rated by a query at query_pos ->
// scores[s] /= divisor(query_pos − key_pos[s]), in place. NaN stays NaN. Run once per pruning
// stage per prompt over the visual rows only: with cache_divisors covering the distances, one
// table lookup and one division per row, so there is no SIMD variant.
void rope_debias_ref(const RopeBiasTable& table, int32_t query_pos, const int32_t* key_pos, int64_t n, float* scores);

}  // namespace glimpse
