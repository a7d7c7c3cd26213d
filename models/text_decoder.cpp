#include "models/text_decoder.h"

#include "models/limits.h"

#include <algorithm>
#include <cmath>

#include "ops/weights.h"

namespace glimpse {

Result<TextHparams> text_hparams_from_gguf(const GgufFile& f) {
    GLIMPSE_ASSIGN_OR_RETURN(std::string_view arch, f.get_string("general.architecture"));
    GLIMPSE_CHECK_OR_RETURN(arch == "llama", unsupported,
                            "%s: text architecture '%.*s' is not supported (glimpse runs 'llama' decoders)",
                            f.path().c_str(), static_cast<int>(arch.size()), arch.data());
    TextHparams h;
    GLIMPSE_ASSIGN_OR_RETURN(h.n_embd, f.get_int("llama.embedding_length"));
    GLIMPSE_ASSIGN_OR_RETURN(h.n_layer, f.get_int("llama.block_count"));
    GLIMPSE_ASSIGN_OR_RETURN(h.n_head, f.get_int("llama.attention.head_count"));
    GLIMPSE_ASSIGN_OR_RETURN(h.n_head_kv, f.get_int_or("llama.attention.head_count_kv", h.n_head));
    GLIMPSE_ASSIGN_OR_RETURN(h.n_ff, f.get_int("llama.feed_forward_length"));
    GLIMPSE_ASSIGN_OR_RETURN(h.n_ctx_train, f.get_int_or("llama.context_length", 2048));
    GLIMPSE_ASSIGN_OR_RETURN(double eps, f.get_float("llama.attention.layer_norm_rms_epsilon"));
    GLIMPSE_ASSIGN_OR_RETURN(double base, f.get_float_or("llama.rope.freq_base", 10000.0));
    h.rms_eps = static_cast<float>(eps);
    h.rope_base = static_cast<float>(base);

    auto in_range = [&](int64_t v, int64_t lo, int64_t hi, const char* key) {
        return limits::check_metadata_range(f.path(), key, v, lo, hi);
    };
    GLIMPSE_RETURN_IF_ERROR(in_range(h.n_ctx_train, 1, limits::kMaxContextLength, "llama.context_length"));
    GLIMPSE_RETURN_IF_ERROR(in_range(h.n_embd, 1, 1 << 16, "llama.embedding_length"));
    GLIMPSE_RETURN_IF_ERROR(in_range(h.n_layer, 1, 512, "llama.block_count"));
    GLIMPSE_RETURN_IF_ERROR(in_range(h.n_head, 1, h.n_embd, "llama.attention.head_count"));
    GLIMPSE_RETURN_IF_ERROR(in_range(h.n_head_kv, 1, h.n_head, "llama.attention.head_count_kv"));
    GLIMPSE_RETURN_IF_ERROR(in_range(h.n_ff, 1, 1 << 20, "llama.feed_forward_length"));
    GLIMPSE_CHECK_OR_RETURN(h.n_embd % h.n_head == 0 && h.n_head % h.n_head_kv == 0, parse_error,
                            "%s: %lld heads do not divide width %lld or are not a multiple of %lld kv heads",
                            f.path().c_str(), static_cast<long long>(h.n_head), static_cast<long long>(h.n_embd),
                            static_cast<long long>(h.n_head_kv));
    h.head_dim = h.n_embd / h.n_head;
    GLIMPSE_ASSIGN_OR_RETURN(h.n_rot, f.get_int_or("llama.rope.dimension_count", h.head_dim));
    GLIMPSE_CHECK_OR_RETURN(h.n_rot >= 2 && h.n_rot <= h.head_dim && h.n_rot % 2 == 0, parse_error,
                            "%s: rope dimension count %lld is invalid for head size %lld", f.path().c_str(),
                            static_cast<long long>(h.n_rot), static_cast<long long>(h.head_dim));
    GLIMPSE_CHECK_OR_RETURN(std::isfinite(h.rope_base) && h.rope_base > 0 && std::isfinite(h.rms_eps) && h.rms_eps >= 0,
                            parse_error, "%s: rope base or RMS epsilon is not a positive finite number",
                            f.path().c_str());

    const GgufTensor* emb = f.find_tensor("token_embd.weight");
    GLIMPSE_CHECK_OR_RETURN(emb != nullptr, parse_error, "%s: tensor 'token_embd.weight' is missing", f.path().c_str());
    GLIMPSE_CHECK_OR_RETURN(emb->n_dims == 2 && emb->ne[0] == h.n_embd, parse_error,
                            "%s: token_embd.weight has rows of %lld, expected %lld", f.path().c_str(),
                            static_cast<long long>(emb->ne[0]), static_cast<long long>(h.n_embd));
    h.n_vocab = emb->ne[1];
    h.tied_embeddings = f.find_tensor("output.weight") == nullptr;
    return h;
}

Result<std::unique_ptr<TextDecoder>> TextDecoder::load(const std::string& path) {
    GLIMPSE_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::open(path));
    return from_file(std::move(file));
}

