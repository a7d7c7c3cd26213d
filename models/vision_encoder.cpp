#include "models/vision_encoder.h"

#include "models/limits.h"
#include "ops/tome.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace glimpse {

int64_t VisionHparams::n_tokens_per_chunk() const {
    if (projector == ProjectorType::idefics3) return n_patches() / (scale_factor * scale_factor);
    return n_patches();  // mlp: the [CLS] row replaces the dropped first row (see build_graph)
}

Result<VisionHparams> vision_hparams_from_gguf(const GgufFile& f) {
    VisionHparams h;
    GLIMPSE_ASSIGN_OR_RETURN(std::string_view arch, f.get_string_or("general.architecture", "clip"));
    GLIMPSE_CHECK_OR_RETURN(arch == "clip", unsupported, "%s: general.architecture is '%.*s', expected 'clip' (an mmproj file)",
                            f.path().c_str(), static_cast<int>(arch.size()), arch.data());
    GLIMPSE_ASSIGN_OR_RETURN(std::string_view proj, f.get_string("clip.projector_type"));
    if (proj == "idefics3") {
        h.projector = ProjectorType::idefics3;
    } else if (proj == "mlp") {
        h.projector = ProjectorType::mlp;
    } else {
        return Status::error(StatusCode::unsupported,
                             "%s: projector type '%.*s' is not supported (glimpse runs 'idefics3' and 'mlp')",
                             f.path().c_str(), static_cast<int>(proj.size()), proj.data());
    }
    GLIMPSE_ASSIGN_OR_RETURN(h.image_size, f.get_int("clip.vision.image_size"));
    GLIMPSE_ASSIGN_OR_RETURN(h.patch_size, f.get_int("clip.vision.patch_size"));
    GLIMPSE_ASSIGN_OR_RETURN(h.n_embd, f.get_int("clip.vision.embedding_length"));
    GLIMPSE_ASSIGN_OR_RETURN(h.n_ff, f.get_int("clip.vision.feed_forward_length"));
    GLIMPSE_ASSIGN_OR_RETURN(h.n_layer, f.get_int("clip.vision.block_count"));
    GLIMPSE_ASSIGN_OR_RETURN(h.n_head, f.get_int("clip.vision.attention.head_count"));
    GLIMPSE_ASSIGN_OR_RETURN(double eps, f.get_float("clip.vision.attention.layer_norm_epsilon"));
    h.eps = static_cast<float>(eps);
    GLIMPSE_ASSIGN_OR_RETURN(bool use_gelu, f.get_bool_or("clip.use_gelu", false));
    GLIMPSE_ASSIGN_OR_RETURN(bool use_silu, f.get_bool_or("clip.use_silu", false));
    GLIMPSE_CHECK_OR_RETURN(!use_silu, unsupported, "%s: clip.use_silu vision FFNs are not supported", f.path().c_str());
    h.ffn_act = use_gelu ? UnaryOp::gelu_tanh_f16 : UnaryOp::gelu_quick_f16;

    auto check_range = [&](int64_t v, int64_t lo, int64_t hi, const char* key) -> Status {
        GLIMPSE_CHECK_OR_RETURN(v >= lo && v <= hi, out_of_range, "%s: %s = %lld is outside [%lld, %lld]",
                                f.path().c_str(), key, static_cast<long long>(v), static_cast<long long>(lo),
                                static_cast<long long>(hi));
        return Status::ok();
    };
    GLIMPSE_RETURN_IF_ERROR(check_range(h.image_size, 1, limits::kMaxEncoderImageSize, "clip.vision.image_size"));
    GLIMPSE_RETURN_IF_ERROR(check_range(h.patch_size, 1, h.image_size, "clip.vision.patch_size"));
    {
        const int64_t side = h.image_size / h.patch_size;
        GLIMPSE_CHECK_OR_RETURN(side * side <= limits::kMaxPatchesPerPass, out_of_range,
                                "%s: image size %lld with patch %lld gives %lld patches per pass; glimpse allows at "
                                "most %lld",
                                f.path().c_str(), static_cast<long long>(h.image_size),
                                static_cast<long long>(h.patch_size), static_cast<long long>(side * side),
                                static_cast<long long>(limits::kMaxPatchesPerPass));
    }
    GLIMPSE_RETURN_IF_ERROR(check_range(h.n_embd, 1, 1 << 16, "clip.vision.embedding_length"));
    GLIMPSE_RETURN_IF_ERROR(check_range(h.n_ff, 1, 1 << 18, "clip.vision.feed_forward_length"));
    GLIMPSE_RETURN_IF_ERROR(check_range(h.n_layer, 1, 256, "clip.vision.block_count"));
    GLIMPSE_RETURN_IF_ERROR(check_range(h.n_head, 1, h.n_embd, "clip.vision.attention.head_count"));
    GLIMPSE_CHECK_OR_RETURN(h.image_size % h.patch_size == 0 && h.n_embd % h.n_head == 0, parse_error,
                            "%s: image size %lld / patch %lld or width %lld / heads %lld do not divide",
                            f.path().c_str(), static_cast<long long>(h.image_size), static_cast<long long>(h.patch_size),
                            static_cast<long long>(h.n_embd), static_cast<long long>(h.n_head));

    for (const char* key : {"clip.vision.image_mean", "clip.vision.image_std"}) {
        GLIMPSE_ASSIGN_OR_RETURN(std::vector<double> v, f.get_float_array(key));
        GLIMPSE_CHECK_OR_RETURN(v.size() == 3, parse_error, "%s: %s has %zu values, expected 3", f.path().c_str(), key,
                                v.size());
        float* dst = std::strcmp(key, "clip.vision.image_mean") == 0 ? h.image_mean : h.image_std;
        for (int c = 0; c < 3; ++c) dst[c] = static_cast<float>(v[c]);
    }
    for (float s : h.image_std) {
        GLIMPSE_CHECK_OR_RETURN(s > 0 && std::isfinite(s), parse_error, "%s: image_std must be positive",
                                f.path().c_str());
    }

    if (h.projector == ProjectorType::idefics3) {
        GLIMPSE_ASSIGN_OR_RETURN(h.scale_factor, f.get_int("clip.vision.projector.scale_factor"));
        GLIMPSE_ASSIGN_OR_RETURN(h.preproc_image_size, f.get_int_or("clip.vision.preproc_image_size", h.image_size));
        const int64_t grid = h.image_size / h.patch_size;
        GLIMPSE_CHECK_OR_RETURN(h.scale_factor >= 1 && grid % h.scale_factor == 0, parse_error,
                                "%s: scale factor %lld does not divide the %lldx%lld patch grid", f.path().c_str(),
                                static_cast<long long>(h.scale_factor), static_cast<long long>(grid),
                                static_cast<long long>(grid));
        GLIMPSE_RETURN_IF_ERROR(check_range(h.preproc_image_size, h.image_size, limits::kMaxPreprocImageSize,
                                            "clip.vision.preproc_image_size"));
        // The longest edge is rounded up to whole tiles: ceil(preproc / image_size) tiles a side.
        const int64_t tiles_per_side = (h.preproc_image_size + h.image_size - 1) / h.image_size;
        GLIMPSE_CHECK_OR_RETURN(tiles_per_side <= limits::kMaxTilesPerSide, out_of_range,
                                "%s: clip.vision.preproc_image_size %lld over %lld px tiles gives up to %lldx%lld "
                                "tiles per image; glimpse allows at most %lldx%lld",
                                f.path().c_str(), static_cast<long long>(h.preproc_image_size),
                                static_cast<long long>(h.image_size), static_cast<long long>(tiles_per_side),
                                static_cast<long long>(tiles_per_side), static_cast<long long>(limits::kMaxTilesPerSide),
                                static_cast<long long>(limits::kMaxTilesPerSide));
        h.n_layer_used = h.n_layer;
        const GgufTensor* fc = f.find_tensor("mm.model.fc.weight");
        GLIMPSE_CHECK_OR_RETURN(fc != nullptr && fc->n_dims == 2, parse_error, "%s: tensor 'mm.model.fc.weight' is missing",
                                f.path().c_str());
        h.n_embd_out = fc->ne[1];
    } else {
        h.has_class_embedding = f.find_tensor("v.class_embd") != nullptr;
        // llama.cpp (at the golden commit) runs block_count - 1 blocks when the file has no
        // clip.vision.feature_layer, and up to the deepest listed layer otherwise; it takes
        // that block's output, with no post-LayerNorm.
        if (f.has("clip.vision.feature_layer")) {
            GLIMPSE_ASSIGN_OR_RETURN(std::vector<int64_t> layers, f.get_int_array("clip.vision.feature_layer"));
            int64_t deepest = -1;
            for (int64_t l : layers) deepest = std::max(deepest, l);
            h.n_layer_used = deepest < 0 ? h.n_layer - 1 : deepest;
            GLIMPSE_CHECK_OR_RETURN(layers.size() <= 1, unsupported,
                                    "%s: stacking several feature layers is not supported", f.path().c_str());
        } else {
            h.n_layer_used = h.n_layer - 1;
        }
        GLIMPSE_RETURN_IF_ERROR(check_range(h.n_layer_used, 1, h.n_layer, "vision feature layer"));
        const GgufTensor* mm2 = f.find_tensor("mm.2.weight");
        GLIMPSE_CHECK_OR_RETURN(mm2 != nullptr && mm2->n_dims == 2, parse_error, "%s: tensor 'mm.2.weight' is missing",
                                f.path().c_str());
        h.n_embd_out = mm2->ne[1];
    }
    return h;
}

