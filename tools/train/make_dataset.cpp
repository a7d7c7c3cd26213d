// glimpse-traindata: training data for the bundled tiny VLMs, made with glimpse's own code so
// that training sees exactly what glimpse (and llama.cpp) feed the model at inference.
//
//   glimpse-traindata corpus --seeds FROM:TO --out FILE [--preset bundled] [--qa-per-image N]
//       One JSON line per scene: {"seed":S,"caption":"...","qa":[["question","answer","kind"],...]}.
//       The text the tokenizer is trained on (tools/train/tokenizer.py).
//
//   glimpse-traindata build --layout smolvlm|llava --vocab VOCAB.gguf --seeds FROM:TO --out DIR
//       [--preset bundled] [--qa-per-image N] [--tile S] [--longest-edge L] [--tokens-per-chunk N]
//       [--mean R,G,B] [--std R,G,B] [--chat-template NAME] [--caption-prompt TEXT] [--threads N]
//       Renders every scene (glimpse_scenes), preprocesses it with glimpse's
//       idefics3_preprocess / llava_preprocess and tokenizes the prompt with glimpse's
//       Tokenizer and ChatTemplate laid out by the rules of Vlm::build_prompt. Writes:
//         DIR/tiles.u8      every image chunk, (3, S, S) planar uint8, back to back
//         DIR/images.i64    per scene, kImageFields int64 (see ImageRecord)
//         DIR/branches.i64  per question (and the caption), kBranchFields int64 (see BranchRecord)
//         DIR/tokens.i32    token ids: each scene's prompt prefix (-1 = image embedding), then
//                           each branch: prompt suffix, answer ids, end-of-generation id
//         DIR/labels.i16    per scene, kLabelFields int16: image-level targets for pretraining
//         DIR/patch_labels.u64  per chunk, (S/P)^2 label words, patches row-major: what each
//                           patch shows (objects, text, the glyph and object centers; the bit
//                           layout is in patch_labels.h, checked by tests/test_patch_labels.cpp)
//         DIR/meta.json     the settings above, counts and the label layout
//   Tiles are stored as uint8: the tool checks that normalizing the stored bytes reproduces
//   glimpse's float tiles bit for bit ((u/255 - mean)/std in f32), so nothing is lost.
//
// The prompt of one question is prefix + suffix: the prefix (chat template up to the media
// marker, then the image block) does not depend on the question, so a scene's questions share
// it; the training script packs them as branches of one sequence (tools/train/README.md).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "models/chat_template.h"
#include "models/image_preprocess.h"
#include "models/tokenizer.h"
#include "runtime/gguf.h"
#include "tools/common/args.h"
#include "tools/scenes/scene.h"
#include "tools/train/patch_labels.h"

using namespace glimpse;
using namespace glimpse::tools;
using namespace glimpse::scenes;

namespace {

constexpr int kImageFields = 12;
constexpr int kBranchFields = 5;
// presence of each color×shape (color-major), count per shape, count per color, has text,
// number of objects, text length, how often each character of kTextAlphabet is written, then
// the written string in order: per slot 1 + index in kTextAlphabet, 0 past its end.
constexpr int kLabelFields =
    kColorCount * kShapeCount + kShapeCount + kColorCount + 3 + static_cast<int>(kTextAlphabet.size()) + kMaxTextChars;
constexpr int kCaptionKind = kQaKindCount;  // branch kind of the caption (QA kinds are 0..4)

int fail(const std::string& msg, int code = 1) {
    std::fprintf(stderr, "glimpse-traindata: %s\n", msg.c_str());
    return code;
}

bool parse_seeds(const std::string& text, uint64_t* from, uint64_t* to) {
    const size_t colon = text.find(':');
    if (colon == std::string::npos) return false;
    try {
        *from = std::stoull(text.substr(0, colon));
        *to = std::stoull(text.substr(colon + 1));
    } catch (...) {
        return false;
    }
    return *to > *from;
}

bool parse_triple(const std::string& text, std::array<float, 3>* out) {
    float v[3];
    if (std::sscanf(text.c_str(), "%f,%f,%f", &v[0], &v[1], &v[2]) != 3) return false;
    for (int i = 0; i < 3; ++i) (*out)[i] = v[i];
    return true;
}

std::string json_floats(const std::array<float, 3>& v) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "[%.9g, %.9g, %.9g]", v[0], v[1], v[2]);
    return buf;
}