Result<std::unique_ptr<TextDecoder>> TextDecoder::from_file(std::unique_ptr<GgufFile> file) {
    std::unique_ptr<TextDecoder> dec(new TextDecoder());
    GLIMPSE_ASSIGN_OR_RETURN(dec->hparams_, text_hparams_from_gguf(*file));
    dec->file_ = std::move(file);
    dec->token_embd_ = dec->file_->find_tensor("token_embd.weight");
    GLIMPSE_CHECK_OR_RETURN(weights_type_supported(dec->token_embd_->type), unsupported,
                            "%s: token_embd.weight has type %s, which glimpse cannot read",
                            dec->file_->path().c_str(), dtype_name(dec->token_embd_->type));
    dec->token_embd_data_ = dec->owned_.aligned_data(*dec->token_embd_);
    GLIMPSE_CHECK_OR_RETURN(dec->token_embd_data_ != nullptr, resource_exhausted,
                            "%s: cannot allocate %llu bytes to align token_embd.weight", dec->file_->path().c_str(),
                            static_cast<unsigned long long>(dec->token_embd_->nbytes));
    DecoderPlan probe;
    GLIMPSE_ASSIGN_OR_RETURN(Graph g, dec->build_graph(&probe, 1));  // validates every tensor now
    (void)g;
    // Loading read the metadata and copied the small tensors: were they the file's bytes?
    GLIMPSE_RETURN_IF_ERROR(dec->file_->mapping()->check_intact());
    return dec;
}

void TextDecoder::embed_token(int32_t id, float* dst) const {
    GLIMPSE_ASSERT(id >= 0 && id < hparams_.n_vocab);
    // Read from the mapping on every token; forward() checks the file afterwards.
    weights_row_to_f32(token_embd_data_, token_embd_->type, hparams_.n_embd, id, dst);
}

ValueId TextDecoder::add_layer(Graph& g, GgufWeights& w, ValueId x, ValueId positions, int il, ValueId* q_out,
                           ValueId* k_out) const {
    const TextHparams& h = hparams_;
    const int64_t C = h.n_embd, D = h.head_dim, F = h.n_ff;
    const int64_t q_dim = h.n_head * D, kv_dim = h.n_head_kv * D;
    const float kq_scale = 1.0f / std::sqrt(static_cast<float>(D));
    const std::string p = "blk." + std::to_string(il) + ".";
    ValueId cur = g.rms_norm(x, w.vector(p + "attn_norm.weight", C), h.rms_eps);
    ValueId q = g.linear(cur, w.matrix(p + "attn_q.weight", q_dim, C), w.optional_vector(p + "attn_q.bias", q_dim));
    ValueId k = g.linear(cur, w.matrix(p + "attn_k.weight", kv_dim, C), w.optional_vector(p + "attn_k.bias", kv_dim));
    ValueId v = g.linear(cur, w.matrix(p + "attn_v.weight", kv_dim, C), w.optional_vector(p + "attn_v.bias", kv_dim));
    q = g.rope(q, positions, h.n_head, D, h.n_rot, h.rope_base);
    k = g.rope(k, positions, h.n_head_kv, D, h.n_rot, h.rope_base);
    if (q_out) *q_out = q;
    if (k_out) *k_out = k;
    cur = g.attention_kv(q, k, v, h.n_head, h.n_head_kv, D, kq_scale, il);
    cur = g.linear(cur, w.matrix(p + "attn_output.weight", C, q_dim), w.optional_vector(p + "attn_output.bias", C));
    x = g.add(cur, x);

    cur = g.rms_norm(x, w.vector(p + "ffn_norm.weight", C), h.rms_eps);
    ValueId gate = g.linear(cur, w.matrix(p + "ffn_gate.weight", F, C));
    ValueId up = g.linear(cur, w.matrix(p + "ffn_up.weight", F, C));
    cur = g.linear(g.swiglu(gate, up), w.matrix(p + "ffn_down.weight", C, F));
    x = g.add(cur, x);
    return x;
}

