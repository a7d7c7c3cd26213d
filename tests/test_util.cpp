#include "test_util.h"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "models/text_decoder.h"
#include "models/vlm.h"
#include "runtime/fp16.h"
#include "runtime/image.h"
#include "runtime/json.h"

namespace glimpse::test {

std::string golden_dir() {
    if (const char* env = std::getenv("GLIMPSE_GOLDEN_DIR")) return env;
    return GLIMPSE_DEFAULT_GOLDEN_DIR;
}

std::string source_dir() { return GLIMPSE_SOURCE_DIR; }

bool emulated() {
    const char* s = std::getenv("GLIMPSE_TEST_SCALE");
    return s != nullptr && std::string(s) == "emulated";
}

void check_error(const Status& status, StatusCode code, std::string_view needle) {
    REQUIRE_FALSE(status.is_ok());
    CHECK(status.code() == code);
    CHECK_MESSAGE(status.message().find(needle) != std::string::npos, status.message());
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        FAIL_CHECK("cannot read " << path);
        return {};
    }
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) FAIL("cannot write " << bytes.size() << " bytes to " << path);
}

TempDir::TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() / ("glimpse_" + tag + "_" + std::to_string(::getpid()));
    std::error_code ec;
    std::filesystem::remove_all(path, ec);  // left over from a crashed run with the same pid
    std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
}

std::vector<float> read_f32_file(const std::string& path) {
    std::vector<uint8_t> bytes = read_file_bytes(path);
    std::vector<float> out(bytes.size() / 4);
    if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * 4);
    return out;
}

std::string to_hex(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

std::vector<float> read_golden_image_embeddings(const std::string& case_dir) {
    std::vector<float> rows;
    for (int k = 0;; ++k) {
        const std::string path = case_dir + "/embd_" + std::to_string(k) + ".f32";
        if (!std::filesystem::exists(path)) break;
        std::vector<float> e = read_f32_file(path);
        rows.insert(rows.end(), e.begin(), e.end());
    }
    return rows;
}

size_t fill_golden_prompt(const TextDecoder& dec, const std::vector<int64_t>& sequence,
                          const std::vector<float>& image_rows, int64_t n_embd, float* embeddings,
                          int32_t* positions) {
    const size_t row = static_cast<size_t>(n_embd);
    size_t image_row = 0;
    for (size_t i = 0; i < sequence.size(); ++i) {
        if (sequence[i] >= 0) {
            dec.embed_token(static_cast<int32_t>(sequence[i]), embeddings + i * row);
        } else {
            REQUIRE((image_row + 1) * row <= image_rows.size());
            std::copy(image_rows.begin() + image_row * row, image_rows.begin() + (image_row + 1) * row,
                      embeddings + i * row);
            ++image_row;
        }
        positions[i] = static_cast<int32_t>(i);
    }
    return image_row;
}

std::vector<ImageU8> decode_golden_images(const std::string& set_dir, const JsonValue& case_json) {
    std::vector<ImageU8> images;
    for (const JsonValue& img : case_json["images"].items()) {
        auto decoded = image_decode_file(set_dir + "/" + img.as_string());
        REQUIRE_MESSAGE(decoded.is_ok(), decoded.status().to_string());
        images.push_back(std::move(*decoded));
    }
    return images;
}

void check_golden_generation(const Vlm& vlm, const JsonValue& greedy, const std::string& printed) {
    const std::vector<int64_t> want = greedy["tokens"].int_array();
    const std::vector<int32_t>& have = vlm.last_generated();
    REQUIRE(have.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) CHECK_MESSAGE(have[i] == want[i], "step " << i);
    CHECK(to_hex(printed) == greedy["text_hex"].as_string());
}

std::vector<int32_t> topk_by_rank_count(const std::vector<float>& s, int64_t k) {
    const int64_t n = static_cast<int64_t>(s.size());
    std::vector<int32_t> out;
    for (int64_t i = 0; i < n; ++i) {
        int64_t beaten_by = 0;
        for (int64_t j = 0; j < n; ++j) {
            const bool ni = std::isnan(s[i]), nj = std::isnan(s[j]);
            const bool tie = (ni && nj) || (!ni && !nj && s[i] == s[j]);
            if ((!nj && ni) || (!ni && !nj && s[j] > s[i]) || (tie && j < i)) ++beaten_by;
        }
        if (beaten_by < k) out.push_back(static_cast<int32_t>(i));
    }
    return out;
}

ErrorStats compare(const float* got, const float* ref, size_t n) {
    ErrorStats s;
    double max_ref = 0, sum_d2 = 0, sum_r2 = 0, sum_g2 = 0, dot = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = static_cast<double>(got[i]) - ref[i];
        s.max_abs_diff = std::max(s.max_abs_diff, std::fabs(d));
        max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
        sum_d2 += d * d;
        sum_r2 += static_cast<double>(ref[i]) * ref[i];
        sum_g2 += static_cast<double>(got[i]) * got[i];
        dot += static_cast<double>(got[i]) * ref[i];
    }
    s.rel = max_ref > 0 ? s.max_abs_diff / max_ref : s.max_abs_diff;
    s.rms = sum_r2 > 0 ? std::sqrt(sum_d2 / sum_r2) : std::sqrt(sum_d2);
    s.cosine = (sum_r2 > 0 && sum_g2 > 0) ? dot / std::sqrt(sum_r2 * sum_g2) : 0;
    return s;
}


