// SparseVLM's decoder stages (issue 24; Gumpest/SparseVLMs v1.5, modelling_sparse_llama.py, the
// recipe in docs/pruning.md "sparsevlm"): DecoderPruning's boundary with text raters and
// recycling. The rest of the boundary (topk, gather, positions, KV) is models/decoder_pruning.cpp.
//
//   raters (once, at the input): e = segment 0's input rows (the token embeddings),
//     V = the visual rows, X = the text rows after the last visual row (the question and the
//     answer prefix); m[t] = mean over v in V of softmax_t(e_v · e_t) over t in X (the
//     registered query_key_score op, the visual rows as its raters: V·X·C multiply-adds, SIMD
//     and threaded); raters = { t : m[t] > mean(m) } (all of X when no m exceeds the mean:
//     equal relevance).
//   score at a stage (the attention of its own layer): per rater r, its query row over the keys
//     it sees causally (rows 0..r), mean over heads (registered query_key_score); then the mean
//     over raters. The raters follow every visual row, so they survive every stage, always at
//     the same distance from the segment's last row.
//   recycling: of the d dropped visual rows, the sparsevlm_recycled_rows(d) best by that score
//     are clustered (ops/dpc_cluster.h, DPC-kNN over the stage layer's output hidden states) into
//     sparsevlm_merged_rows(d) rows, each the plain mean of its cluster (registered merge_rows),
//     inserted right after the last kept visual row; they count as visual rows in later stages.
//   positions: compact (the default, v1.5 truncates position_ids to the new length, so the merged
//     rows take the next ids after the kept visual rows), or with positions=original each
//     survivor keeps its id and a merged row takes the id of its cluster's centre (density peak).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/decoder_pruning.h"
#include "ops/dpc_cluster.h"

namespace glimpse {
namespace {

void* aligned64(std::vector<uint8_t>& v) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(v.data());
    return v.data() + ((64 - p % 64) % 64);
}

}  // namespace

void DecoderPruning::size_sparsevlm_scratch() {
    bool raters = false, recycle = false;
    for (const DecoderPruneStep& st : steps_) {
        raters = raters || st.text_raters;
        recycle = recycle || st.recycle;
    }
    const size_t T = static_cast<size_t>(shape_.prompt_rows), V = static_cast<size_t>(shape_.visual_rows);
    const int64_t C = decoder_->hparams().n_embd;
    if (raters) {
        raters_.reserve(T);
        rater_relevance_.assign(T, 0.0);
        rater_sum_.assign(T, 0.0f);
        // choose_raters: runs of at most V visual rows rate the text rows after the image, at
        // most T - V of them.
        const int64_t n_text_max = std::max<int64_t>(shape_.prompt_rows - shape_.visual_rows, 1);
        rater_run_mean_.assign(static_cast<size_t>(n_text_max), 0.0f);
        rater_scratch_.assign(static_cast<size_t>(query_key_score_scratch_floats(
                                  std::max<int64_t>(shape_.visual_rows, 1), 1, n_text_max)),
                              0.0f);
    }
    if (recycle) {
        const int64_t r = sparsevlm_recycled_rows(shape_.visual_rows);
        const int64_t m = sparsevlm_merged_rows(shape_.visual_rows);
        dropped_.assign(V, 0);
        dropped_scores_.assign(V, 0.0f);
        recycle_pick_.assign(static_cast<size_t>(r), 0);
        recycle_rows_.assign(static_cast<size_t>(r), 0);
        recycle_x_.assign(static_cast<size_t>(r * C), 0.0f);
        merged_x_.assign(static_cast<size_t>(m * C), 0.0f);
        centres_.assign(static_cast<size_t>(m), 0);
        assign_.assign(static_cast<size_t>(r), 0);
        dpc_scratch_.assign(dpc_cluster_scratch_bytes(r, C) + 64, 0);
        // topk over the dropped rows uses the plan's topk scratch, sized for all visual rows.
        cosine_kernel_ = select_kernel(OpFamily::cosine_similarity);
        merge_kernel_ = select_kernel(OpFamily::merge_rows);
    }
}