struct Settings {
    bool idefics3 = true;
    int patch = 10;
    int tile = 80;
    int longest_edge = 160;
    int tokens_per_chunk = 16;
    std::array<float, 3> mean{0.5f, 0.5f, 0.5f};
    std::array<float, 3> std{0.5f, 0.5f, 0.5f};
    std::string caption_prompt = "Describe this image.";
    SceneOptions scene;
    int qa_per_image = 6;
};

// One scene's data, built by a worker and written in seed order.
struct Example {
    uint64_t seed = 0;
    int width = 0, height = 0;
    int n_chunks = 0, grid_rows = 0, grid_cols = 0;
    std::vector<uint8_t> tiles;            // n_chunks × 3·S·S
    std::vector<int32_t> prefix;
    struct Branch {
        std::vector<int32_t> ids;          // suffix prompt ids, answer ids, eog id
        int n_prompt = 0;                  // suffix prompt length
        int kind = 0;                      // QaKind or kCaptionKind
        int n_answer = 0;                  // answer ids incl. the eog id
    };
    std::vector<Branch> branches;
    std::vector<int16_t> labels;
    std::vector<uint64_t> patch_labels;    // n_chunks × (S/P)²
    Status status;
};

// The prompt of `user_text` about one image, split into the question-independent prefix and
// the suffix, laid out exactly as Vlm::build_prompt does (tests/test_trained_models.cpp checks
// the result against Vlm::build_prompt on the bundled models).
Status build_prompt_parts(const Tokenizer& tok, const ChatTemplate& tmpl, const Settings& s, std::string_view user_text,
                          const PreprocessedImage& pre, std::vector<int32_t>* prefix, std::vector<int32_t>* suffix) {
    std::string user = std::string(kMediaMarker) + std::string(user_text);
    const std::string rendered = tmpl.format_user_turn(user);
    const size_t at = rendered.find(kMediaMarker);
    GLIMPSE_CHECK_OR_RETURN(at != std::string::npos, internal, "the chat template dropped the media marker");
    std::vector<int32_t>& p = *prefix;
    p.clear();
    auto add_text = [&](std::vector<int32_t>& out, std::string_view text) {
        std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false, /*parse_special=*/true);
        out.insert(out.end(), ids.begin(), ids.end());
    };
    auto add_token = [&](std::string_view piece) -> Status {
        const int32_t id = tok.find_token(piece);
        GLIMPSE_CHECK_OR_RETURN(id >= 0, invalid_argument, "the vocabulary has no token '%.*s'",
                                static_cast<int>(piece.size()), piece.data());
        p.push_back(id);
        return Status::ok();
    };
    auto add_chunk = [&]() { p.insert(p.end(), static_cast<size_t>(s.tokens_per_chunk), -1); };
    if (tok.add_bos()) p.push_back(tok.bos());
    add_text(p, std::string_view(rendered).substr(0, at));
    if (s.idefics3) {
        for (int r = 0; r < pre.grid_rows; ++r) {
            for (int c = 0; c < pre.grid_cols; ++c) {
                add_text(p, "<fake_token_around_image><row_" + std::to_string(r + 1) + "_col_" + std::to_string(c + 1) +
                                ">");
                add_chunk();
            }
            if (r + 1 < pre.grid_rows) GLIMPSE_RETURN_IF_ERROR(add_token("\n"));
        }
        GLIMPSE_RETURN_IF_ERROR(add_token("\n\n"));
        GLIMPSE_RETURN_IF_ERROR(add_token("<fake_token_around_image>"));
        GLIMPSE_RETURN_IF_ERROR(add_token("<global-img>"));
        add_chunk();
        GLIMPSE_RETURN_IF_ERROR(add_token("<fake_token_around_image>"));
    } else {
        add_chunk();
    }
    suffix->clear();
    add_text(*suffix, std::string_view(rendered).substr(at + kMediaMarker.size()));
    if (tok.add_eos()) suffix->push_back(tok.eos());
    return Status::ok();
}