std::vector<std::string> child_environment(const std::vector<std::string>& extra_env,
                                           const std::vector<std::string>& drop_env) {
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
        const std::string_view var(*e);
        bool dropped = false;
        for (const std::string& name : drop_env) {
            dropped = dropped || (var.size() > name.size() && var.substr(0, name.size()) == name && var[name.size()] == '=');
        }
        if (!dropped) env_s.emplace_back(var);
    }
    env_s.insert(env_s.end(), extra_env.begin(), extra_env.end());
    return env_s;
}

std::vector<char*> c_string_array(std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (std::string& s : strings) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

ProcessRun run_process(std::vector<std::string> argv_s, const TempDir& dir, const std::vector<std::string>& extra_env,
                       const std::vector<std::string>& drop_env) {
    const std::string out_path = dir.file("stdout"), err_path = dir.file("stderr");
    std::vector<char*> argv = c_string_array(argv_s);
    std::vector<std::string> env_s = child_environment(extra_env, drop_env);
    std::vector<char*> envp = c_string_array(env_s);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE_MESSAGE(rc == 0, "cannot start " << argv_s[0] << ": " << std::strerror(rc));
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    ProcessRun r;
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    const std::vector<uint8_t> out = read_file_bytes(out_path), err = read_file_bytes(err_path);
    r.out.assign(out.begin(), out.end());
    r.err.assign(err.begin(), err.end());
    return r;
}

AttentionInputs random_attention_inputs(Rng& rng, const AttentionShape& c, DType kv_type, float qk_range) {
    AttentionInputs in;
    in.q_ld = c.Hq * c.D + 3;
    in.kv_ld = c.Hkv * c.D + 5;
    in.out_ld = c.Hq * c.D + 2;
    in.q.resize(c.T * in.q_ld);
    in.kf.resize(c.S * in.kv_ld);
    in.vf.resize(c.S * in.kv_ld);
    for (float& x : in.q) x = rng.uniform(-qk_range, qk_range);
    for (float& x : in.kf) x = rng.uniform(-qk_range, qk_range);
    for (float& x : in.vf) x = rng.uniform(-1, 1);
    in.kh.resize(in.kf.size());
    in.vh.resize(in.vf.size());
    if (kv_type == DType::f16) {
        for (size_t i = 0; i < in.kf.size(); ++i) {
            in.kh[i] = f32_to_f16(in.kf[i]);
            in.vh[i] = f32_to_f16(in.vf[i]);
            in.kf[i] = f16_to_f32(in.kh[i]);
            in.vf[i] = f16_to_f32(in.vh[i]);
        }
    }
    return in;
}

AttentionArgs attention_args(const AttentionShape& c, const float* q, int64_t q_ld, const void* k, const void* v,
                             int64_t kv_ld, DType kv_type, int64_t out_ld) {
    return AttentionArgs{.q = q, .q_ld = q_ld, .k = k, .v = v, .kv_ld = kv_ld, .kv_type = kv_type, .out_ld = out_ld,
                         .T = c.T, .S = c.S, .n_head = c.Hq, .n_head_kv = c.Hkv, .head_dim = c.D,
                         .scale = 1.0f / std::sqrt(static_cast<float>(c.D)), .causal = c.causal,
                         .causal_offset = c.causal_offset};
}

AttentionArgs attention_args(const AttentionShape& c, const AttentionInputs& in, DType kv_type) {
    const bool f16 = kv_type == DType::f16;
    return attention_args(c, in.q.data(), in.q_ld, f16 ? static_cast<const void*>(in.kh.data()) : in.kf.data(),
                          f16 ? static_cast<const void*>(in.vh.data()) : in.vf.data(), in.kv_ld, kv_type, in.out_ld);
}

}  // namespace glimpse::test