std::vector<int64_t> vision_merge_token_counts(const VisionHparams& h, const VisionMerge& merge) {
    std::vector<int64_t> counts = {h.n_patches() + (h.has_class_embedding ? 1 : 0)};
    for (int64_t l = 0; l < h.n_layer_used; ++l) {
        const int r = l < static_cast<int64_t>(merge.merge_per_layer.size()) ? merge.merge_per_layer[l] : 0;
        counts.push_back(counts.back() - r);
    }
    return counts;
}

namespace {

// Refuses a schedule that merges more than a block can (half its tokens, [CLS] kept); `what`
// names the request in the message ("--merge 0.5", "pruning plan: stages[0].args.r").
Status check_merge_schedule(const VisionHparams& h, const VisionMerge& m, const std::string& what) {
    const int64_t cls = h.has_class_embedding ? 1 : 0;
    const std::vector<int64_t> counts = vision_merge_token_counts(h, m);
    for (int64_t l = 0; l < h.n_layer_used && l < static_cast<int64_t>(m.merge_per_layer.size()); ++l) {
        const int64_t T = counts[l];
        const int64_t max_r = tome_max_merge(T, cls ? T - 1 : -1);
        GLIMPSE_CHECK_OR_RETURN(m.merge_per_layer[l] >= 0 && m.merge_per_layer[l] <= max_r, invalid_argument,
                                "%s: block %lld would merge %d of its %lld tokens; at most %lld (half, [CLS] kept)",
                                what.c_str(), static_cast<long long>(l), m.merge_per_layer[l], static_cast<long long>(T),
                                static_cast<long long>(max_r));
    }
    return Status::ok();
}

}  // namespace

