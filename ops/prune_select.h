// Visual-token selection: scalar reference kernels of the pruning methods of issue 23.
//
// Each function takes precomputed inputs (a cosine-similarity matrix, scores, feature rows) and
// writes the indices of the tokens to keep: i32, distinct, ascending (raster order, so that
// survivors keep the image's spatial order, as every official implementation does with its
// final sort). They are plain functions over raw arrays so that they can become ops of the
// static graph later (issue 23, part 1): counts (n, k) are plan-time values, and every buffer,
// scratch included, is the caller's, so a call allocates nothing.
//
// Common rules:
//   - ties go to the lower index (the first maximum, as torch.argmax returns it);
//   - a NaN score or similarity never wins a comparison (it ranks last), so garbage in one row
//     cannot make the selection depend on the platform;
//   - bad counts (k = 0, k > n, ...) return invalid_argument naming the values.
// The top-k *op* and gather live elsewhere (ops of issue 22); the small selections inside these
// references are private helpers of this file.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/status.h"

namespace glimpse {

// ---- scores from an encoder attention tap ----------------------------------------------------
// The per-token score of the [CLS] and attention-received methods, from a tap of the vision
// encoder (ops/attention.h: the attention_row tap's [CLS] row (ops/prune_score.h), or AttentionArgs::col_mean):
// the mean over heads (FasterVLM, VisPruner; VisionZip and HiRED sum, which ranks the same),
// then, for SmolVLM, the mean over each pixel-shuffle block, since one language-model token is
// s x s encoder patches (ops/vision.h pixel_shuffle_ref's order):
//   scores[by*(w/s) + bx] = mean_h mean_{i,j < s} tap[h][(by*s + i)*w + bx*s + j]
//   tap:(n_head, n_pos) -> scores:((h/s)*(w/s)). n_pos is h*w, or h*w + 1 with the [CLS]
//   position last (llama.cpp's layout for CLIP), which is not a token and is ignored.
Status prune_scores_from_tap_ref(const float* tap, int64_t n_head, int64_t n_pos, int64_t h, int64_t w, int64_t s,
                                 float* scores);

// ---- deterministic randomness ---------------------------------------------------------------
// SplitMix64 (Steele, Lea, Flood 2014; the generator Java's SplittableRandom uses): the same
// sequence on every platform and standard library, unlike std:: distributions.
struct SplitMix64 {
    uint64_t state = 0;
    uint64_t next();
    // Uniform in [0, bound) by the multiply-high method (bias < bound / 2^64; deterministic).
    uint64_t below(uint64_t bound);
};

// random (the baseline every method is judged against): k of n tokens, uniformly, from `seed`.
// Partial Fisher-Yates over 0..n-1 (swap position i with i + below(n - i)), first k, sorted.
//   -> kept:(k) ascending. scratch: prune_random_scratch_bytes(n).
size_t prune_random_scratch_bytes(int64_t n);
Status prune_random_ref(int64_t n, int64_t k, uint64_t seed, int32_t* kept, void* scratch);

// uniform (the other baseline): k tokens on an even spatial grid of an h x w token grid.
// Rows used: g = round(sqrt(k*h/w)) clamped to [ceil(k/w), min(h, k)]; row a of the g sits at
// floor((a + 0.5) * h / g) and holds floor((a+1)k/g) - floor(ak/g) tokens, which sit at columns
// floor((b + 0.5) * w / count). k = h*w keeps all; k = 1 keeps the centre token.
//   -> kept:(k) ascending raster indices y*w + x.
Status prune_uniform_grid_ref(int64_t h, int64_t w, int64_t k, int32_t* kept);

// ---- DivPrune (Alvar et al., CVPR'25; vbdi/divprune LLaVA/llava/model/llava_arch.py DivPrune) ----
// Max-min diversity on projected embeddings, with the distance D = 1 - S (S = cosine similarity):
//   first pick: argmax_j of the second-smallest value of column j of D (the distance to j's
//               nearest other token; the smallest is D[j][j] = 0);
//   then:       argmax_j min_{s in picked} D[s][j]  (farthest-point sampling).
// The official loop recomputes the min over the picked rows at every step, O(k^2 n); here a
// running-min array makes it O(k n) after the similarity GEMM, and picks the same indices.
// One deviation: tokens already picked are excluded (the official argmax can pick a token twice
// when the rest are exact duplicates of picked ones, keeping fewer than k). NaN distances count as
// -inf (a token with a NaN similarity to a picked token is never preferred).
//   similarity:(n, n) row-major -> kept:(k) ascending; pick_order:(k) optional (nullptr = not
//   wanted), the picks in the order the greedy made them. scratch: divprune_scratch_bytes(n).
size_t divprune_scratch_bytes(int64_t n);
Status divprune_ref(const float* similarity, int64_t n, int64_t k, int32_t* kept, int32_t* pick_order, void* scratch);

// ---- CDPruner (Zhang et al., NeurIPS'25; Theia-4869/CDPruner llava/model/llava_arch.py encode_images) ----
// Conditional DPP: kernel L = diag(r) S diag(r) (S: cosine similarity of the projected visual
// rows, r: relevance to the instruction), then greedy MAP inference with the incremental
// Cholesky update of the official code (Chen et al. 2018's fast greedy MAP):
//   d2[j] = L[j][j]; repeat k times: j* = argmax d2; e = (L[j*] - sum_t c_t[j*] c_t) / sqrt(d2[j*]);
//   c_i = e; d2 -= e^2; d2[j*] = -inf.
// Each step picks the token that maximises det(L[picked + j]), since that det is
// det(L[picked]) * d2[j]. When the best remaining d2 is <= 1e-10 * max_j L[j][j] the kernel is
// exhausted (rank <= picks: duplicate rows); the official code would divide by ~0 there. The
// remaining picks then go by L[j][j] (relevance), highest first. Computed in double.
//   similarity:(n, n), relevance:(n) -> kept:(k) ascending; pick_order:(k) optional.
//   scratch: cdpruner_scratch_bytes(n, k).
size_t cdpruner_scratch_bytes(int64_t n, int64_t k);
Status cdpruner_ref(const float* similarity, const float* relevance, int64_t n, int64_t k, int32_t* kept,
                    int32_t* pick_order, void* scratch);

// CDPruner's relevance as the official LLaVA code computes it from the cosine similarity of each
// visual embedding to each instruction token embedding:
//   r_i = -mean_t text_cosine[i][t];  r = (r - min r + 1e-6) / (max r - min r).
// (The negation is the official code's, for CLIP-space embeddings.) When max r = min r the
// official code divides by zero; here every r is 1 (no preference).
//   text_cosine:(n, m) -> relevance:(n).
Status cdpruner_relevance_ref(const float* text_cosine, int64_t n, int64_t m, float* relevance);

// ---- DART (Wen et al., "Stop looking for important tokens...", 2025; ZichenWen1/DART,
// get_retained_image_token) ----
// Pivot tokens, then duplicate removal: the p tokens with the largest pivot score (the official
// code: L1 norm of the key rows) are pivots; then, for each pivot in ascending index order, the
// not-yet-kept tokens *least* similar to it (smallest cosine) are kept, and leave the pool.
// Deviation for the static plan: the official per-pivot count is (budget // pivots), so its total
// is not exactly the budget; here the k - p picks are split over the pivots as evenly as possible
// (the first (k - p) % p pivots take one more), so exactly k are kept. NaN similarities rank last.
//   similarity:(n, n), pivot_score:(n) -> kept:(k) ascending. 1 <= pivots <= k <= n.
//   scratch: dart_scratch_bytes(n).
size_t dart_scratch_bytes(int64_t n);
Status dart_ref(const float* similarity, const float* pivot_score, int64_t n, int64_t k, int64_t pivots, int32_t* kept,
                void* scratch);

// ---- VisionZip (Yang et al., CVPR'25; dvlab-research/VisionZip visionzip/utils.py) ----
// Dominant tokens: the n_dominant tokens of largest score ([CLS] attention summed over heads, or
// the attention received), in raster order. Contextual tokens, from the m = n - n_dominant others
// (raster order): targets are others[t * step], t < n_contextual, step = max(1, m / n_contextual);
// every other non-dominant token goes to the target whose key is most cosine-similar
// (metric rows L2-normalised, eps 1e-12; ties: first target), and
//   merged[t] = hidden[target_t] + mean(hidden of the tokens assigned to t)   (no mean if none).
// The official code also keeps the [CLS] hidden state as one of the dominant tokens; callers
// whose encoder has [CLS] pass the patch tokens only and account for it themselves.
//   score:(n), metric:(n, dk) head-mean keys, hidden:(n, d)
//   -> dominant:(n_dominant) ascending, targets:(n_contextual) ascending original indices,
//      merged:(n_contextual, d). Requires n_dominant + n_contextual in [1, n].
//   scratch: visionzip_scratch_bytes(n, dk, n_contextual).
size_t visionzip_scratch_bytes(int64_t n, int64_t dk, int64_t n_contextual);
Status visionzip_ref(const float* score, const float* metric, int64_t dk, const float* hidden, int64_t d, int64_t n,
                     int64_t n_dominant, int64_t n_contextual, int32_t* dominant, int32_t* targets, float* merged,
                     void* scratch);

// ---- keep budget across SmolVLM's tiles and overview ----
// Both split keep_total over parts (tiles in chunk order, then the overview) so that the total is
// exact, no part exceeds its tokens, and rounding is deterministic: each part's ideal share is
// computed in double, parts whose share reaches their token count are capped and the rest
// re-split, then floors are taken and the leftover units go to the largest fractional parts
// (ties: lower part index).
//
// equal: shares proportional to each part's token count (with SmolVLM's equal tiles: the same
// keep fraction in every tile and in the overview).
//   tokens:(n_parts) -> keep:(n_parts). 1 <= keep_total <= sum(tokens).
Status split_keep_budget_equal(const int32_t* tokens, int64_t n_parts, int64_t keep_total, int32_t* keep);

// by the overview's scores, as HiRED does (hasanar1f/HiRED HiRED_token_selection): the overview
// (the last part) keeps min(round(overview_share * keep_total), its tokens); the rest is split
// over the tiles in proportion to how many of the overview's top round((1 - overview_share) *
// n_overview) tokens by score (NaN last, ties lower index) lie in each tile. overview_token_tile
// maps overview token -> tile index (or -1: outside every tile, e.g. padding). If no top token
// lies in any tile with room left, the rest is split by token counts instead; if the tiles cannot
// hold the rest, the overview takes what is left.
//   tokens:(n_parts), overview_scores:(tokens[n_parts-1]), overview_token_tile:(same)
//   -> keep:(n_parts).
Status split_keep_budget_by_overview(const int32_t* tokens, int64_t n_parts, const float* overview_scores,
                                     const int32_t* overview_token_tile, double overview_share, int64_t keep_total,
                                     int32_t* keep);

}  // namespace glimpse