Result<Graph> TextDecoder::build_graph(DecoderPlan* io, int64_t max_rows) {
    const TextHparams& h = hparams_;
    const int64_t C = h.n_embd;
    Graph g;
    GgufWeights w(*file_, g, owned_);

    // x:(T, C) embeddings, pos:(T) positions; T varies per pass up to max_rows.
    io->embeddings = g.input("embeddings", DType::f32, Shape::of({max_rows, C}), /*dynamic_rows=*/true);
    io->positions = g.input("positions", DType::i32, Shape::of({max_rows}), /*dynamic_rows=*/true);
    ValueId x = io->embeddings;
    for (int il = 0; il < h.n_layer; ++il) x = add_layer(g, w, x, io->positions, il);
    // Only the last row's logits are needed (prefill and decode both sample from it).
    x = g.rms_norm(g.last_row(x), w.vector("output_norm.weight", C), h.rms_eps);
    const std::string out_name = h.tied_embeddings ? "token_embd.weight" : "output.weight";
    io->logits = g.linear(x, w.matrix(out_name, h.n_vocab, C));
    g.mark_output(io->logits);
    GLIMPSE_RETURN_IF_ERROR(w.status());
    GLIMPSE_RETURN_IF_ERROR(g.status().with_context(file_->path()));
    return g;
}

Status TextDecoder::check_kv_type(DType kv_type) const {
    GLIMPSE_CHECK_OR_RETURN(kv_cache_type_supported(kv_type), invalid_argument,
                            "KV cache type %s is not one of f16, f32, q8_0, q4_0", dtype_name(kv_type));
    // q8_0 / q4_0 blocks run along the head dimension (ops/attention_kvq.h): whole blocks per head.
    const int64_t block = dtype_info(kv_type).block_size;
    GLIMPSE_CHECK_OR_RETURN(hparams_.head_dim % block == 0, unsupported,
                            "%s: a %s KV cache stores blocks of %lld values along the head dimension, and this "
                            "model's head_dim %lld is not a multiple of %lld; use --kv-type f16 or f32",
                            file_->path().c_str(), dtype_name(kv_type), static_cast<long long>(block),
                            static_cast<long long>(hparams_.head_dim), static_cast<long long>(block));
    return Status::ok();
}

Result<std::unique_ptr<KvCache>> TextDecoder::create_kv_cache(const std::vector<int64_t>& capacity,
                                                              const std::vector<int64_t>& prompt_rows,
                                                              DType kv_type) const {
    const int64_t row = hparams_.n_head_kv * hparams_.head_dim;
    if (kv_mixed_high_shares_.empty()) return KvCache::create(capacity, row, kv_type);
    GLIMPSE_CHECK_OR_RETURN(kv_type == DType::q8_0, invalid_argument,
                            "a mixed KV cache keeps q8_0 and q4_0 rows; the plan asked for %s", dtype_name(kv_type));
    GLIMPSE_RETURN_IF_ERROR(check_kv_type(DType::q4_0));
    return KvCache::create_mixed(capacity, prompt_rows, row, kv_mixed_high_shares_);
}

Result<DecoderPlan> TextDecoder::compile(int64_t max_rows, int64_t context, DType kv_type, int n_threads) {
    GLIMPSE_CHECK_OR_RETURN(max_rows >= 1 && context >= max_rows, invalid_argument,
                            "decoder plan: %lld rows per pass over a context of %lld slots",
                            static_cast<long long>(max_rows), static_cast<long long>(context));
    GLIMPSE_RETURN_IF_ERROR(check_kv_type(kv_type));
    DecoderPlan dp;
    dp.max_rows = max_rows;
    dp.context = context;
    const size_t n_layer = static_cast<size_t>(hparams_.n_layer);
    GLIMPSE_ASSIGN_OR_RETURN(dp.kv_cache, create_kv_cache(std::vector<int64_t>(n_layer, context),
                                                          std::vector<int64_t>(n_layer, max_rows), kv_type));
    GLIMPSE_ASSIGN_OR_RETURN(Graph g, build_graph(&dp, max_rows));
    PlanOptions opts;
    opts.n_threads = n_threads;
    opts.kv_cache = dp.kv_cache.get();
    // Packed weights replace the file's copy in memory (see PackedWeightCache).
    packed_.set_packed_source_hook(
        [mapping = file_->mapping()](const void* w, size_t n) { mapping->release_resident_range(w, n); });
    opts.weight_cache = &packed_;
    GLIMPSE_ASSIGN_OR_RETURN(dp.plan, Plan::compile(std::move(g), opts));
    GLIMPSE_RETURN_IF_ERROR(file_->mapping()->check_intact());  // packing read the weights
    return dp;
}