int64_t DecoderPruning::sparsevlm_scratch_bytes() const {
    return static_cast<int64_t>(raters_.capacity() * sizeof(int32_t) +
                                rater_relevance_.size() * sizeof(double) +
                                (rater_sum_.size() + rater_run_mean_.size() + rater_scratch_.size()) * sizeof(float) +
                                (dropped_.size() + recycle_pick_.size() + recycle_rows_.size() + centres_.size() +
                                 assign_.size()) * sizeof(int32_t) +
                                (dropped_scores_.size() + recycle_x_.size() + merged_x_.size()) * sizeof(float) +
                                dpc_scratch_.size());
}

void DecoderPruning::choose_raters(int64_t n_rows, ThreadPool* pool) {
    raters_.clear();
    if (rater_relevance_.empty()) return;
    const int64_t C = decoder_->hparams().n_embd;
    const float* e = embeddings();  // (n_rows, C)
    int64_t last_visual = -1;
    for (int64_t i = 0; i < n_rows; ++i) {
        if (is_visual_[static_cast<size_t>(i)]) last_visual = i;
    }
    const int64_t t0 = last_visual + 1, n_text = n_rows - t0;  // n_text >= 1: the last row is text
    std::fill(rater_relevance_.begin(), rater_relevance_.begin() + n_text, 0.0);
    // m[t] = mean over visual rows v of softmax_t(e_v · e_t) is the query_key_score op with the
    // visual rows as its raters, one head of width C, scale 1, mean over raters:
    //   q:(R, C) a run of consecutive visual rows, k:(n_text, C) the text rows after the image
    //   -> out:(n_text) the mean of the run's R softmax rows.
    // The visual rows come in runs (the chunks, between wrapper tokens): one call per run, the
    // runs' means weighted by their rows and summed in f64.
    int64_t n_visual = 0;
    for (int64_t v = 0; v < n_rows;) {
        if (!is_visual_[static_cast<size_t>(v)]) {
            ++v;
            continue;
        }
        int64_t end = v;
        while (end < n_rows && is_visual_[static_cast<size_t>(end)]) ++end;
        QueryKeyScoreArgs a;
        a.q = e + v * C;
        a.q_ld = C;
        a.n_raters = end - v;
        a.k = e + t0 * C;
        a.k_ld = C;
        a.n_keys = n_text;
        a.n_head = a.n_head_kv = 1;
        a.head_dim = C;
        a.scale = 1.0f;
        a.reduce = HeadReduce::mean;
        a.out = rater_run_mean_.data();
        score_kernel_->fn.query_key_score(a, rater_scratch_.data(), pool);
        for (int64_t t = 0; t < n_text; ++t) {
            rater_relevance_[static_cast<size_t>(t)] +=
                static_cast<double>(end - v) * static_cast<double>(rater_run_mean_[static_cast<size_t>(t)]);
        }
        n_visual += end - v;
        v = end;
    }
    double mean = 0;
    for (int64_t t = 0; t < n_text; ++t) {
        rater_relevance_[static_cast<size_t>(t)] /= static_cast<double>(std::max<int64_t>(n_visual, 1));
        mean += rater_relevance_[static_cast<size_t>(t)];
    }
    mean /= static_cast<double>(n_text);
    for (int64_t t = 0; t < n_text; ++t) {
        if (rater_relevance_[static_cast<size_t>(t)] > mean) raters_.push_back(static_cast<int32_t>(t0 + t));
    }
    if (raters_.empty()) {
        for (int64_t t = 0; t < n_text; ++t) raters_.push_back(static_cast<int32_t>(t0 + t));
    }
}

void DecoderPruning::score_by_raters(const DecoderSegment& seg, int64_t T, ThreadPool* pool) {
    const TextHparams& h = decoder_->hparams();
    const int64_t D = h.head_dim, T0 = rows_[0];
    std::fill(rater_sum_.begin(), rater_sum_.begin() + T, 0.0f);
    for (const int32_t r : raters_) {
        const int64_t row = T - (T0 - r);  // its row in this segment: rows after the image all survive
        // q:(1, Hq·D) of that row over the keys it sees, k:(row + 1, Hkv·D).
        QueryKeyScoreArgs a;
        a.q = seg.plan->f32(seg.score_q) + row * h.n_head * D;
        a.q_ld = h.n_head * D;
        a.n_raters = 1;
        a.k = seg.plan->f32(seg.score_k);
        a.k_ld = h.n_head_kv * D;
        a.n_keys = row + 1;
        a.n_head = h.n_head;
        a.n_head_kv = h.n_head_kv;
        a.head_dim = D;
        a.scale = 1.0f / std::sqrt(static_cast<float>(D));
        a.reduce = HeadReduce::mean;
        a.out = row_scores_.data();
        score_kernel_->fn.query_key_score(a, score_scratch_.data(), pool);
        for (int64_t i = 0; i <= row; ++i) rater_sum_[static_cast<size_t>(i)] += row_scores_[static_cast<size_t>(i)];
    }
    // Every visual row precedes every rater, so its sum has all raters; later rows are unused.
    const float inv = 1.0f / static_cast<float>(raters_.size());
    for (int64_t i = 0; i < T; ++i) row_scores_[static_cast<size_t>(i)] = rater_sum_[static_cast<size_t>(i)] * inv;
}

