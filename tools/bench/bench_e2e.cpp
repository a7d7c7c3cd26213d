// glimpse-bench e2e: the whole pipeline on one image (load, encode per chunk,
// prefill, decode) with planned memory and peak RSS.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "models/calibration_budget.h"
#include "models/decoder_pruning.h"
#include "models/vlm.h"
#include "ops/matmul.h"
#include "runtime/gguf.h"
#include "runtime/image.h"
#include "runtime/kv_cache.h"
#include "tools/bench/bench_common.h"

namespace glimpse::bench {

namespace {

int64_t peak_rss_bytes() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

// Resident set now (/proc/self/statm), 0 where unknown: after packing, the file pages of the
// packed weights and --numerics fast's released Q8_0 copies should not count.
int64_t current_rss_bytes() {
    long pages = 0, resident = 0;
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    const bool ok = std::fscanf(f, "%ld %ld", &pages, &resident) == 2;
    std::fclose(f);
    return ok ? static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE) : 0;
}

int fail(const std::string& msg, int code = 1) {
    std::fprintf(stderr, "glimpse-bench e2e: %s\n", msg.c_str());
    return code;
}

// Bytes a decode step reads from the text model: every tensor once, except the
// token embedding when the model has a separate output matrix (then a decode step
// reads one row of it).
int64_t decode_bytes_per_token(const GgufFile& f) {
    const bool untied = f.find_tensor("output.weight") != nullptr;
    int64_t total = 0;
    for (const GgufTensor& t : f.tensors()) {
        if (untied && t.name == "token_embd.weight") continue;
        total += static_cast<int64_t>(t.nbytes);
    }
    return total;
}

// Kernel chosen per 2-D weight, as Plan::compile would choose it for rows M; under
// Numerics::fast the float matrices are Q8_0 (models/numerics.h).
void count_kernels(const GgufFile& f, int64_t M, int64_t M_projector, std::map<std::string, int>* out,
                   Numerics numerics = Numerics::exact) {
    for (const GgufTensor& t : f.tensors()) {
        if (t.n_dims != 2 || t.name.find("token_embd") == 0 || t.name.find("position_embd") != std::string::npos) {
            continue;
        }
        if (t.name.find("patch_embd") != std::string::npos) continue;
        const int64_t rows = t.name.find("mm.") == 0 ? M_projector : M;
        const bool requantized = numerics == Numerics::fast && t.ne[0] % 32 == 0 &&
                                 (t.type == DType::f16 || t.type == DType::bf16 || t.type == DType::f32);
        const DType type = requantized ? DType::q8_0 : t.type;
        const MatmulKernel* k = select_matmul_kernel(type, rows, t.ne[0], t.ne[1]);
        ++(*out)[k ? k->name : std::string("(none for ") + dtype_name(type) + ")"];
    }
}

// Decoder-layer pruning (issue 24): the stages, what their boundaries cost in the prefill, and
// the KV cache three ways: `table_bytes` worked out here from the stage table alone (the rows
// each segment keeps + the answer, times its layers, K and V), `allocated_bytes` what the
// KvCache allocated (its per-layer capacities, 64-byte aligned buffers), and `used_bytes` the
// slots this run filled (the rows each segment ran in the prefill + the generated tokens).
void write_decoder_pruning(Json& j, const DecoderPruning& dp, const TextHparams& th, DType kv_type, bool kv_mixed,
                           int64_t n_generated, const std::vector<DecoderBoundaryTimes>& repeats) {
    const int64_t row_bytes = kv_cache_row_bytes(kv_type, th.n_head_kv * th.head_dim);
    const DecoderPruneShape& shape = dp.shape();
    j.begin_object("decoder_pruning");
    j.begin_array("stages");
    int64_t rows = shape.prompt_rows, visual = shape.visual_rows, table_bytes = 0;
    int first_layer = 0;
    for (size_t s = 0; s < dp.steps().size(); ++s) {
        const DecoderPruneStep& st = dp.steps()[s];
        j.begin_object("");
        j.value("layer", static_cast<int64_t>(st.layer));
        j.value("keep", st.keep);
        j.value("merged", dp.merged_rows()[s]);
        j.end_object();
        table_bytes += 2 * (rows + shape.answer_rows) * row_bytes * (st.layer + 1 - first_layer);
        first_layer = st.layer + 1;
        rows -= visual - st.keep - dp.merged_rows()[s];
        visual = st.keep + dp.merged_rows()[s];
    }
    j.end_array();
    table_bytes += 2 * (rows + shape.answer_rows) * row_bytes * (th.n_layer - first_layer);
    // Each part's best over the runs (--repeat; one run: that run's).
    DecoderBoundaryTimes t = repeats.empty() ? dp.boundary_times() : repeats.front();
    for (const DecoderBoundaryTimes& r : repeats) {
        t.raters_ms = std::min(t.raters_ms, r.raters_ms);
        t.score_ms = std::min(t.score_ms, r.score_ms);
        t.select_ms = std::min(t.select_ms, r.select_ms);
        t.recycle_ms = std::min(t.recycle_ms, r.recycle_ms);
    }
    j.begin_object("boundary_ms");
    j.value("raters", t.raters_ms);
    j.value("score", t.score_ms);
    j.value("select", t.select_ms);
    j.value("recycle", t.recycle_ms);
    j.value("total", t.total_ms());
    j.value("runs", static_cast<int64_t>(std::max<size_t>(repeats.size(), 1)));
    j.end_object();
    int64_t used_bytes = 0;
    for (size_t s = 0; s < dp.plan().segments.size(); ++s) {
        const DecoderSegment& seg = dp.plan().segments[s];
        const int64_t slots = static_cast<int64_t>(dp.segment_positions()[s].size()) + n_generated;
        used_bytes += 2 * slots * row_bytes * (seg.end_layer - seg.first_layer);
    }
    j.begin_object("kv_cache");
    if (kv_mixed) {  // rows of two precisions: the sums above assume one row size
        j.null("table_bytes");
        j.null("used_bytes");
    } else {
        j.value("table_bytes", table_bytes);
        j.value("used_bytes", used_bytes);
    }
    j.value("allocated_bytes", dp.kv_cache_bytes());
    j.begin_array("capacity_per_layer");
    for (int l = 0; l < dp.plan().kv_cache->n_layers(); ++l) j.value("", dp.plan().kv_cache->capacity(l));
    j.end_array();
    j.end_object();
    j.end_object();
}

void write_counts(Json& j, const std::string& key, const std::map<std::string, int>& m) {
    j.begin_object(key);
    for (const auto& [name, n] : m) j.value(name, static_cast<int64_t>(n));
    j.end_object();
}

}  // namespace