Result<VisionMerge> vision_merge_schedule(const VisionHparams& h, double merge, const std::string& label) {
    const std::string what = label.empty() ? str_printf("--merge %g", merge) : label + str_printf(" %g", merge);
    GLIMPSE_CHECK_OR_RETURN(std::isfinite(merge) && merge >= 0, invalid_argument,
                            "%s: must be 0, a fraction in (0, 1) or a whole number of tokens per block", what.c_str());
    const int64_t L = h.n_layer_used, N = h.n_patches();
    VisionMerge m;
    m.merge_per_layer.assign(static_cast<size_t>(L), 0);
    if (merge == 0) return m;
    if (merge < 1) {
        const int64_t total = static_cast<int64_t>(std::floor(merge * static_cast<double>(N) + 0.5));
        for (int64_t l = 0; l < L; ++l) m.merge_per_layer[l] = static_cast<int>(total / L + (l < total % L ? 1 : 0));
    } else {
        GLIMPSE_CHECK_OR_RETURN(merge == std::floor(merge) && merge <= N, invalid_argument,
                                "%s: at 1 or above it is tokens merged per block, a whole number up to %lld",
                                what.c_str(), static_cast<long long>(N));
        for (int64_t l = 0; l < L; ++l) m.merge_per_layer[l] = static_cast<int>(merge);
    }
    GLIMPSE_RETURN_IF_ERROR(check_merge_schedule(h, m, what));
    return m;
}

Result<VisionMerge> vision_merge_from_list(const VisionHparams& h, const std::vector<int>& per_block,
                                           const std::string& label) {
    GLIMPSE_CHECK_OR_RETURN(per_block.size() <= static_cast<size_t>(h.n_layer_used), invalid_argument,
                            "%s: a per-block list of %zu entries, and glimpse runs %lld blocks of this encoder",
                            label.c_str(), per_block.size(), static_cast<long long>(h.n_layer_used));
    VisionMerge m;
    m.merge_per_layer.assign(static_cast<size_t>(h.n_layer_used), 0);
    std::copy(per_block.begin(), per_block.end(), m.merge_per_layer.begin());
    GLIMPSE_RETURN_IF_ERROR(check_merge_schedule(h, m, label));
    return m;
}

