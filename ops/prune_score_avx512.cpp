// avx512 pruning score and merge ops (contracts: ops/prune_score.h): the width-generic
// algorithms of ops/simd/prune_score.h instantiated with simd::VecAvx512.
#include "ops/simd/vec_avx512.h"
#include "ops/prune_score.h"
#include "ops/simd/prune_score.h"

namespace glimpse {

void cosine_similarity_avx512(const float* a, int64_t n, const float* b, int64_t m, int64_t C, float* sim,
                              void* scratch, ThreadPool* pool) {
    simd::PruneScore<simd::VecAvx512>::cosine_similarity(a, n, b, m, C, sim, scratch, pool);
}

void tap_scores_avx512(const float* tap, int64_t n_head, int64_t n_pos, int64_t h, int64_t w, int64_t s,
                       bool accumulate, float* scores, void* scratch) {
    simd::PruneScore<simd::VecAvx512>::tap_scores(tap, n_head, n_pos, h, w, s, accumulate, scores, scratch);
}

void merge_rows_avx512(const float* x, int64_t n, int64_t C, const int32_t* assign, const float* weight, int64_t k,
                       float* y, float* sizes_out, ThreadPool* pool) {
    simd::PruneScore<simd::VecAvx512>::merge_rows(x, n, C, assign, weight, k, y, sizes_out, pool);
}

void attention_row_avx512(const float* q_row, const float* k, int64_t S, int64_t kv_ld, int64_t n_head, int64_t n_head_kv,
                       int64_t head_dim, float scale, float* out, ThreadPool* pool) {
    simd::PruneScore<simd::VecAvx512>::attention_row(q_row, k, S, kv_ld, n_head, n_head_kv, head_dim, scale, out, pool);
}

}  // namespace glimpse