int cmd_e2e(int argc, char** argv) {
    tools::ArgParser a("glimpse-bench e2e", "-m TEXT.gguf --mmproj MMPROJ.gguf --image IMG [-n N] [--threads N]",
                       "Runs the pipeline once: load, image preprocessing, image encoding (timed per chunk), prefill\n"
                       "and greedy decoding of up to N tokens (it stops earlier at an end-of-generation token). JSON\n"
                       "on stdout (schema: tools/bench/README.md), a summary on stderr. Random-weight models come\n"
                       "from `glimpse-mkmodel --preset smolvlm-256m -o PREFIX`; `glimpse-bench mkimage` writes a\n"
                       "1024x768 JPEG.");
    add_common_options(a);
    a.option("-m,--model", "FILE", "text model GGUF");
    a.option("--mmproj", "FILE", "vision projector GGUF");
    a.option("--image", "FILE", "image (JPEG, PNG, ...)");
    a.option("-p,--prompt", "TEXT", "prompt", "Describe this image.");
    a.option("-n,--n-predict", "N", "tokens to generate", "32");
    a.option("--repeat", "N", "run prefill and decoding N times on the one encoded image (1..1000); the report adds\n"
             "each run's prefill ms and decode tok/s and their best (a loaded machine's noise is one-sided)", "1");
    a.option("--kv-type", "TYPE", "KV cache type: f16, f32, q8_0 or q4_0", "f16");
    a.option("--prune", "METHOD", "prune visual tokens after the projector (docs/pruning.md), with --keep");
    a.option("--keep", "F", "with --prune: fraction in (0, 1] of the image's visual tokens kept, or a count > 1");
    a.option("--plan", "FILE", "a pruning plan file instead of --prune/--keep (compact position ids)");
    a.flag("--over-budget", "with a --plan made by glimpse calibrate: run even when this image, prompt and -n plan more "
           "than the plan's budget (with a warning on stderr); without it that is refused (docs/calibration.md)");
    a.option("--max-tiles", "N", "SmolVLM: at most N tiles per image (1..1024; docs/pruning.md, Tile budget)");
    a.option("--numerics", "MODE",
             "vision encoder numerics: exact (the mmproj as stored) or fast (its f16/bf16/f32 matrices quantized "
             "to Q8_0 at load, as glimpse quantize writes them; models/numerics.h)", "exact");
    a.flag("--no-bandwidth", "skip the memory bandwidth measurement (and the decode bound)");
    RunInfo info;
    if (const std::optional<int> exit_code = parse_command_line(a, argc, argv, "glimpse-bench e2e", &info)) {
        return *exit_code;
    }
    if (!a.has("--model") || !a.has("--mmproj") || !a.has("--image")) {
        return fail("-m TEXT.gguf, --mmproj MMPROJ.gguf and --image IMG are required (see --help)", 2);
    }
    int64_t n_predict = 32;
    std::string err;
    if (!a.get_int("--n-predict", &n_predict, &err)) return fail(err, 2);
    if (n_predict < 0 || n_predict > 100000) return fail("--n-predict must be 0..100000", 2);
    VlmConfig cfg;
    cfg.n_threads = info.threads;
    // Compact position ids (--plan's help says so): chunks are encoded one at a time below, so the
    // whole prompt's kept rows, which original ids need, are not there; prefill time does not
    // depend on the ids.
    cfg.original_positions = false;
    const std::string kv = a.get("--kv-type");
    if (kv == "f16") cfg.kv_type = DType::f16;
    else if (kv == "f32") cfg.kv_type = DType::f32;
    else if (kv == "q8_0") cfg.kv_type = DType::q8_0;
    else if (kv == "q4_0") cfg.kv_type = DType::q4_0;
    else return fail("--kv-type must be f16, f32, q8_0 or q4_0", 2);
    if (a.has("--plan") && (a.has("--prune") || a.has("--keep"))) return fail("--plan and --prune/--keep: give one", 2);
    if (a.has("--prune") != a.has("--keep")) return fail("--prune METHOD and --keep F go together", 2);
    if (a.has("--plan")) {
        auto plan = pruning_plan_read_file(a.get("--plan"));
        if (!plan.is_ok()) return fail(plan.status().message(), 2);
        cfg.pruning = std::move(*plan);
    } else if (a.has("--prune")) {
        double keep = 0;
        if (!a.get_float("--keep", &keep, &err)) return fail(err, 2);
        auto plan = pruning_plan_from_shorthand(a.get("--prune"), keep);
        if (!plan.is_ok()) return fail(plan.status().message(), 2);
        cfg.pruning = std::move(*plan);
    }
    if (a.has("--max-tiles")) {
        int64_t max_tiles = 0;
        if (!a.get_int("--max-tiles", 1, 1024, &max_tiles, &err)) return fail(err, 2);
        cfg.max_tiles = static_cast<int>(max_tiles);
    }
    auto numerics = parse_numerics(a.get("--numerics"));
    if (!numerics.is_ok()) return fail(numerics.status().message(), 2);
    cfg.numerics = *numerics;

    double t0 = now_ms();
    auto vlm_r = Vlm::load(a.get("--model"), a.get("--mmproj"), cfg);
    if (!vlm_r.is_ok()) return fail(vlm_r.status().message());
    Vlm& vlm = **vlm_r;
    const double load_ms = now_ms() - t0;

    t0 = now_ms();
    auto img = image_decode_file(a.get("--image"));
    if (!img.is_ok()) return fail(img.status().message());
    const double image_decode_ms = now_ms() - t0;
    std::vector<ImageU8> images;
    images.push_back(std::move(*img));
    t0 = now_ms();
    auto prompt_r = vlm.build_prompt(a.get("--prompt"), images);
    if (!prompt_r.is_ok()) return fail(prompt_r.status().message());
    const VlmPrompt& prompt = *prompt_r;
    const double preprocess_ms = now_ms() - t0;
    // Encoder passes build_prompt ran (HiRED's split scores each overview there) and their time.
    const int64_t prompt_passes = vlm.encoder_passes();
    const double prompt_encoder_ms = vlm.encoder_ms();

    // Image encoding, one chunk at a time (the first includes compiling the vision plan).
    std::vector<double> chunk_ms;
    std::vector<float> embeddings;
    double compile_vision_ms = 0;
    GenerationStats encode_stats;  // prune_ms: the pruning stage's share of the timed encodes
    int64_t timed_passes = 0;      // encoder passes of the timed encodes (a reused overview runs none)
    double timed_encoder_ms = 0;
    for (size_t c = 0; c < prompt.chunks.size(); ++c) {
        VlmPrompt one = prompt;
        one.chunks = {prompt.chunks[c]};
        if (c == 0) {
            // Compile the plan (and pack weights) outside the per-chunk timing.
            t0 = now_ms();
            auto warm = vlm.encode_images(one, nullptr);
            if (!warm.is_ok()) return fail(warm.status().message());
            compile_vision_ms = now_ms() - t0;
            std::fprintf(stderr, "warm-up: vision plan compiled and chunk 1 encoded once in %.0f ms\n", compile_vision_ms);
        }
        const int64_t passes_before = vlm.encoder_passes();
        const double encoder_ms_before = vlm.encoder_ms();
        t0 = now_ms();
        auto e = vlm.encode_images(one, &encode_stats);
        if (!e.is_ok()) return fail(e.status().message());
        chunk_ms.push_back(now_ms() - t0);
        timed_passes += vlm.encoder_passes() - passes_before;
        timed_encoder_ms += vlm.encoder_ms() - encoder_ms_before;
        // One line per chunk as it ends: progress on slow boards, and the marks that
        // tools/qemu_icount/encode_icount.py counts instructions between.
        std::fprintf(stderr, "encoded chunk %zu/%zu in %.1f ms\n", c + 1, prompt.chunks.size(), chunk_ms.back());
        embeddings.insert(embeddings.end(), e->begin(), e->end());
    }
    double encode_total = 0;
    for (double v : chunk_ms) encode_total += v;

    // Plans for this prompt (compiling and packing the decoder is load work, not prefill).
    t0 = now_ms();
    if (Status s = vlm.prepare(prompt, static_cast<int>(n_predict)); !s.is_ok()) return fail(s.message());
    const double compile_text_ms = now_ms() - t0;
    {
        // A calibrated plan's budget holds for its geometry and lengths (models/calibration_budget.h).
        BudgetRequest request;
        request.image_sizes = {{images[0].width, images[0].height}};
        request.n_predict = static_cast<int>(n_predict);
        std::string warning;
        if (Status s = check_calibrated_budget(vlm, prompt, request, a.has("--over-budget"), &warning); !s.is_ok()) {
            return fail(s.message());
        }
        if (!warning.empty()) std::fprintf(stderr, "glimpse-bench e2e: %s\n", warning.c_str());
    }

    SamplingParams sp;
    sp.temperature = 0;  // greedy: deterministic
    int64_t repeat = 1;
    if (!a.get_int("--repeat", 1, 1000, &repeat, &err)) return fail(err, 2);
    GenerationStats st;  // the first run's (every field below but the repeat_* ones)
    std::vector<double> repeat_prefill_ms, repeat_decode_tps;
    std::vector<DecoderBoundaryTimes> repeat_boundary;
    for (int64_t r = 0; r < repeat; ++r) {
        GenerationStats one;
        std::string text;
        Status s = vlm.generate(prompt, static_cast<int>(n_predict), sp,
                                [&](std::string_view bytes) { text.append(bytes.data(), bytes.size()); return true; },
                                &one, &embeddings);
        if (!s.is_ok()) return fail(s.message());
        if (r == 0) st = one;
        repeat_prefill_ms.push_back(one.prefill_ms);
        repeat_decode_tps.push_back(one.decode_ms > 0 ? 1000.0 * static_cast<double>(one.n_generated) / one.decode_ms : 0);
        if (const DecoderPruning* dp = vlm.decoder_pruning()) repeat_boundary.push_back(dp->boundary_times());
    }
    const int64_t rss = peak_rss_bytes();
    const int64_t rss_now = current_rss_bytes();
    const VlmMemory mem = vlm.memory();

    // After the pipeline's peak RSS is read: the bandwidth arrays (3 x 2 x the last-level cache,
    // 2.8 GiB on a 480 MiB-L3 Xeon) would otherwise be that peak. The model's own thread pool
    // stays alive (vlm is read below) but takes no CPU from the measurement: idle workers spin
    // for 100 us and then sleep on a futex (runtime/threadpool.cpp, kSpinTime).
    Bandwidth bw;
    if (!a.has("--no-bandwidth")) {
        ThreadPool pool(info.threads);
        bw = measure_bandwidth(&pool, std::max<int64_t>(2 * last_level_cache_bytes(), int64_t{64} << 20), 5);
    }

    auto text_file = GgufFile::open(a.get("--model"));
    auto mmproj_file = GgufFile::open(a.get("--mmproj"));
    if (!text_file.is_ok()) return fail(text_file.status().message());
    if (!mmproj_file.is_ok()) return fail(mmproj_file.status().message());
    const int64_t bytes_per_token = decode_bytes_per_token(**text_file);
    std::map<std::string, int> text_kernels, vision_kernels;
    count_kernels(**text_file, prompt.n_positions(), prompt.n_positions(), &text_kernels);
    count_kernels(**mmproj_file, vlm.vision().hparams().n_patches(), vlm.vision().hparams().n_tokens_per_chunk(),
                  &vision_kernels, cfg.numerics);

    const double decode_tps = st.decode_ms > 0 ? 1000.0 * static_cast<double>(st.n_generated) / st.decode_ms : 0;
    const double prefill_tps = st.prefill_ms > 0 ? 1000.0 * static_cast<double>(st.n_prompt) / st.prefill_ms : 0;
    const double bound_tps = bw.read_gbs > 0 ? bw.read_gbs * 1e9 / static_cast<double>(bytes_per_token) : 0;
    std::vector<double> sorted = chunk_ms;
    const Stats cs = stats_of(sorted);

    Json j;
    j.begin_object();
    write_header(j, "e2e", info);
    if (bw.read_gbs > 0) write_bandwidth(j, bw);
    else j.null("memory_bandwidth");
    j.begin_object("model");
    j.value("text", a.get("--model"));
    j.value("mmproj", a.get("--mmproj"));
    j.value("text_file_bytes", static_cast<int64_t>((*text_file)->file_size()));
    j.value("mmproj_file_bytes", static_cast<int64_t>((*mmproj_file)->file_size()));
    j.value("kv_type", kv);
    j.value("numerics", numerics_name(cfg.numerics));
    j.value("requantized_matrices", vlm.vision().requantized_matrices());
    j.value("requantized_bytes", vlm.vision().requantized_bytes());
    j.value("requantized_resident_bytes", vlm.vision().requantized_resident_bytes());
    j.end_object();
    j.begin_object("image");
    j.value("path", a.get("--image"));
    j.value("width", static_cast<int64_t>(images[0].width));
    j.value("height", static_cast<int64_t>(images[0].height));
    j.end_object();
    j.begin_object("prompt");
    j.value("positions", prompt.n_positions());
    j.value("image_tokens", prompt.n_image_tokens());
    j.value("image_tokens_in", prompt.n_image_tokens_in());
    if (const PruneStage* ps = vlm.pruning_stage()) {
        j.value("pruning", ps->method);
    } else {
        j.null("pruning");
    }
    j.value("chunks", static_cast<int64_t>(prompt.chunks.size()));
    // Visual rows each decoder layer processed in the prefill, averaged over the layers.
    j.value("visual_tokens_per_decoder_layer", st.decoder_layers > 0 ? static_cast<double>(st.visual_rows_layer_sum) /
                                                                           static_cast<double>(st.decoder_layers)
                                                                     : 0.0);
    j.value("max_tiles", static_cast<int64_t>(vlm.max_tiles()));  // 0: the model's own tiling
    j.end_object();
    j.begin_object("timings_ms");
    j.value("load", load_ms);
    j.value("image_decode", image_decode_ms);
    j.value("preprocess", preprocess_ms);
    j.value("compile_vision", compile_vision_ms);
    j.value("encode", encode_total);
    j.value("compile_text", compile_text_ms);
    j.value("prefill", st.prefill_ms);
    j.value("decode", st.decode_ms);
    j.end_object();
    j.begin_object("encode");
    j.value("chunks", static_cast<int64_t>(chunk_ms.size()));
    // Encoder passes for the image (the warm-up's not counted): build_prompt's (HiRED's overview
    // scoring) and the timed chunks', and the time inside those passes.
    j.value("passes", prompt_passes + timed_passes);
    j.value("prompt_passes", prompt_passes);
    j.value("passes_ms", prompt_encoder_ms + timed_encoder_ms);
    // Of the timed encodes: the pruning stage's scores, selection, gather and merge, all chunks.
    j.value("prune_ms", encode_stats.prune_ms);
    j.begin_array("per_chunk_ms");
    for (double v : chunk_ms) j.value("", v);
    j.end_array();
    j.value("median_chunk_ms", cs.median);
    j.value("min_chunk_ms", cs.min);
    j.value("max_chunk_ms", cs.max);
    j.end_object();
    j.begin_object("prefill");
    j.value("tokens", st.n_prompt);
    j.value("ms", st.prefill_ms);
    j.value("tokens_per_s", prefill_tps);
    j.begin_array("repeat_ms");
    for (double v : repeat_prefill_ms) j.value("", v);
    j.end_array();
    j.value("min_ms", *std::min_element(repeat_prefill_ms.begin(), repeat_prefill_ms.end()));
    j.end_object();
    j.begin_object("decode");
    j.value("tokens", st.n_generated);
    j.value("ms", st.decode_ms);
    j.value("tokens_per_s", decode_tps);
    j.begin_array("repeat_tokens_per_s");
    for (double v : repeat_decode_tps) j.value("", v);
    j.end_array();
    j.value("max_tokens_per_s", *std::max_element(repeat_decode_tps.begin(), repeat_decode_tps.end()));
    j.value("stopped_at_eog", st.stopped_at_eog);
    j.value("bytes_per_token", bytes_per_token);
    if (bound_tps > 0) {
        j.value("bandwidth_bound_tokens_per_s", bound_tps);
        j.value("fraction_of_bound", decode_tps / bound_tps);
    }
    j.end_object();
    j.begin_object("memory");
    j.begin_object("planned");
    j.value("weights", mem.weights);
    j.value("file_weights", mem.file_weights);
    j.value("vision_arena", mem.vision_arena);
    j.value("text_arena", mem.text_arena);
    j.value("kv_cache", mem.kv_cache);
    j.value("image_buffers", mem.image_buffers);
    j.value("total", mem.total());
    j.end_object();
    j.value("peak_rss_bytes", rss);
    j.value("rss_after_generate_bytes", rss_now);
    j.end_object();
    if (const DecoderPruning* dp = vlm.decoder_pruning(); dp && !dp->steps().empty()) {
        write_decoder_pruning(j, *dp, vlm.text().hparams(), vlm.kv_type(), dp->plan().kv_cache->mixed(), st.n_generated,
                              repeat_boundary);
    } else {
        j.null("decoder_pruning");
    }
    j.begin_object("kernels");
    write_counts(j, "vision", vision_kernels);
    write_counts(j, "text", text_kernels);
    j.end_object();
    j.end_object();
    std::fputs(j.str().c_str(), stdout);

    auto mib = [](int64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
    std::fprintf(stderr, "load %.0f ms | preprocess %.0f ms | encode %zu chunks: median %.1f ms (min %.1f, max %.1f), "
                 "total %.0f ms (+%.0f ms compile)\n",
                 load_ms, image_decode_ms + preprocess_ms, chunk_ms.size(), cs.median, cs.min, cs.max, encode_total,
                 compile_vision_ms);
    std::fprintf(stderr, "prefill %lld tokens: %.0f ms (%.1f tok/s) | decode %lld tokens: %.1f tok/s",
                 static_cast<long long>(st.n_prompt), st.prefill_ms, prefill_tps,
                 static_cast<long long>(st.n_generated), decode_tps);
    if (bound_tps > 0) std::fprintf(stderr, " (bandwidth bound %.1f tok/s at %.1f GB/s)", bound_tps, bw.read_gbs);
    std::fprintf(stderr, "\nmemory planned %.1f MiB, peak RSS %.1f MiB, threads %d\n", mib(mem.total()), mib(rss),
                 vlm.n_threads());
    for (const auto& [name, n] : vision_kernels) std::fprintf(stderr, "  vision %3d x %s\n", n, name.c_str());
    for (const auto& [name, n] : text_kernels) std::fprintf(stderr, "  text   %3d x %s\n", n, name.c_str());
    return 0;
}

}  // namespace glimpse::bench