// Float tiles -> bytes, checking that (u/255 - mean)/std reproduces every float exactly.
Status tiles_to_u8(const PreprocessedImage& pre, const Settings& s, std::vector<uint8_t>* out) {
    const size_t plane = static_cast<size_t>(pre.tile_size) * pre.tile_size;
    out->resize(static_cast<size_t>(pre.n_chunks) * 3 * plane);
    for (int k = 0; k < pre.n_chunks; ++k) {
        const float* src = pre.chunk(k);
        uint8_t* dst = out->data() + static_cast<size_t>(k) * 3 * plane;
        for (int c = 0; c < 3; ++c) {
            for (size_t i = 0; i < plane; ++i) {
                const float f = src[c * plane + i];
                const long u = std::lround((f * s.std[c] + s.mean[c]) * 255.0f);
                GLIMPSE_CHECK_OR_RETURN(u >= 0 && u <= 255, internal, "tile value %g is not an 8-bit pixel", f);
                const float back = (static_cast<float>(u) / 255.0f - s.mean[c]) / s.std[c];
                GLIMPSE_CHECK_OR_RETURN(std::memcmp(&back, &f, sizeof f) == 0, internal,
                                        "tile value %.9g does not round-trip through 8 bits (%ld -> %.9g)", f, u, back);
                dst[c * plane + i] = static_cast<uint8_t>(u);
            }
        }
    }
    return Status::ok();
}

std::vector<int16_t> scene_labels(const Scene& scene) {
    std::vector<int16_t> l(kLabelFields, 0);
    for (const SceneObject& o : scene.objects) {
        l[static_cast<int>(o.color) * kShapeCount + static_cast<int>(o.shape)] = 1;
        l[kColorCount * kShapeCount + static_cast<int>(o.shape)] += 1;
        l[kColorCount * kShapeCount + kShapeCount + static_cast<int>(o.color)] += 1;
    }
    const int base = kColorCount * kShapeCount + kShapeCount + kColorCount;
    l[base] = scene.text ? 1 : 0;
    l[base + 1] = static_cast<int16_t>(scene.objects.size());
    l[base + 2] = scene.text ? static_cast<int16_t>(scene.text->chars.size()) : 0;
    if (scene.text) {
        for (char c : scene.text->chars) {
            const size_t k = kTextAlphabet.find(c);
            if (k != std::string_view::npos) l[base + 3 + k] += 1;
        }
        const int slots = base + 3 + static_cast<int>(kTextAlphabet.size());
        for (size_t i = 0; i < scene.text->chars.size() && i < static_cast<size_t>(kMaxTextChars); ++i) {
            const size_t k = kTextAlphabet.find(scene.text->chars[i]);
            if (k != std::string_view::npos) l[slots + i] = static_cast<int16_t>(1 + k);
        }
    }
    return l;
}