Result<const float*> TextDecoder::forward(DecoderPlan& dp, int64_t n_rows, int64_t pos0, ThreadPool* pool) const {
    RunArgs args;
    args.n_rows = n_rows;
    args.pos0 = pos0;
    GLIMPSE_RETURN_IF_ERROR(dp.plan->run(args, pool));
    // The pass read embeddings (and any unpacked weights) from the mapping: logits computed
    // from a file truncated or rewritten meanwhile are not returned (runtime/mapped_file.h).
    GLIMPSE_RETURN_IF_ERROR(file_->mapping()->check_intact());
    return static_cast<const float*>(dp.plan->f32(dp.logits));
}

Result<Graph> TextDecoder::build_segment_graph(DecoderSegment* io, const SegmentSpec& spec, bool last) {
    const TextHparams& h = hparams_;
    const int64_t C = h.n_embd, D = h.head_dim;
    Graph g;
    GgufWeights w(*file_, g, owned_);
    // x:(T, C) the hidden state entering the segment, pos:(T) its positions; T <= max_rows.
    io->embeddings = g.input("hidden_in", DType::f32, Shape::of({spec.max_rows, C}), /*dynamic_rows=*/true);
    io->positions = g.input("positions", DType::i32, Shape::of({spec.max_rows}), /*dynamic_rows=*/true);
    ValueId x = io->embeddings;
    ValueId q_last = kNoValue, k_last = kNoValue;
    for (int il = io->first_layer; il < io->end_layer; ++il) x = add_layer(g, w, x, io->positions, il, &q_last, &k_last);
    if (last) {
        x = g.rms_norm(g.last_row(x), w.vector("output_norm.weight", C), h.rms_eps);
        const std::string out_name = h.tied_embeddings ? "token_embd.weight" : "output.weight";
        io->logits = g.linear(x, w.matrix(out_name, h.n_vocab, C));
        g.mark_output(io->logits);
    } else {
        io->hidden = x;
        g.mark_output(x);
        if (spec.score_layer == PruneScoreLayer::own_last) {
            io->score_q = q_last;
            io->score_k = k_last;
        } else {
            // The next layer's normed q/k with RoPE, as that layer will compute them for the
            // rows it keeps: q:(T, Hq·D), k:(T, Hkv·D).
            const std::string p = "blk." + std::to_string(io->end_layer) + ".";
            ValueId cur = g.rms_norm(x, w.vector(p + "attn_norm.weight", C), h.rms_eps);
            ValueId q = g.linear(cur, w.matrix(p + "attn_q.weight", h.n_head * D, C),
                                 w.optional_vector(p + "attn_q.bias", h.n_head * D));
            ValueId k = g.linear(cur, w.matrix(p + "attn_k.weight", h.n_head_kv * D, C),
                                 w.optional_vector(p + "attn_k.bias", h.n_head_kv * D));
            io->score_q = g.rope(q, io->positions, h.n_head, D, h.n_rot, h.rope_base);
            io->score_k = g.rope(k, io->positions, h.n_head_kv, D, h.n_rot, h.rope_base);
        }
        g.mark_output(io->score_q);
        g.mark_output(io->score_k);
    }
    GLIMPSE_RETURN_IF_ERROR(w.status());
    GLIMPSE_RETURN_IF_ERROR(g.status().with_context(file_->path()));
    return g;
}