Result<std::unique_ptr<VisionEncoder>> VisionEncoder::load(const std::string& mmproj_path, Numerics numerics,
                                                           ThreadPool* requantize_pool) {
    GLIMPSE_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::open(mmproj_path));
    return from_file(std::move(file), numerics, requantize_pool);
}

Result<std::unique_ptr<VisionEncoder>> VisionEncoder::from_file(std::unique_ptr<GgufFile> file, Numerics numerics,
                                                                ThreadPool* requantize_pool) {
    std::unique_ptr<VisionEncoder> enc(new VisionEncoder());
    GLIMPSE_ASSIGN_OR_RETURN(enc->hparams_, vision_hparams_from_gguf(*file));
    enc->file_ = std::move(file);
    enc->numerics_ = numerics;
    enc->owned_.set_requantize_pool(requantize_pool);
    // Build once to validate every tensor now rather than at first use.
    VisionPlan probe;
    GLIMPSE_ASSIGN_OR_RETURN(Graph g, enc->build_graph(&probe, VisionTaps{}));
    (void)g;
    // Loading read the metadata and copied the small tensors: were they the file's bytes?
    GLIMPSE_RETURN_IF_ERROR(enc->file_->mapping()->check_intact());
    return enc;
}

// One ViT block, shared by SigLIP and CLIP, x:(N,C) -> (N,C):
//   x = x + attn(ln1(x));  x = x + ffn(ln2(x))
// With `tap` set, the block also records its attention taps (see VisionTaps).
// With merge_r > 0 (ToMe), merge_r tokens are merged after the attention: *sizes (kNoValue = all
// 1) gives the attention's key sizes and receives the merged sizes, *assign the merge's map.
// cls_row < 0: no [CLS] (nothing protected).
struct BlockMerge {
    int64_t r = 0;
    ValueId* sizes = nullptr;
    ValueId assign = kNoValue;
};

static ValueId vit_block(Graph& g, GgufWeights& w, const VisionHparams& h, int il, ValueId x, VisionTapValues* tap,
                         const VisionTaps& taps, int64_t cls_row, BlockMerge* merge) {
    const std::string p = "v.blk." + std::to_string(il) + ".";
    const int64_t C = h.n_embd, F = h.n_ff, D = C / h.n_head;
    ValueId cur = g.layer_norm(x, w.vector(p + "ln1.weight", C), w.vector(p + "ln1.bias", C), h.eps);
    ValueId q = g.linear(cur, w.matrix(p + "attn_q.weight", C, C), w.optional_vector(p + "attn_q.bias", C));
    ValueId k = g.linear(cur, w.matrix(p + "attn_k.weight", C, C), w.optional_vector(p + "attn_k.bias", C));
    ValueId v = g.linear(cur, w.matrix(p + "attn_v.weight", C, C), w.optional_vector(p + "attn_v.bias", C));
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    if (tap && taps.cls_attention) tap->cls_attention = g.attention_row(q, k, cls_row, h.n_head, h.n_head, D, scale);
    const ValueId key_sizes = merge && merge->sizes ? *merge->sizes : kNoValue;
    cur = g.attention(q, k, v, h.n_head, h.n_head, D, scale, tap && taps.column_mean ? &tap->column_mean : nullptr,
                      key_sizes);
    cur = g.linear(cur, w.matrix(p + "attn_out.weight", C, C), w.optional_vector(p + "attn_out.bias", C));
    x = g.add(cur, x);
    if (merge && merge->r > 0) {
        // ToMe: match on this block's keys (averaged over heads inside tome_match), merge x.
        merge->assign = g.tome_match(k, h.n_head, D, merge->r, cls_row);
        x = g.tome_merge(x, merge->assign, *merge->sizes, merge->sizes);
    }

    cur = g.layer_norm(x, w.vector(p + "ln2.weight", C), w.vector(p + "ln2.bias", C), h.eps);
    // The legacy LLaVA converter stores HF fc1 as ffn_down and fc2 as ffn_up; like
    // llama.cpp, the matrix that reads the model width (ne[0] == C) is the up projection.
    std::string up = p + "ffn_up", down = p + "ffn_down";
    const GgufTensor* down_t = w.peek(down + ".weight");
    if (down_t && down_t->ne[0] == C && C != F) std::swap(up, down);
    cur = g.linear(cur, w.matrix(up + ".weight", F, C), w.optional_vector(up + ".bias", F));
    cur = g.unary(h.ffn_act, cur);
    cur = g.linear(cur, w.matrix(down + ".weight", C, F), w.optional_vector(down + ".bias", C));
    return g.add(cur, x);
}

