// --numerics fast (models/numerics.h): an f16 mmproj's weight matrices quantized to Q8_0 at load.
// The oracle is glimpse quantize: the Q8_0 mmproj it writes from the same f16 file, loaded with
// the default numerics, must give the same image embeddings, prefill logits and generated tokens
// bit for bit, and the same planned weight memory, on both bundled layouts (SmolVLM/idefics3
// and LLaVA/mlp). Also: the requantized copies are released once packed (only the ones a kernel
// reads as stored stay resident), a NaN in a matrix is refused by name, and the command line
// refuses a bad --numerics value and documents the option.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "models/vision_encoder.h"
#include "models/vlm.h"
#include "runtime/fp16.h"
#include "runtime/gguf.h"
#include "runtime/image.h"
#include "runtime/json.h"
#include "test_util.h"
#include "tools/quantize/quantize_gguf.h"

using namespace glimpse;

namespace {

std::string bundled(const std::string& file) { return test::source_dir() + "/models/bundled/" + file; }

// The `type` mmproj glimpse quantize writes from `in` (q8_0: the oracle's input).
std::string quantize_mmproj(const std::string& in, const test::TempDir& dir, const std::string& type = "q8_0") {
    tools::QuantizeOptions qo;
    qo.input_path = in;
    qo.output_path = dir.file("mmproj-" + type + "-from-" + std::filesystem::path(in).filename().string());
    qo.type = type;
    qo.threads = 1;
    const Status s = tools::quantize_gguf(qo);
    REQUIRE_MESSAGE(s.is_ok(), s.to_string());
    return qo.output_path;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Q8_0 bytes of the linear weights a plan reads as stored (no packed copy for its kernel).
int64_t in_place_q8_0_weight_bytes(const Plan& plan) {
    int64_t n = 0;
    for (const Node& node : plan.graph().nodes()) {
        if (node.op != OpKind::linear || node.packed) continue;
        const Value& w = plan.graph().values()[node.inputs[1]];
        if (w.dtype == DType::q8_0) n += w.nbytes;
    }
    return n;
}

}  // namespace

TEST_CASE("--numerics fast on an f16 mmproj computes what glimpse quantize's Q8_0 mmproj computes, bit for bit") {
    for (const std::string model : {"smolvlm", "llava"}) {
        CAPTURE(model);
        const std::string text = bundled("scenes-" + model + "-f16-text.gguf");
        const std::string f16 = bundled("scenes-" + model + "-f16-mmproj.gguf");
        test::TempDir dir("numerics_fast_" + model);
        const std::string q8 = quantize_mmproj(f16, dir);

        // The encoder alone: what was requantized, the embeddings, and what stays resident. The
        // requantization runs on 3 threads, the oracle file was written on 1.
        ThreadPool requantize_pool(3);
        auto fast = VisionEncoder::load(f16, Numerics::fast, &requantize_pool);
        auto file = VisionEncoder::load(q8);
        REQUIRE_MESSAGE(fast.is_ok(), fast.status().to_string());
        REQUIRE_MESSAGE(file.is_ok(), file.status().to_string());
        CHECK((*file)->requantized_matrices() == 0);

        const VisionHparams& h = (*fast)->hparams();
        const int64_t S = h.image_size;
        std::vector<float> pixels(static_cast<size_t>(3 * S * S));
        test::Rng rng{27};
        for (float& p : pixels) p = rng.uniform(-1.0f, 1.0f);
        auto run = [&](VisionEncoder& enc, VisionPlan& vp) {
            std::vector<float> out(static_cast<size_t>(h.n_tokens_per_chunk() * h.n_embd_out));
            ThreadPool pool(2);
            const Status s = enc.encode(vp, pixels.data(), out.data(), &pool);
            REQUIRE_MESSAGE(s.is_ok(), s.to_string());
            return out;
        };
        auto plan_fast = (*fast)->compile(2);
        auto plan_file = (*file)->compile(2);
        REQUIRE_MESSAGE(plan_fast.is_ok(), plan_fast.status().to_string());
        REQUIRE_MESSAGE(plan_file.is_ok(), plan_file.status().to_string());
        // Requantized: every Q8_0 tensor of the file the encoder's graph uses (LLaVA's CLIP runs
        // fewer blocks than the file stores; the unused ones are never read).
        int64_t q8_matrices = 0, q8_bytes = 0;
        for (const Value& v : plan_file->plan->graph().values()) {
            if (v.kind == ValueKind::constant && v.dtype == DType::q8_0) {
                ++q8_matrices;
                q8_bytes += (*file)->file().find_tensor(v.name)->nbytes;
            }
        }
        CHECK(q8_matrices >= 4 * 6);  // 4 blocks × (q, k, v, o, up, down), plus the projector
        CHECK((*fast)->requantized_matrices() == q8_matrices);
        CHECK((*fast)->requantized_bytes() == q8_bytes);
        const std::vector<float> e_fast = run(**fast, *plan_fast), e_file = run(**file, *plan_file);
        CHECK(same_bytes(e_fast, e_file));
        CHECK(plan_fast->plan->matmul_kernel_names() == plan_file->plan->matmul_kernel_names());
        // Packed copies replace the Q8_0 copies; a kernel without a packed layout (the scalar
        // reference under GLIMPSE_MAX_ISA=scalar) reads its copy, which stays.
        CHECK((*fast)->requantized_resident_bytes() == in_place_q8_0_weight_bytes(*plan_fast->plan));
        // A second plan over the released copies (taps: another graph, the same weights).
        VisionTaps taps;
        taps.layers = {0};
        taps.column_mean = true;
        auto plan_again = (*fast)->compile(2, taps);
        REQUIRE_MESSAGE(plan_again.is_ok(), plan_again.status().to_string());
        CHECK(same_bytes(run(**fast, *plan_again), e_file));
        CHECK((*fast)->requantized_resident_bytes() == in_place_q8_0_weight_bytes(*plan_again->plan));
        // exact keeps the f16 arithmetic: a different computation (if this held, fast did nothing).
        auto exact = VisionEncoder::load(f16);
        REQUIRE(exact.is_ok());
        auto plan_exact = (*exact)->compile(2);
        REQUIRE(plan_exact.is_ok());
        CHECK_FALSE(same_bytes(run(**exact, *plan_exact), e_file));

        // The whole pipeline: a held-out scene's question, greedy.
        auto answer = [&](const std::string& mmproj, Numerics numerics, VlmMemory* memory) {
            VlmConfig cfg;
            cfg.n_threads = 2;
            cfg.numerics = numerics;
            auto vlm = Vlm::load(text, mmproj, cfg);
            REQUIRE_MESSAGE(vlm.is_ok(), vlm.status().to_string());
            auto img = image_decode_file(bundled("samples/1000000.png"));
            REQUIRE(img.is_ok());
            auto prompt = (*vlm)->build_prompt("How many objects are in the image?", {*img});
            REQUIRE_MESSAGE(prompt.is_ok(), prompt.status().to_string());
            auto embd = (*vlm)->encode_images(*prompt, nullptr);
            REQUIRE(embd.is_ok());
            SamplingParams greedy;
            greedy.temperature = 0;
            const Status s = (*vlm)->generate(*prompt, 6, greedy, [](std::string_view) { return true; }, nullptr);
            REQUIRE_MESSAGE(s.is_ok(), s.to_string());
            *memory = (*vlm)->memory();
            return std::make_tuple(*embd, (*vlm)->last_prefill_logits(), (*vlm)->last_generated());
        };
        VlmMemory m_fast, m_file;
        const auto [embd_fast, logits_fast, ids_fast] = answer(f16, Numerics::fast, &m_fast);
        const auto [embd_file, logits_file, ids_file] = answer(q8, Numerics::exact, &m_file);
        CHECK(same_bytes(embd_fast, embd_file));
        CHECK(same_bytes(logits_fast, logits_file));
        CHECK(ids_fast == ids_file);
        CHECK(!ids_fast.empty());
        // Planned memory counts the Q8_0 weights, as for the Q8_0 file.
        CHECK(m_fast.weights == m_file.weights);
        CHECK(m_fast.packed_weights == m_file.packed_weights);
    }
}

TEST_CASE("--numerics fast on bf16 and f32 mmproj files equals glimpse quantize's Q8_0 of the same file") {
    const std::string f16 = bundled("scenes-smolvlm-f16-mmproj.gguf");
    test::TempDir dir("numerics_fast_bf16_f32");
    for (const std::string type : {"bf16", "f32"}) {
        CAPTURE(type);
        const std::string wide = quantize_mmproj(f16, dir, type);
        const std::string q8 = quantize_mmproj(wide, dir);
        auto fast = VisionEncoder::load(wide, Numerics::fast);
        auto file = VisionEncoder::load(q8);
        REQUIRE_MESSAGE(fast.is_ok(), fast.status().to_string());
        REQUIRE_MESSAGE(file.is_ok(), file.status().to_string());
        CHECK((*fast)->requantized_matrices() >= 4 * 6);
        const VisionHparams& h = (*fast)->hparams();
        std::vector<float> pixels(static_cast<size_t>(3 * h.image_size * h.image_size));
        test::Rng rng{2727};
        for (float& p : pixels) p = rng.uniform(-1.0f, 1.0f);
        std::vector<float> outs[2];
        VisionEncoder* encoders[2] = {fast->get(), file->get()};
        for (int i = 0; i < 2; ++i) {
            auto plan = encoders[i]->compile(1);
            REQUIRE_MESSAGE(plan.is_ok(), plan.status().to_string());
            outs[i].resize(static_cast<size_t>(h.n_tokens_per_chunk() * h.n_embd_out));
            const Status st = encoders[i]->encode(*plan, pixels.data(), outs[i].data(), nullptr);
            REQUIRE_MESSAGE(st.is_ok(), st.to_string());
        }
        CHECK(same_bytes(outs[0], outs[1]));
    }
}

TEST_CASE("--numerics fast refuses a matrix holding NaN, naming it; exact loads the same file") {
    const std::string f16 = bundled("scenes-smolvlm-f16-mmproj.gguf");
    test::TempDir dir("numerics_fast_nan");
    std::vector<uint8_t> bytes = test::read_file_bytes(f16);
    {
        auto file = GgufFile::open(f16);
        REQUIRE(file.is_ok());
        const GgufTensor* t = (*file)->find_tensor("v.blk.1.attn_q.weight");
        REQUIRE(t != nullptr);
        REQUIRE(t->type == DType::f16);
        const size_t offset = static_cast<size_t>(t->data - (*file)->mapping()->data()) + 2 * 5;  // element 5 of row 0
        const uint16_t nan = 0x7e00;
        std::memcpy(bytes.data() + offset, &nan, sizeof nan);
    }
    const std::string poisoned = dir.file("nan-mmproj.gguf");
    test::write_bytes(poisoned, bytes);
    auto fast = VisionEncoder::load(poisoned, Numerics::fast);
    REQUIRE_FALSE(fast.is_ok());
    const std::string msg = fast.status().message();
    CHECK(msg.find("v.blk.1.attn_q.weight") != std::string::npos);
    CHECK(msg.find("NaN") != std::string::npos);
    CHECK(msg.find("--numerics exact") != std::string::npos);
    CHECK(VisionEncoder::load(poisoned).is_ok());
}

TEST_CASE("parse_numerics takes exact and fast only") {
    CHECK(*parse_numerics("exact") == Numerics::exact);
    CHECK(*parse_numerics("fast") == Numerics::fast);
    for (const char* bad : {"", "Fast", "fast ", "q8_0", "approx"}) {
        auto r = parse_numerics(bad);
        test::check_error(r.status(), StatusCode::invalid_argument, std::string("'") + bad + "'");
    }
    CHECK(std::string(numerics_name(Numerics::fast)) == "fast");
    CHECK(std::string(numerics_name(Numerics::exact)) == "exact");
}

#ifdef GLIMPSE_CLI_BINARY  // tests/CMakeLists.txt: builds with the tools
TEST_CASE("glimpse --numerics: a bad value is a usage error; --help documents it; inspect reports the Q8_0 copies") {
    if (test::emulated()) return;  // the CLI binary is not run under qemu (no binfmt there)
    test::TempDir dir("numerics_fast_cli");
    const std::string text = bundled("scenes-smolvlm-f16-text.gguf"), f16 = bundled("scenes-smolvlm-f16-mmproj.gguf");
    for (const char* cmd : {"caption", "inspect", "eval", "serve"}) {
        CAPTURE(cmd);
        const test::ProcessRun help = test::run_process({GLIMPSE_CLI_BINARY, cmd, "--help"}, dir);
        CHECK(help.exit_code == 0);
        CHECK(help.out.find("--numerics MODE") != std::string::npos);
        CHECK(help.out.find("exact") != std::string::npos);
        CHECK(help.out.find("fast") != std::string::npos);
    }
    const test::ProcessRun bad = test::run_process(
        {GLIMPSE_CLI_BINARY, "inspect", "-m", text, "--mmproj", f16, "--numerics", "faster"}, dir);
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("--numerics must be exact or fast, not 'faster'") != std::string::npos);

    const std::string q8 = quantize_mmproj(f16, dir);
    auto inspect_json = [&](const std::vector<std::string>& extra) {
        std::vector<std::string> argv = {GLIMPSE_CLI_BINARY, "inspect", "--json", "-t", "1", "-m", text};
        argv.insert(argv.end(), extra.begin(), extra.end());
        const test::ProcessRun r = test::run_process(argv, dir);
        REQUIRE_MESSAGE(r.exit_code == 0, r.err);
        auto j = json_parse(r.out);
        REQUIRE_MESSAGE(j.is_ok(), r.out);
        return *j;
    };
    const JsonValue fast = inspect_json({"--mmproj", f16, "--numerics", "fast"});
    const JsonValue file = inspect_json({"--mmproj", q8});
    const JsonValue exact = inspect_json({"--mmproj", f16});
    CHECK(fast["numerics"].as_string() == "fast");
    CHECK(exact["numerics"].as_string() == "exact");
    const double w_fast = fast["bytes"]["weights"].as_number();
    CHECK(w_fast == file["bytes"]["weights"].as_number());
    CHECK(w_fast < exact["bytes"]["weights"].as_number());
}
#endif