namespace {

// Plans and allocates the one buffer of a SegmentArenas::shared plan (layout: text_decoder.h)
// and binds every segment into it.
Status bind_shared_buffer(SegmentedDecoderPlan& sp) {
    const int64_t hidden_in = sp.segments.front().plan->graph().value(sp.segments.front().embeddings).nbytes;
    sp.carried_bytes = hidden_in;
    for (const DecoderSegment& seg : sp.segments) {
        const MemoryReport& m = seg.plan->memory();
        sp.carried_bytes += seg.plan->graph().value(seg.positions).nbytes;
        sp.activation_bytes = std::max(sp.activation_bytes, m.arena_bytes);
        sp.scratch_bytes = std::max(sp.scratch_bytes, m.scratch_bytes);
    }
    sp.buffer.reset(aligned_buffer_alloc(static_cast<size_t>(sp.shared_bytes())));
    GLIMPSE_CHECK_OR_RETURN(sp.buffer, resource_exhausted,
                            "segmented decoder plan: cannot allocate its %lld-byte activation buffer",
                            static_cast<long long>(sp.shared_bytes()));
    uint8_t* base = sp.buffer.get();
    uint8_t* positions = base + hidden_in;
    uint8_t* activations = base + sp.carried_bytes;
    for (DecoderSegment& seg : sp.segments) {
        // Every segment's input is the one hidden_in buffer; its positions its own.
        GLIMPSE_RETURN_IF_ERROR(seg.plan->bind_value(seg.embeddings, base));
        GLIMPSE_RETURN_IF_ERROR(seg.plan->bind_value(seg.positions, positions));
        positions += seg.plan->graph().value(seg.positions).nbytes;
        seg.plan->bind_memory(activations, activations + sp.activation_bytes);
    }
    return Status::ok();
}

}  // namespace

Result<SegmentedDecoderPlan> TextDecoder::compile_segments(const std::vector<SegmentSpec>& specs, DType kv_type,
                                                           int n_threads, SegmentArenas arenas) {
    const int n_layer = static_cast<int>(hparams_.n_layer);
    GLIMPSE_CHECK_OR_RETURN(!specs.empty() && specs.back().end_layer == n_layer, invalid_argument,
                            "segmented decoder plan: the last segment must end at layer %d", n_layer);
    std::vector<int64_t> capacity(static_cast<size_t>(n_layer), 0), prompt_rows(static_cast<size_t>(n_layer), 0);
    int first = 0;
    for (size_t s = 0; s < specs.size(); ++s) {
        const SegmentSpec& sp = specs[s];
        GLIMPSE_CHECK_OR_RETURN(sp.end_layer > first && sp.end_layer <= n_layer, invalid_argument,
                                "segmented decoder plan: segment %zu ends at layer %d, after layer %d and at most %d",
                                s, sp.end_layer, first, n_layer);
        GLIMPSE_CHECK_OR_RETURN(sp.max_rows >= 1 && sp.kv_capacity >= sp.max_rows, invalid_argument,
                                "segmented decoder plan: segment %zu has %lld rows per pass over %lld KV slots", s,
                                static_cast<long long>(sp.max_rows), static_cast<long long>(sp.kv_capacity));
        for (int il = first; il < sp.end_layer; ++il) {
            capacity[static_cast<size_t>(il)] = sp.kv_capacity;
            prompt_rows[static_cast<size_t>(il)] = sp.max_rows;
        }
        first = sp.end_layer;
    }
    SegmentedDecoderPlan out;
    GLIMPSE_ASSIGN_OR_RETURN(out.kv_cache, create_kv_cache(capacity, prompt_rows, kv_type));
    packed_.set_packed_source_hook(
        [mapping = file_->mapping()](const void* w, size_t n) { mapping->release_resident_range(w, n); });
    first = 0;
    for (size_t s = 0; s < specs.size(); ++s) {
        DecoderSegment seg;
        seg.first_layer = first;
        seg.end_layer = specs[s].end_layer;
        seg.max_rows = specs[s].max_rows;
        seg.kv_capacity = specs[s].kv_capacity;
        GLIMPSE_ASSIGN_OR_RETURN(Graph g, build_segment_graph(&seg, specs[s], s + 1 == specs.size()));
        PlanOptions opts;
        opts.n_threads = n_threads;
        opts.kv_cache = out.kv_cache.get();
        opts.weight_cache = &packed_;
        if (arenas == SegmentArenas::shared) {
            opts.external_memory = true;
            opts.external_values = {seg.embeddings, seg.positions};  // the carried region
        }
        GLIMPSE_ASSIGN_OR_RETURN(seg.plan, Plan::compile(std::move(g), opts));
        first = seg.end_layer;
        out.segments.push_back(std::move(seg));
    }
    GLIMPSE_RETURN_IF_ERROR(file_->mapping()->check_intact());  // packing read the weights
    if (arenas == SegmentArenas::shared) GLIMPSE_RETURN_IF_ERROR(bind_shared_buffer(out));
    return out;
}

}  // namespace glimpse