int64_t DecoderPruning::recycle_dropped(size_t s, int64_t n, const int32_t* pos, ThreadPool* pool) {
    const int64_t C = decoder_->hparams().n_embd;
    const DecoderSegment& seg = plan_.segments[s];
    DecoderSegment& next = plan_.segments[s + 1];
    const int64_t n_vis = visual_rows_[s], keep = steps_[s].keep, m = merged_rows_[s];
    // The dropped visual rows (ascending), with their scores.
    int64_t d = 0, sel = 0;
    for (int64_t j = 0; j < n_vis; ++j) {
        if (sel < keep && selected_[static_cast<size_t>(sel)] == j) {
            ++sel;
            continue;
        }
        dropped_[static_cast<size_t>(d)] = static_cast<int32_t>(j);
        dropped_scores_[static_cast<size_t>(d)] = visual_scores_[static_cast<size_t>(j)];
        ++d;
    }
    const int64_t r = sparsevlm_recycled_rows(d);
    GLIMPSE_ASSERT(d == n_vis - keep && sparsevlm_merged_rows(d) == m && r >= m);
    topk_kernel_->fn.topk(dropped_scores_.data(), d, r, recycle_pick_.data(), aligned64(topk_scratch_));
    for (int64_t k = 0; k < r; ++k) {
        recycle_rows_[static_cast<size_t>(k)] =
            visual_index_[static_cast<size_t>(dropped_[static_cast<size_t>(recycle_pick_[static_cast<size_t>(k)])])];
    }
    // x:(r, C) the recycled rows' hidden states after the stage's layer -> merged:(m, C).
    gather_kernel_->fn.gather_rows(seg.plan->f32(seg.hidden), C, recycle_rows_.data(), r, recycle_x_.data(), pool);
    dpc_cluster_ref(recycle_x_.data(), r, C, m, cosine_kernel_->fn.cosine_similarity, centres_.data(), assign_.data(),
                    aligned64(dpc_scratch_), pool);
    merge_kernel_->fn.merge_rows(recycle_x_.data(), r, C, assign_.data(), nullptr, m, merged_x_.data(), nullptr, pool);

    // Insert after the last kept visual row: rows [p, n) of the next segment move down by m.
    int64_t p = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (is_visual_next_[static_cast<size_t>(i)]) p = i + 1;
    }
    float* e = next.plan->f32(next.embeddings);
    std::memmove(e + (p + m) * C, e + p * C, static_cast<size_t>((n - p) * C) * sizeof(float));
    std::memcpy(e + p * C, merged_x_.data(), static_cast<size_t>(m * C) * sizeof(float));
    int32_t* next_pos = static_cast<int32_t*>(next.plan->data(next.positions));
    std::vector<int32_t>& kept = kept_rows_[s];
    kept.resize(static_cast<size_t>(n + m));  // within the capacity reserved in create()
    for (int64_t i = n - 1; i >= p; --i) {
        next_pos[i + m] = next_pos[i];
        is_visual_next_[static_cast<size_t>(i + m)] = is_visual_next_[static_cast<size_t>(i)];
        kept[static_cast<size_t>(i + m)] = kept[static_cast<size_t>(i)];
    }
    for (int64_t c = 0; c < m; ++c) {
        next_pos[p + c] = pos[recycle_rows_[static_cast<size_t>(centres_[static_cast<size_t>(c)])]];
        is_visual_next_[static_cast<size_t>(p + c)] = 1;
        kept[static_cast<size_t>(p + c)] = -1;
    }
    if (steps_[s].compact_positions) {
        for (int64_t i = 0; i < n + m; ++i) next_pos[i] = static_cast<int32_t>(i);
    }
    return n + m;
}

}  // namespace glimpse