Result<Graph> VisionEncoder::build_graph(VisionPlan* io, const VisionTaps& taps, const VisionMerge& merge) {
    const VisionHparams& h = hparams_;
    Graph g;
    GgufWeights w(*file_, g, owned_, numerics_);
    const int64_t S = h.image_size, P = h.patch_size, C = h.n_embd, N = h.n_patches();
    const int64_t grid = S / P;

    // pixels:(3,S,S) -> patches:(N, 3·P·P) -> x:(N, C). ggml's conv_2d multiplies
    // f16 patches by an f16 kernel; doing the same keeps parity with llama.cpp.
    io->pixels = g.input("pixels", DType::f32, Shape::of({3, S, S}));
    ValueId x = g.linear(g.im2col(io->pixels, P, /*round_to_f16=*/true),
                         w.matrix_flat_f16_rounded("v.patch_embd.weight", C, 3 * P * P),
                         w.optional_vector("v.patch_embd.bias", C));
    int64_t n_pos = N;
    if (h.projector == ProjectorType::mlp && h.has_class_embedding) {
        // llama.cpp appends [CLS] after the patches: x:(N+1, C), position row N is the CLS position.
        ValueId cls = w.f32_matrix("v.class_embd", 1, C);
        x = g.concat_rows(x, cls);
        n_pos = N + 1;
    }
    x = g.add(x, w.f32_matrix("v.position_embd.weight", n_pos, C));
    if (w.has("v.pre_ln.weight")) {
        x = g.layer_norm(x, w.vector("v.pre_ln.weight", C), w.vector("v.pre_ln.bias", C), h.eps);
    }
    GLIMPSE_CHECK_OR_RETURN(!taps.cls_attention || h.has_class_embedding, invalid_argument,
                            "%s: this encoder has no [CLS] token; use the column-mean tap instead", file_->path().c_str());
    const bool merging = merge.any();
    GLIMPSE_CHECK_OR_RETURN(!merging || taps.layers.empty(), unsupported,
                            "%s: attention taps and token merging together are not supported", file_->path().c_str());
    GLIMPSE_CHECK_OR_RETURN(merge.merge_per_layer.size() <= static_cast<size_t>(h.n_layer_used), invalid_argument,
                            "token merging: %zu per-block counts for an encoder running %lld blocks",
                            merge.merge_per_layer.size(), static_cast<long long>(h.n_layer_used));
    ValueId sizes = kNoValue;     // (T) tokens each row stands for, after the first merge
    std::vector<ValueId> assigns;  // every merge's map, first to last
    io->taps.clear();
    for (int layer : taps.layers) {
        GLIMPSE_CHECK_OR_RETURN(layer >= 0 && layer < h.n_layer_used, invalid_argument,
                                "attention tap at block %d: the encoder runs blocks 0..%lld", layer,
                                static_cast<long long>(h.n_layer_used - 1));
    }
    for (int il = 0; il < h.n_layer_used; ++il) {
        VisionTapValues* tap = nullptr;
        for (int layer : taps.layers) {
            if (layer == il && (taps.cls_attention || taps.column_mean)) {
                io->taps.push_back(VisionTapValues{il});
                tap = &io->taps.back();
                break;
            }
        }
        BlockMerge bm;
        bm.r = il < static_cast<int>(merge.merge_per_layer.size()) ? merge.merge_per_layer[il] : 0;
        bm.sizes = &sizes;
        // [CLS] is the last row, and merging keeps the kept rows in order, so it stays last.
        const int64_t cls_row = h.has_class_embedding ? g.value(x).shape.rows() - 1 : -1;
        x = vit_block(g, w, h, il, x, tap, taps, merging ? cls_row : N, merging ? &bm : nullptr);
        if (bm.assign != kNoValue) assigns.push_back(bm.assign);
        if (tap) {
            if (tap->cls_attention != kNoValue) g.mark_output(tap->cls_attention);
            if (tap->column_mean != kNoValue) g.mark_output(tap->column_mean);
        }
    }

    // Both projectors read the post-LayerNorm output when the file has one (llama.cpp applies
    // v.post_ln after the last run block for SigLIP and for CLIP/LLaVA towers alike).
    if (w.has("v.post_ln.weight")) {
        x = g.layer_norm(x, w.vector("v.post_ln.weight", C), w.vector("v.post_ln.bias", C), h.eps);
    }
    // Merged tokens back on the full grid (each row copied to every token it absorbed), so the
    // projector sees the layout it was trained on. After the row-wise post-LayerNorm: fewer rows.
    if (!assigns.empty()) x = g.tome_restore(x, assigns);
    if (h.projector == ProjectorType::idefics3) {
        const int64_t s = h.scale_factor;
        x = g.pixel_shuffle(x, grid, grid, s);
        x = g.linear(x, w.matrix("mm.model.fc.weight", h.n_embd_out, C * s * s));
    } else {
        // llama.cpp keeps rows 1..N: patch 0 is dropped and [CLS] becomes the last token.
        if (h.has_class_embedding) x = g.slice_rows(x, 1, N);
        const GgufTensor* mm0 = w.peek("mm.0.weight");
        const int64_t hidden = mm0 ? mm0->ne[1] : 0;
        x = g.linear(x, w.matrix("mm.0.weight", hidden, C), w.optional_vector("mm.0.bias", hidden));
        x = g.unary(UnaryOp::gelu_tanh_f16, x);
        x = g.linear(x, w.matrix("mm.2.weight", h.n_embd_out, hidden), w.optional_vector("mm.2.bias", h.n_embd_out));
    }
    io->embeddings = x;
    g.mark_output(x);
    GLIMPSE_RETURN_IF_ERROR(w.status());
    GLIMPSE_RETURN_IF_ERROR(g.status().with_context(file_->path()));
    return g;
}