Example make_example(uint64_t seed, const Settings& s, const Tokenizer& tok, const ChatTemplate& tmpl) {
    Example ex;
    ex.seed = seed;
    Scene scene = scene_generate(seed, s.scene);
    ex.width = scene.image.width;
    ex.height = scene.image.height;
    ImageU8 image;
    image.width = scene.image.width;
    image.height = scene.image.height;
    image.rgb = scene.image.rgb;

    auto preprocess = [&]() -> Result<PreprocessedImage> {
        if (s.idefics3) {
            Idefics3Params p;
            p.tile_size = s.tile;
            p.longest_edge = s.longest_edge;
            p.mean = s.mean;
            p.std = s.std;
            return idefics3_preprocess(image, p);
        }
        LlavaParams p;
        p.image_size = s.tile;
        p.mean = s.mean;
        p.std = s.std;
        return llava_preprocess(image, p);
    };
    Result<PreprocessedImage> pre = preprocess();
    if (!pre.is_ok()) {
        ex.status = pre.status();
        return ex;
    }
    ex.n_chunks = pre->n_chunks;
    ex.grid_rows = pre->grid_rows;
    ex.grid_cols = pre->grid_cols;
    ex.status = tiles_to_u8(*pre, s, &ex.tiles);
    if (!ex.status.is_ok()) return ex;

    struct Item {
        std::string prompt, answer;
        int kind;
    };
    std::vector<Item> items;
    items.push_back({s.caption_prompt, scene.caption, kCaptionKind});
    for (const QaPair& qa : scene.qa) items.push_back({qa.question, qa.answer, static_cast<int>(qa.kind)});
    const int32_t eog = tok.eos();
    for (const Item& it : items) {
        std::vector<int32_t> prefix, suffix;
        ex.status = build_prompt_parts(tok, tmpl, s, it.prompt, *pre, &prefix, &suffix);
        if (!ex.status.is_ok()) return ex;
        if (ex.prefix.empty()) {
            ex.prefix = prefix;
        } else if (prefix != ex.prefix) {
            ex.status = Status::error(StatusCode::internal, "the prompt prefix depends on the question");
            return ex;
        }
        Example::Branch b;
        b.kind = it.kind;
        b.n_prompt = static_cast<int>(suffix.size());
        b.ids = suffix;
        // The answer as the model generates it after "Assistant:" / "ASSISTANT:": a space,
        // the words, then the end-of-generation token.
        std::vector<int32_t> answer = tok.encode(" " + it.answer, /*add_special=*/false, /*parse_special=*/false);
        answer.push_back(eog);
        b.n_answer = static_cast<int>(answer.size());
        b.ids.insert(b.ids.end(), answer.begin(), answer.end());
        ex.branches.push_back(std::move(b));
    }
    ex.labels = scene_labels(scene);
    traindata::PatchGrid grid;
    grid.idefics3 = s.idefics3;
    grid.tile = s.tile;
    grid.patch = s.patch;
    grid.longest_edge = s.longest_edge;
    Result<std::vector<uint64_t>> words = traindata::scene_patch_labels(scene, grid);
    if (!words.is_ok()) {
        ex.status = words.status();
        return ex;
    }
    if (words->size() != static_cast<size_t>(pre->n_chunks) * (s.tile / s.patch) * (s.tile / s.patch)) {
        ex.status = Status::error(StatusCode::internal, "patch-label geometry disagrees with preprocessing");
        return ex;
    }
    ex.patch_labels = std::move(*words);
    return ex;
}

template <class T>
bool write_all(std::FILE* f, const std::vector<T>& v) {
    return v.empty() || std::fwrite(v.data(), sizeof(T), v.size(), f) == v.size();
}

int cmd_corpus(int argc, char** argv) {
    ArgParser a("glimpse-traindata corpus", "--seeds FROM:TO --out FILE [options]",
                "Writes the captions and question-answer pairs of scenes as JSON lines (tokenizer training text).");
    a.option("--seeds", "FROM:TO", "seed range, half-open");
    a.option("--out", "FILE", "output JSONL file");
    a.option("--preset", "NAME", "scene distribution (default, bundled)", "bundled");
    a.option("--qa-per-image", "N", "question-answer pairs per scene", "6");
    if (const std::optional<int> exit_code = a.parse_or_exit_code(argc, argv)) return *exit_code;
    std::string err;
    uint64_t from = 0, to = 0;
    if (!parse_seeds(a.get("--seeds"), &from, &to)) return fail("--seeds FROM:TO is required (FROM < TO)", 2);
    if (a.get("--out").empty()) return fail("--out FILE is required", 2);
    Result<SceneOptions> opts = scene_preset(a.get("--preset"));
    if (!opts.is_ok()) return fail(opts.status().message(), 2);
    int64_t qa = 6;
    if (!a.get_int("--qa-per-image", &qa, &err) || qa < 0 || qa > 256) return fail("--qa-per-image must be 0..256", 2);
    opts->qa_per_scene = static_cast<int>(qa);
    std::FILE* f = std::fopen(a.get("--out").c_str(), "wb");
    if (!f) return fail(a.get("--out") + ": cannot open for writing");
    for (uint64_t seed = from; seed < to; ++seed) {
        const Scene scene = scene_generate(seed, *opts);
        std::string line = "{\"seed\":" + std::to_string(seed) + ",\"caption\":" + json_quote(scene.caption) + ",\"qa\":[";
        for (size_t i = 0; i < scene.qa.size(); ++i) {
            if (i) line += ",";
            line += "[" + json_quote(scene.qa[i].question) + "," + json_quote(scene.qa[i].answer) + "," +
                    json_quote(qa_kind_name(scene.qa[i].kind)) + "]";
        }
        line += "]}\n";
        std::fwrite(line.data(), 1, line.size(), f);
    }
    if (std::fclose(f) != 0) return fail(a.get("--out") + ": write failed");
    return 0;
}