Result<VisionPlan> VisionEncoder::compile(int n_threads, const VisionTaps& taps, const VisionMerge& merge) {
    VisionPlan vp;
    GLIMPSE_ASSIGN_OR_RETURN(Graph g, build_graph(&vp, taps, merge));
    PlanOptions opts;
    opts.n_threads = n_threads;
    // Packed weights replace the file's copy in memory (see PackedWeightCache), and the Q8_0
    // copies --numerics fast made at load (OwnedTensors::requantized_q8_0).
    packed_.set_packed_source_hook([this, mapping = file_->mapping()](const void* w, size_t n) {
        if (owned_.is_requantized(w)) owned_.release_requantized(w);
        else mapping->release_resident_range(w, n);
    });
    opts.weight_cache = &packed_;
    GLIMPSE_ASSIGN_OR_RETURN(vp.plan, Plan::compile(std::move(g), opts));
    GLIMPSE_RETURN_IF_ERROR(file_->mapping()->check_intact());  // packing read the weights
    if (owned_.requantized_count() > 0) {
        // Copies this plan reads as stored (a linear node whose kernel has no packed layout)
        // stay resident; the rest are only read through their packed copies.
        std::vector<const void*> in_place;
        const Graph& pg = vp.plan->graph();
        for (const Node& n : pg.nodes()) {
            if (n.op == OpKind::linear && !n.packed) in_place.push_back(pg.values()[n.inputs[1]].data);
        }
        GLIMPSE_RETURN_IF_ERROR(owned_.settle_requantized([&](const void* w) {
            return std::find(in_place.begin(), in_place.end(), w) != in_place.end();
        }));
    }
    return vp;
}

Status VisionEncoder::encode(VisionPlan& vp, const float* pixels, float* out, ThreadPool* pool) const {
    const int64_t S = hparams_.image_size;
    std::memcpy(vp.plan->f32(vp.pixels), pixels, static_cast<size_t>(3 * S * S) * sizeof(float));
    GLIMPSE_RETURN_IF_ERROR(vp.plan->run(RunArgs{}, pool));
    // Weights without a packed layout are read from the mapping on every run (mapped_file.h).
    GLIMPSE_RETURN_IF_ERROR(file_->mapping()->check_intact());
    const int64_t n = vp.plan->rows(vp.embeddings) * hparams_.n_embd_out;
    std::memcpy(out, vp.plan->f32(vp.embeddings), static_cast<size_t>(n) * sizeof(float));
    return Status::ok();
}

}  // namespace glimpse