int cmd_build(int argc, char** argv) {
    ArgParser a("glimpse-traindata build", "--layout smolvlm|llava --vocab VOCAB.gguf --seeds FROM:TO --out DIR",
                "Renders, preprocesses and tokenizes scenes into training shards (see the file header).");
    a.option("--layout", "NAME", "smolvlm (idefics3 tiles) or llava (one padded image)");
    a.option("--vocab", "FILE", "GGUF with the tokenizer (and chat template) of the model");
    a.option("--chat-template", "NAME", "chat template name, overriding the vocabulary's");
    a.option("--seeds", "FROM:TO", "seed range, half-open");
    a.option("--out", "DIR", "output directory");
    a.option("--preset", "NAME", "scene distribution (default, bundled)", "bundled");
    a.option("--qa-per-image", "N", "question-answer pairs per scene (plus one caption)", "6");
    a.option("--tile", "S", "tile size (smolvlm) or image size (llava) in pixels", "80");
    a.option("--longest-edge", "L", "smolvlm: longest edge of the tiled canvas", "160");
    a.option("--tokens-per-chunk", "N", "image embeddings per chunk (tile, overview or llava image)", "16");
    a.option("--patch", "P", "vision patch size (for the per-patch labels)", "10");
    a.option("--mean", "R,G,B", "normalization mean", "0.5,0.5,0.5");
    a.option("--std", "R,G,B", "normalization std", "0.5,0.5,0.5");
    a.option("--caption-prompt", "TEXT", "prompt of the caption branch", "Describe this image.");
    a.option("--threads", "N", "worker threads (default: every core)", "0");
    if (const std::optional<int> exit_code = a.parse_or_exit_code(argc, argv)) return *exit_code;
    std::string err;
    Settings s;
    const std::string layout = a.get("--layout");
    if (layout != "smolvlm" && layout != "llava") return fail("--layout must be smolvlm or llava", 2);
    s.idefics3 = layout == "smolvlm";
    uint64_t from = 0, to = 0;
    if (!parse_seeds(a.get("--seeds"), &from, &to)) return fail("--seeds FROM:TO is required (FROM < TO)", 2);
    const std::string out_dir = a.get("--out");
    if (out_dir.empty() || a.get("--vocab").empty()) return fail("--out DIR and --vocab FILE are required", 2);
    Result<SceneOptions> opts = scene_preset(a.get("--preset"));
    if (!opts.is_ok()) return fail(opts.status().message(), 2);
    s.scene = *opts;
    int64_t qa = 6, tile = 0, longest = 0, tpc = 0, threads = 0, patch = 0;
    if (!a.get_int("--qa-per-image", &qa, &err) || !a.get_int("--tile", &tile, &err) ||
        !a.get_int("--longest-edge", &longest, &err) || !a.get_int("--tokens-per-chunk", &tpc, &err) ||
        !a.get_int("--threads", &threads, &err) || !a.get_int("--patch", &patch, &err))
        return fail(err, 2);
    if (qa < 0 || qa > 256 || tile < 8 || tile > 2048 || longest < 0 || tpc < 1 || threads < 0 || patch < 1 ||
        tile % patch != 0)
        return fail("option out of range", 2);
    s.scene.qa_per_scene = static_cast<int>(qa);
    s.qa_per_image = static_cast<int>(qa);
    s.tile = static_cast<int>(tile);
    s.longest_edge = static_cast<int>(longest);
    s.tokens_per_chunk = static_cast<int>(tpc);
    s.patch = static_cast<int>(patch);
    if (!parse_triple(a.get("--mean"), &s.mean) || !parse_triple(a.get("--std"), &s.std))
        return fail("--mean/--std: expected three comma-separated numbers", 2);
    s.caption_prompt = a.get("--caption-prompt");
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());

    Result<std::unique_ptr<GgufFile>> vocab_file = GgufFile::open(a.get("--vocab"));
    if (!vocab_file.is_ok()) return fail(vocab_file.status().message());
    Result<Tokenizer> tok = Tokenizer::from_gguf(**vocab_file);
    if (!tok.is_ok()) return fail(tok.status().message());
    Result<ChatTemplate> tmpl = ChatTemplate::for_model(**vocab_file, a.get("--chat-template"));
    if (!tmpl.is_ok()) return fail(tmpl.status().message());

    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) return fail(out_dir + ": cannot create directory");
    const std::filesystem::path dir(out_dir);
    std::FILE* f_tiles = std::fopen((dir / "tiles.u8").c_str(), "wb");
    std::FILE* f_images = std::fopen((dir / "images.i64").c_str(), "wb");
    std::FILE* f_branches = std::fopen((dir / "branches.i64").c_str(), "wb");
    std::FILE* f_tokens = std::fopen((dir / "tokens.i32").c_str(), "wb");
    std::FILE* f_labels = std::fopen((dir / "labels.i16").c_str(), "wb");
    std::FILE* f_patch = std::fopen((dir / "patch_labels.u64").c_str(), "wb");
    if (!f_tiles || !f_images || !f_branches || !f_tokens || !f_labels || !f_patch)
        return fail(out_dir + ": cannot open outputs");

    int64_t n_chunks_total = 0, n_tokens_total = 0, n_branches_total = 0, max_chunks = 0;
    int64_t max_seq = 0;
    const uint64_t block = 256;
    for (uint64_t b0 = from; b0 < to; b0 += block) {
        const uint64_t b1 = std::min(to, b0 + block);
        std::vector<Example> batch(b1 - b0);
        std::atomic<uint64_t> next{b0};
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&] {
                for (uint64_t seed = next.fetch_add(1); seed < b1; seed = next.fetch_add(1))
                    batch[seed - b0] = make_example(seed, s, *tok, *tmpl);
            });
        }
        for (std::thread& t : workers) t.join();
        for (Example& ex : batch) {
            if (!ex.status.is_ok())
                return fail("seed " + std::to_string(ex.seed) + ": " + ex.status.message());
            // ImageRecord: seed, width, height, chunk offset, chunks, grid rows, grid cols,
            // prefix token offset, prefix length, first branch, branches, packed length.
            int64_t packed = static_cast<int64_t>(ex.prefix.size());
            for (const Example::Branch& br : ex.branches) packed += static_cast<int64_t>(br.ids.size());
            const int64_t rec[kImageFields] = {static_cast<int64_t>(ex.seed), ex.width, ex.height, n_chunks_total,
                                               ex.n_chunks, ex.grid_rows, ex.grid_cols, n_tokens_total,
                                               static_cast<int64_t>(ex.prefix.size()), n_branches_total,
                                               static_cast<int64_t>(ex.branches.size()), packed};
            std::fwrite(rec, sizeof rec, 1, f_images);
            if (!write_all(f_tiles, ex.tiles) || !write_all(f_tokens, ex.prefix) || !write_all(f_labels, ex.labels) ||
                !write_all(f_patch, ex.patch_labels))
                return fail(out_dir + ": write failed");
            n_tokens_total += static_cast<int64_t>(ex.prefix.size());
            for (const Example::Branch& br : ex.branches) {
                // BranchRecord: token offset, length, prompt-suffix length, answer length, kind.
                const int64_t brec[kBranchFields] = {n_tokens_total, static_cast<int64_t>(br.ids.size()), br.n_prompt,
                                                     br.n_answer, br.kind};
                std::fwrite(brec, sizeof brec, 1, f_branches);
                if (!write_all(f_tokens, br.ids)) return fail(out_dir + ": write failed");
                n_tokens_total += static_cast<int64_t>(br.ids.size());
                max_seq = std::max<int64_t>(max_seq, static_cast<int64_t>(ex.prefix.size() + br.ids.size()));
            }
            n_branches_total += static_cast<int64_t>(ex.branches.size());
            n_chunks_total += ex.n_chunks;
            max_chunks = std::max<int64_t>(max_chunks, ex.n_chunks);
        }
        std::fprintf(stderr, "\r%llu/%llu scenes", static_cast<unsigned long long>(b1 - from),
                     static_cast<unsigned long long>(to - from));
    }
    std::fputc('\n', stderr);
    for (std::FILE* f : {f_tiles, f_images, f_branches, f_tokens, f_labels, f_patch}) {
        if (std::fclose(f) != 0) return fail(out_dir + ": write failed");
    }

    std::string meta = "{\n";
    meta += "  \"layout\": \"" + layout + "\",\n";
    meta += "  \"preset\": " + json_quote(a.get("--preset")) + ",\n";
    meta += "  \"seed_from\": " + std::to_string(from) + ",\n  \"seed_to\": " + std::to_string(to) + ",\n";
    meta += "  \"qa_per_image\": " + std::to_string(qa) + ",\n";
    meta += "  \"tile\": " + std::to_string(s.tile) + ",\n";
    meta += "  \"longest_edge\": " + std::to_string(s.longest_edge) + ",\n";
    meta += "  \"tokens_per_chunk\": " + std::to_string(s.tokens_per_chunk) + ",\n";
    meta += "  \"patch\": " + std::to_string(s.patch) + ",\n";
    meta += "  \"patch_label_version\": " + std::to_string(traindata::kPatchLabelVersion) + ",\n";
    meta += "  \"mean\": " + json_floats(s.mean) + ",\n  \"std\": " + json_floats(s.std) + ",\n";
    meta += "  \"caption_prompt\": " + json_quote(s.caption_prompt) + ",\n";
    meta += "  \"chat_template\": " + json_quote(tmpl->name()) + ",\n";
    meta += "  \"eog\": " + std::to_string(tok->eos()) + ",\n";
    meta += "  \"n_vocab\": " + std::to_string(tok->n_vocab()) + ",\n";
    meta += "  \"vocab\": " + json_quote(std::filesystem::absolute(a.get("--vocab")).string()) + ",\n";
    meta += "  \"n_images\": " + std::to_string(to - from) + ",\n";
    meta += "  \"n_chunks\": " + std::to_string(n_chunks_total) + ",\n";
    meta += "  \"max_chunks\": " + std::to_string(max_chunks) + ",\n";
    meta += "  \"n_branches\": " + std::to_string(n_branches_total) + ",\n";
    meta += "  \"n_tokens\": " + std::to_string(n_tokens_total) + ",\n";
    meta += "  \"max_branch_sequence\": " + std::to_string(max_seq) + ",\n";
    meta += "  \"image_fields\": [\"seed\", \"width\", \"height\", \"chunk_offset\", \"n_chunks\", \"grid_rows\", "
            "\"grid_cols\", \"prefix_offset\", \"prefix_len\", \"branch_offset\", \"n_branches\", \"packed_len\"],\n";
    meta += "  \"branch_fields\": [\"token_offset\", \"len\", \"n_prompt\", \"n_answer\", \"kind\"],\n";
    meta += "  \"branch_kinds\": [\"color\", \"count\", \"exist\", \"position\", \"text\", \"caption\"],\n";
    meta += "  \"label_fields\": \"presence[color*6+shape] (48), shape_count (6), color_count (8), has_text, "
            "n_objects, text_len, char_count[34] (kTextAlphabet order), text_slots[" +
            std::to_string(kMaxTextChars) + "] (1 + kTextAlphabet index, 0 = none)\",\n";
    meta += "  \"n_label_fields\": " + std::to_string(kLabelFields) + "\n}\n";
    Status st = write_text_file((dir / "meta.json").string(), meta);
    if (!st.is_ok()) return fail(st.message());
    std::fprintf(stderr, "%llu scenes, %lld chunks, %lld branches, %lld tokens -> %s\n",
                 static_cast<unsigned long long>(to - from), static_cast<long long>(n_chunks_total),
                 static_cast<long long>(n_branches_total), static_cast<long long>(n_tokens_total), out_dir.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "corpus") return cmd_corpus(argc - 2, argv + 2);
    if (cmd == "build") return cmd_build(argc - 2, argv + 2);
    std::fprintf(stderr,
                 "usage: glimpse-traindata corpus --seeds FROM:TO --out FILE [--preset NAME] [--qa-per-image N]\n"
                 "       glimpse-traindata build --layout smolvlm|llava --vocab VOCAB.gguf --seeds FROM:TO --out DIR "
                 "[options]\n"
                 "(--help after a command lists its options)\n");
    return cmd.empty() || cmd == "--help" ? (cmd.empty() ? 2 : 0) : 2;
}
