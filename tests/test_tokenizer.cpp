// Tokenizer, stream detokenizer and chat templates against llama.cpp's outputs in the
// golden data (tokenizer.json, every case's tokens.json and greedy.json), hand-worked BPE
// and SentencePiece vocabularies, and hostile vocabulary metadata.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "models/chat_template.h"
#include "models/tokenizer.h"
#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "runtime/json.h"
#include "test_util.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {

std::string from_hex(const std::string& hex) {
    auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
    return out;
}

std::vector<int32_t> as_ids(const JsonValue& v) {
    std::vector<int32_t> out;
    for (int64_t x : v.int_array()) out.push_back(static_cast<int32_t>(x));
    return out;
}

JsonValue load_json(const std::string& path) {
    auto r = json_parse_file(path);
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    return std::move(r).value();
}

std::unique_ptr<GgufFile> open_gguf(const std::string& path) {
    auto r = GgufFile::open(path);
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    return std::move(r).value();
}

Tokenizer load_tokenizer(const GgufFile& g) {
    auto r = Tokenizer::from_gguf(g);
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    return std::move(r).value();
}

std::string smolvlm_text_path() { return test::golden_dir() + "/smolvlm-tiny-f32/tiny-smolvlm-text-f32.gguf"; }
std::string llava_text_path() { return test::golden_dir() + "/llava-tiny-f32/tiny-llava-text-f32.gguf"; }

Result<Tokenizer> tokenizer_from_writer(const GgufWriter& w) {
    auto g = GgufFile::parse(MappedFile::from_bytes(w.serialize(), "vocab.gguf"));
    if (!g.is_ok()) return g.status();
    return Tokenizer::from_gguf(**g);
}

// A small byte-level BPE vocabulary whose results are worked out by hand below.
GgufWriter small_bpe_writer() {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "gpt-2");
    //                                   0                 1    2    3    4         5     6      7
    w.set_string_array("tokenizer.ggml.tokens", {"<|endoftext|>", "a", "b", "c", "\xc4\xa0", "ab", "abc", "\xc4\xa0" "a"});
    w.set_i32_array("tokenizer.ggml.token_type", {3, 1, 1, 1, 1, 1, 1, 1});
    w.set_string_array("tokenizer.ggml.merges", {"a b", "ab c", "\xc4\xa0 a"});
    w.set_u32("tokenizer.ggml.bos_token_id", 0);
    w.set_u32("tokenizer.ggml.eos_token_id", 0);
    return w;
}

// A small SentencePiece vocabulary (U+2581 is the visible space).
GgufWriter small_spm_writer() {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    //                                    0        1      2       3               4    5    6                  7     8                       9
    w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab",
                                                 "\xe2\x96\x81" "ab", "<0x78>"});
    w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0, -5, -5, -5, -2, -1, -3, 0});
    w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1, 1, 1, 1, 6});
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    return w;
}

}  // namespace

TEST_CASE("golden tokenizer.json: all strings x {add_special, parse_special} give llama.cpp's ids and pieces") {
    const JsonValue doc = load_json(test::golden_dir() + "/tokenizer.json");
    auto g = open_gguf(test::golden_dir() + "/" + doc["model"].as_string());
    const Tokenizer tok = load_tokenizer(*g);
    REQUIRE(tok.n_vocab() == doc["n_vocab"].as_int());
    REQUIRE(doc["cases"].size() == 15);
    int checked = 0;
    for (const JsonValue& c : doc["cases"].items()) {
        const std::string text = from_hex(c["text_hex"].as_string());
        CHECK(text == c["text"].as_string());
        for (bool add_special : {false, true}) {
            for (bool parse_special : {false, true}) {
                const std::string key = std::string("add_special=") + (add_special ? "true" : "false") +
                                        ",parse_special=" + (parse_special ? "true" : "false");
                const JsonValue& want = c[key];
                REQUIRE_MESSAGE(want.is_object(), key);
                const std::vector<int32_t> ids = tok.encode(text, add_special, parse_special);
                CHECK_MESSAGE(ids == as_ids(want["ids"]), "text: " << c["text"].as_string() << " " << key);
                const std::vector<std::string> pieces_hex = want["pieces_hex"].string_array();
                REQUIRE(pieces_hex.size() == want["ids"].size());
                for (size_t i = 0; i < pieces_hex.size(); ++i) {
                    const int32_t id = static_cast<int32_t>(want["ids"].items()[i].as_int());
                    CHECK(test::to_hex(tok.token_to_piece(id, true)) == pieces_hex[i]);
                }
                ++checked;
            }
        }
    }
    CHECK(checked == 60);
}

TEST_CASE("smolvlm vocabulary: special ids, EOG set, add_bos, lookups and pieces") {
    auto g = open_gguf(smolvlm_text_path());
    const Tokenizer tok = load_tokenizer(*g);
    CHECK(tok.model() == Tokenizer::Model::bpe);
    CHECK(tok.pre_tokenizer() == Tokenizer::PreTokenizer::digits_gpt2);
    CHECK(tok.n_vocab() == 449);
    CHECK(tok.bos() == 1);
    CHECK(tok.eos() == 448);
    CHECK(tok.unk() == 0);
    CHECK(tok.pad() == 2);
    CHECK_FALSE(tok.add_bos());
    CHECK_FALSE(tok.add_eos());
    // README: llama.cpp's end-of-generation set for this vocabulary.
    CHECK(tok.eog_ids() == std::vector<int32_t>{0, 2, 4, 448});
    for (int32_t id = -3; id < tok.n_vocab() + 3; ++id) {
        CHECK(tok.is_eog(id) == (id == 0 || id == 2 || id == 4 || id == 448));
    }

    // Lookup by piece, as libmtmd finds its wrapper tokens.
    CHECK(tok.find_token("\n\n") == 273);
    CHECK(tok.find_vocab_text("\xc4\x8a\xc4\x8a") == 273);  // "ĊĊ"
    CHECK(tok.find_token("<row_1_col_1>") == 412);
    CHECK(tok.find_token("<row_6_col_6>") == 447);
    CHECK(tok.find_token("<fake_token_around_image>") == 409);
    CHECK(tok.find_token("<global-img>") == 411);
    CHECK(tok.find_token("<image>") == 410);
    CHECK(tok.find_token("<end_of_utterance>") == 448);
    CHECK(tok.find_token("not a token") == Tokenizer::kNoToken);

    // Control tokens render only on request.
    CHECK(tok.token_to_piece(1, true) == "<|im_start|>");
    CHECK(tok.token_to_piece(1, false) == "");
    CHECK(tok.token_to_piece(448, true) == "<end_of_utterance>");
    CHECK(tok.token_to_piece(448, false) == "");
    CHECK(tok.token_to_piece(-1, true) == "");
    CHECK(tok.token_to_piece(449, true) == "");

    // GPT-2 byte characters: "Ġ" (U+0120) is byte 0x20 and "Ċ" (U+010A) is 0x0A.
    CHECK(tok.token_text(237) == "\xc4\xa0");
    CHECK(tok.token_to_piece(237, false) == " ");
    CHECK(tok.token_text(215) == "\xc4\x8a");
    CHECK(tok.token_to_piece(215, false) == "\n");
    // README: ids 17..272 are the 256 byte tokens, each rendering to one distinct byte.
    std::set<std::string> bytes;
    for (int32_t id = 17; id <= 272; ++id) {
        const std::string p = tok.token_to_piece(id, false);
        CHECK(p.size() == 1);
        bytes.insert(p);
    }
    CHECK(bytes.size() == 256);
    CHECK(tok.token_to_piece(273, false) == "\n\n");

    // Partitioning of special tokens: longest match first, control tokens only with parse_special.
    CHECK(tok.encode("<|im_start|><|im_end|>", false, true) == std::vector<int32_t>{1, 2});
    CHECK(tok.encode("", true, true).empty());
    CHECK(tok.decode(tok.encode("Hello world", false, false), false) == "Hello world");
}

TEST_CASE("llava text model: same vocabulary with add_bos_token=true prepends BOS") {
    auto g = open_gguf(llava_text_path());
    const Tokenizer tok = load_tokenizer(*g);
    CHECK(tok.add_bos());
    CHECK(tok.bos() == 1);
    const std::vector<int32_t> plain = tok.encode("USER: hi", false, true);
    std::vector<int32_t> with_bos = {1};
    with_bos.insert(with_bos.end(), plain.begin(), plain.end());
    CHECK(tok.encode("USER: hi", true, true) == with_bos);
}

// Rebuilds every case's prompt the way llama-mtmd-cli and libmtmd do (README steps 2-3):
// marker per image + prompt, chat template, split at the markers, text parts tokenized
// with parse_special, idefics3 wrapper strings tokenized and "\n\n" looked up, BOS per the
// vocabulary. The flattened sequence (-1 per image embedding) must equal tokens.json.
TEST_CASE("golden tokens.json: templates, chunk tokens and pieces of every case") {
    int n_cases = 0;
    for (const auto& set_entry : fs::directory_iterator(test::golden_dir())) {
        if (!set_entry.is_directory()) continue;
        const std::string set_name = set_entry.path().filename().string();
        const bool idefics3 = set_name.rfind("smolvlm", 0) == 0;
        for (const auto& case_entry : fs::directory_iterator(set_entry.path())) {
            if (!case_entry.is_directory() || !fs::exists(case_entry.path() / "tokens.json")) continue;
            const std::string case_name = set_name + "/" + case_entry.path().filename().string();
            INFO("case " << case_name);
            const JsonValue info = load_json((case_entry.path() / "case.json").string());
            const JsonValue tj = load_json((case_entry.path() / "tokens.json").string());
            auto g = open_gguf((set_entry.path() / info["text_model"].as_string()).string());
            const Tokenizer tok = load_tokenizer(*g);

            // Step 2: one marker per image, then the chat template.
            const size_t n_images = tj["images"].size();
            std::string user;
            for (size_t i = 0; i < n_images; ++i) user += std::string(kMediaMarker);
            user += tj["prompt_arg"].as_string();
            CHECK(user == tj["user_content"].as_string());
            const std::string template_arg = tj["settings"]["chat_template_arg"].as_string();
            auto tmpl = ChatTemplate::for_model(*g, template_arg);
            REQUIRE_MESSAGE(tmpl.is_ok(), tmpl.status().to_string());
            CHECK(tmpl->name() == (idefics3 ? "smolvlm" : "vicuna"));
            const std::string formatted = tmpl->format_user_turn(user);
            CHECK(formatted == tj["formatted_prompt"].as_string());
            CHECK(test::to_hex(formatted) == tj["formatted_prompt_hex"].as_string());

            // Step 3: chunks.
            std::vector<const JsonValue*> image_chunks;
            for (const JsonValue& c : tj["chunks"].items()) {
                if (c["type"].as_string() == "image") image_chunks.push_back(&c);
            }
            size_t next_image_chunk = 0;
            std::vector<int32_t> seq;
            auto add_text = [&](const std::string& s) {
                const std::vector<int32_t> ids = tok.encode(s, false, true);
                seq.insert(seq.end(), ids.begin(), ids.end());
            };
            auto add_image_chunk = [&] {
                REQUIRE(next_image_chunk < image_chunks.size());
                const int64_t n = (*image_chunks[next_image_chunk++])["n_tokens"].as_int();
                seq.insert(seq.end(), static_cast<size_t>(n), -1);
            };
            std::vector<std::string> parts;
            for (size_t pos = 0;;) {
                const size_t m = formatted.find(kMediaMarker, pos);
                parts.push_back(formatted.substr(pos, m == std::string::npos ? std::string::npos : m - pos));
                if (m == std::string::npos) break;
                pos = m + kMediaMarker.size();
            }
            REQUIRE(parts.size() == n_images + 1);
            for (size_t p = 0; p < parts.size(); ++p) {
                add_text(parts[p]);
                if (p == n_images) break;
                if (!idefics3) {
                    add_image_chunk();
                    continue;
                }
                // idefics3 tiling geometry from the README: longest edge scaled to 128,
                // each side rounded up to whole 64-pixel tiles.
                const int64_t w = tj["images"].items()[p]["nx"].as_int();
                const int64_t h = tj["images"].items()[p]["ny"].as_int();
                const int64_t L = 128, tile = 64;
                auto tiles = [&](int64_t side, int64_t longest) { return (side * L + longest * tile - 1) / (longest * tile); };
                const int64_t longest = std::max(w, h);
                const int64_t cols = tiles(w, longest), rows = tiles(h, longest);
                for (int64_t r = 1; r <= rows; ++r) {
                    for (int64_t c = 1; c <= cols; ++c) {
                        add_text("<fake_token_around_image><row_" + std::to_string(r) + "_col_" + std::to_string(c) + ">");
                        add_image_chunk();
                    }
                    if (r != rows) seq.push_back(tok.find_token("\n"));
                }
                seq.push_back(tok.find_token("\n\n"));
                seq.push_back(tok.find_token("<fake_token_around_image>"));
                seq.push_back(tok.find_token("<global-img>"));
                add_image_chunk();
                seq.push_back(tok.find_token("<fake_token_around_image>"));
            }
            CHECK(next_image_chunk == image_chunks.size());
            if (tj["add_special"].as_bool() && tok.add_bos()) seq.insert(seq.begin(), tok.bos());
            CHECK(seq == as_ids(tj["sequence"]));
            CHECK(static_cast<int64_t>(seq.size()) == tj["n_prompt_positions"].as_int());

            // Each text chunk: ids, and pieces rendered with specials; re-tokenizing the
            // concatenated pieces reproduces the ids (no BOS in these chunks but the first).
            for (const JsonValue& c : tj["chunks"].items()) {
                if (c["type"].as_string() != "text") continue;
                const std::vector<int32_t> ids = as_ids(c["tokens"]);
                const std::vector<std::string> hex = c["pieces_hex"].string_array();
                REQUIRE(hex.size() == ids.size());
                std::string joined;
                for (size_t i = 0; i < ids.size(); ++i) {
                    CHECK(test::to_hex(tok.token_to_piece(ids[i], true)) == hex[i]);
                    joined += from_hex(hex[i]);
                }
                CHECK(tok.encode(joined, false, true) == ids);
            }

            // Generation (README step 7): no golden case hit an EOG token or the antiprompt.
            const JsonValue greedy = load_json((case_entry.path() / "greedy.json").string());
            const std::vector<int32_t> gen = as_ids(greedy["tokens"]);
            const std::vector<int32_t> anti = tok.encode(mtmd_cli_antiprompt(template_arg), false, true);
            CHECK(anti.empty() == template_arg.empty());
            std::vector<int32_t> so_far;
            bool stop = false;
            for (int32_t id : gen) {
                so_far.push_back(id);
                stop = stop || tok.is_eog(id) || ends_with_tokens(so_far, anti);
            }
            CHECK(stop == greedy["stopped_at_eog_or_antiprompt"].as_bool());
            std::string text;
            for (size_t i = 0; i < gen.size(); ++i) {
                CHECK(test::to_hex(tok.token_to_piece(gen[i], true)) == greedy["pieces_hex"].items()[i].as_string());
                text += tok.token_to_piece(gen[i], true);
            }
            CHECK(test::to_hex(text) == greedy["text_hex"].as_string());
            ++n_cases;
        }
    }
    CHECK(n_cases == 18);
}

TEST_CASE("vicuna antiprompt: ASSISTANT: tokenized as llama-mtmd-cli does, matched at the end of the output") {
    auto g = open_gguf(llava_text_path());
    const Tokenizer tok = load_tokenizer(*g);
    CHECK(mtmd_cli_antiprompt("vicuna") == "ASSISTANT:");
    CHECK(mtmd_cli_antiprompt("deepseek") == "###");
    CHECK(mtmd_cli_antiprompt("").empty());
    CHECK(mtmd_cli_antiprompt("chatml").empty());
    const std::vector<int32_t> anti = tok.encode(mtmd_cli_antiprompt("vicuna"), false, true);
    // The golden llava prompt ends with "\nASSISTANT:"; its last ids are the antiprompt.
    const JsonValue tj = load_json(test::golden_dir() + "/llava-tiny-f32/chelsea__describe/tokens.json");
    const std::vector<int32_t> last = as_ids(tj["chunks"].items().back()["tokens"]);
    REQUIRE(last.size() > anti.size());
    CHECK(std::vector<int32_t>(last.end() - static_cast<std::ptrdiff_t>(anti.size()), last.end()) == anti);
    CHECK(anti == std::vector<int32_t>{49, 67, 67, 57, 67, 68, 49, 62, 68, 42});
    CHECK(ends_with_tokens(last, anti));
    CHECK_FALSE(ends_with_tokens({42}, anti));
    CHECK_FALSE(ends_with_tokens(last, {}));
}

TEST_CASE("stream decoder: wstd0.2 greedy outputs (invalid UTF-8) reproduce text_hex") {
    auto g = open_gguf(test::golden_dir() + "/smolvlm-tiny-f32-wstd0.2/tiny-smolvlm-wstd0.2-text-f32.gguf");
    const Tokenizer tok = load_tokenizer(*g);
    int n_cases = 0;
    for (const auto& e : fs::directory_iterator(test::golden_dir() + "/smolvlm-tiny-f32-wstd0.2")) {
        if (!e.is_directory() || !fs::exists(e.path() / "greedy.json")) continue;
        INFO(e.path().string());
        const JsonValue greedy = load_json((e.path() / "greedy.json").string());
        TokenStreamDecoder dec(tok);
        std::string printed;
        for (int32_t id : as_ids(greedy["tokens"])) {
            const std::string out = dec.push(id);
            // Nothing printed ever ends inside a UTF-8 sequence that could still complete.
            CHECK(utf8_incomplete_tail(out) == 0);
            printed += out;
        }
        printed += dec.flush();
        CHECK(dec.pending_bytes() == 0);
        CHECK(test::to_hex(printed) == greedy["text_hex"].as_string());
        ++n_cases;
    }
    CHECK(n_cases == 3);

    // chelsea__describe emits 0xd6 then 0xbf (U+05BF): the first is held until the second arrives.
    TokenStreamDecoder dec(tok);
    CHECK(dec.push(163) == "");
    CHECK(dec.pending_bytes() == 1);
    CHECK(dec.push(140) == "\xd6\xbf");
    // 0xe0 followed by 'i' can never complete: both go out at once.
    CHECK(dec.push(173) == "");
    CHECK(dec.push(89) == "\xe0i");
    // A lone trailing lead byte comes out on flush.
    CHECK(dec.push(184) == "");
    CHECK(dec.flush() == "\xeb");
    CHECK(dec.flush() == "");
}

TEST_CASE("stream decoder: a 4-byte emoji split across byte tokens") {
    auto g = open_gguf(smolvlm_text_path());
    const Tokenizer tok = load_tokenizer(*g);
    const std::string emoji = "\xf0\x9f\x98\x80";  // U+1F600
    std::vector<int32_t> ids;
    for (char c : emoji) {
        ids.push_back(tok.find_token(std::string(1, c)));
        REQUIRE(ids.back() != Tokenizer::kNoToken);
    }
    TokenStreamDecoder dec(tok);
    CHECK(dec.push(tok.find_token("A")) == "A");
    CHECK(dec.push(ids[0]) == "");
    CHECK(dec.push(ids[1]) == "");
    CHECK(dec.push(ids[2]) == "");
    CHECK(dec.pending_bytes() == 3);
    CHECK(dec.push(ids[3]) == emoji);
    CHECK(dec.push(tok.find_token("B")) == "B");
    CHECK(dec.flush() == "");
    // Mixed pieces through push_bytes: "x" + first half, second half + "y".
    TokenStreamDecoder raw(tok);
    CHECK(raw.push_bytes("x\xf0\x9f") == "x");
    CHECK(raw.push_bytes("\x98\x80y") == emoji + "y");
    // Sequences that cannot become valid are not held: E0 80 is overlong, ED A0 a surrogate,
    // F4 90 beyond U+10FFFF, a lone continuation byte, and F5.
    CHECK(utf8_incomplete_tail("\xe0\x80") == 0);
    CHECK(utf8_incomplete_tail("\xed\xa0") == 0);
    CHECK(utf8_incomplete_tail("\xf4\x90") == 0);
    CHECK(utf8_incomplete_tail("\x80") == 0);
    CHECK(utf8_incomplete_tail("\xf5") == 0);
    CHECK(utf8_incomplete_tail("\xe2\x82") == 2);
    CHECK(utf8_incomplete_tail("\xe2\x82\xac") == 0);
}

TEST_CASE("hand-worked byte-level BPE: merge ranks, leftmost ties, missing bytes") {
    auto r = tokenizer_from_writer(small_bpe_writer());
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    const Tokenizer& tok = *r;
    CHECK(tok.pre_tokenizer() == Tokenizer::PreTokenizer::gpt2);
    // "abc" -> a b c -> (a b: rank 0) ab c -> (ab c: rank 1) abc.
    // " ab" -> Ġ a b: (a b) rank 0 beats (Ġ a) rank 2, then (Ġ ab) has no merge.
    CHECK(tok.encode("abc ab", false, false) == std::vector<int32_t>{6, 4, 5});
    // " a" -> Ġa by merge rank 2.
    CHECK(tok.encode(" a", false, false) == std::vector<int32_t>{7});
    // Equal ranks merge leftmost first: a b a b -> ab a b -> ab ab.
    CHECK(tok.encode("abab", false, false) == std::vector<int32_t>{5, 5});
    // 'x' has no byte token: llama.cpp drops it.
    CHECK(tok.encode("xa", false, false) == std::vector<int32_t>{1});
    // Control token only with parse_special; as text it is split into pieces that are mostly missing.
    CHECK(tok.encode("<|endoftext|>", false, true) == std::vector<int32_t>{0});
    CHECK(tok.token_to_piece(7, false) == " a");
    // EOS (0) is end of generation; "<|endoftext|>" also by its text.
    CHECK(tok.eog_ids() == std::vector<int32_t>{0});
}

TEST_CASE("hand-worked pre-tokenizers: smollm digits, gpt-2, llama3 and qwen2 regexes") {
    // Byte-level spellings: Ġ = space, Ċ = newline.
    const std::string G = "\xc4\xa0", C = "\xc4\x8a";
    const std::vector<std::string> tokens = {
        "1", "2", "3", "4", "5", "12", "123", "45", "'", "S", "'S", C, C + C, G, "x", G + "x", "a", "b", "ab", G + "1"};
    auto id = [&](const std::string& t) {
        return static_cast<int32_t>(std::find(tokens.begin(), tokens.end(), t) - tokens.begin());
    };
    auto make = [&](const char* pre) {
        GgufWriter w;
        w.set_string("tokenizer.ggml.model", "gpt2");
        w.set_string("tokenizer.ggml.pre", pre);
        w.set_string_array("tokenizer.ggml.tokens", tokens);
        w.set_string_array("tokenizer.ggml.merges", {"1 2", "12 3", "4 5", "' S", C + " " + C, G + " x", G + " 1"});
        w.set_u32("tokenizer.ggml.bos_token_id", 0);
        auto r = tokenizer_from_writer(w);
        REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
        return std::move(r).value();
    };
    const std::string text = "12345'S\n\n  x";
    // GPT-2: digits stay one word; 'S is not a (case-sensitive) contraction; "\n\n  x" splits
    // as "\n\n " + " x" (\s+(?!\S) leaves one space for the word).
    const Tokenizer gpt2 = make("gpt-2");
    CHECK(gpt2.encode(text, false, false) ==
          std::vector<int32_t>{id("123"), id("45"), id("'"), id("S"), id(C + C), id(G), id(G + "x")});
    // Llama 3: digits in groups of three, case-insensitive contractions, "\s*[\r\n]+" ends at the newline.
    const Tokenizer llama3 = make("llama-bpe");
    CHECK(llama3.pre_tokenizer() == Tokenizer::PreTokenizer::llama3);
    CHECK(llama3.add_bos());
    CHECK(llama3.encode(text, false, false) ==
          std::vector<int32_t>{id("123"), id("45"), id("'S"), id(C + C), id(G), id(G + "x")});
    // Qwen2: single digits.
    const Tokenizer qwen2 = make("qwen2");
    CHECK(qwen2.encode(text, false, false) == std::vector<int32_t>{id("1"), id("2"), id("3"), id("4"), id("5"),
                                                                   id("'S"), id(C + C), id(G), id(G + "x")});
    // llama3 takes a word that is itself a token without merging (ignore_merges); qwen2 merges.
    CHECK(llama3.encode("ab", false, false) == std::vector<int32_t>{id("ab")});
    CHECK(qwen2.encode("ab", false, false) == std::vector<int32_t>{id("a"), id("b")});
    // smollm splits off every digit before the GPT-2 regex: no "12", no "Ġ1".
    const Tokenizer smollm = make("smollm");
    CHECK(smollm.encode("12 1", false, false) == std::vector<int32_t>{id("1"), id("2"), id(G), id("1")});
    CHECK(gpt2.encode("12 1", false, false) == std::vector<int32_t>{id("12"), id(G + "1")});
}

TEST_CASE("Unicode tables are 15.1 like llama.cpp's: U+2EBF0 (CJK extension I) is a letter") {
    // U+2EBF0 is F0 AE AF B0; those bytes are their own GPT-2 characters ð ® ¯ °.
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "gpt-2");
    w.set_string_array("tokenizer.ggml.tokens", {"'", "\xc3\xb0", "\xc2\xae", "\xc2\xaf", "\xc2\xb0", "'\xc3\xb0"});
    w.set_string_array("tokenizer.ggml.merges", {"' \xc3\xb0"});
    auto r = tokenizer_from_writer(w);
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    // As a letter it starts a new word after the punctuation run "'", so the merge "' ð"
    // cannot apply. (With Unicode 14 tables it is unassigned, joins "'", and merges.)
    CHECK(r->encode("'\xf0\xae\xaf\xb0", false, false) == std::vector<int32_t>{0, 1, 2, 3, 4});
    CHECK(r->token_text(-1).empty());
    CHECK(r->token_attributes(99) == token_attr::undefined);
}

TEST_CASE("hand-worked SentencePiece vocabulary: scores, space prefix, byte fallback") {
    auto r = tokenizer_from_writer(small_spm_writer());
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    const Tokenizer& tok = *r;
    CHECK(tok.model() == Tokenizer::Model::spm);
    CHECK(tok.add_bos());
    // "ab" -> "▁ab": pairs ▁a (-2) and ab (-1); ab wins, then ▁ ab -> ▁ab (-3).
    CHECK(tok.encode("ab", true, false) == std::vector<int32_t>{1, 8});
    CHECK(tok.encode("ab", false, false) == std::vector<int32_t>{8});
    // "x" -> "▁x": no token for "▁x" or "x": ▁ then the byte token <0x78>.
    CHECK(tok.encode("x", false, false) == std::vector<int32_t>{3, 9});
    // After a special token the text gets the space prefix again.
    CHECK(tok.encode("<s>a", false, true) == std::vector<int32_t>{1, 6});
    CHECK(tok.token_to_piece(8, false) == " ab");
    CHECK(tok.token_to_piece(9, false) == "x");
    CHECK(tok.token_to_piece(1, false) == "");
    CHECK(tok.token_to_piece(1, true) == "<s>");
    CHECK(tok.is_eog(2));
}

TEST_CASE("hostile vocabulary metadata gives a Status, never a crash") {
    auto expect_error = [](const GgufWriter& w, const char* must_contain) {
        auto r = tokenizer_from_writer(w);
        REQUIRE_FALSE(r.is_ok());
        CHECK_MESSAGE(r.status().message().find(must_contain) != std::string::npos, r.status().to_string());
    };
    {
        GgufWriter w = small_bpe_writer();
        w.set_i32_array("tokenizer.ggml.token_type", {3, 1, 1});
        expect_error(w, "token_type has 3 entries");
    }
    {
        GgufWriter w = small_bpe_writer();
        w.set_string_array("tokenizer.ggml.merges", {"a b", "ab zz"});
        expect_error(w, "'zz'");
    }
    {
        GgufWriter w = small_bpe_writer();
        w.set_string_array("tokenizer.ggml.merges", {"ab"});
        expect_error(w, "merges[0]");
    }
    {
        GgufWriter w = small_bpe_writer();
        w.set_u32("tokenizer.ggml.bos_token_id", 8);
        expect_error(w, "bos_token_id = 8");
    }
    {
        GgufWriter w = small_bpe_writer();
        w.set_i32("tokenizer.ggml.eos_token_id", -1);
        expect_error(w, "eos_token_id = -1");
    }
    {
        GgufWriter w = small_bpe_writer();
        w.set_i32_array("tokenizer.ggml.tokens", {1, 2, 3});
        expect_error(w, "tokenizer.ggml.tokens");
    }
    {
        GgufWriter w = small_bpe_writer();
        w.set_string_array("tokenizer.ggml.tokens", {"<|endoftext|>", "a", "b", "c", "\xc4\xa0", "ab", "abc", "a"});
        expect_error(w, "duplicates");
    }
    {
        GgufWriter w = small_bpe_writer();
        w.set_string("tokenizer.ggml.model", "bert");
        auto r = tokenizer_from_writer(w);
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.status().code() == StatusCode::unsupported);
    }
    {
        GgufWriter w = small_bpe_writer();
        w.set_string("tokenizer.ggml.pre", "no-such-pre");
        auto r = tokenizer_from_writer(w);
        test::check_error(r.status(), StatusCode::unsupported, "no-such-pre");
    }
    {
        GgufWriter w;  // no merges
        w.set_string("tokenizer.ggml.model", "gpt2");
        w.set_string("tokenizer.ggml.pre", "smollm");
        w.set_string_array("tokenizer.ggml.tokens", {"a"});
        expect_error(w, "tokenizer.ggml.merges");
    }
    {
        GgufWriter w = small_spm_writer();
        w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1, 1, 1, 1, 6});
        w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "c", "d", "e",
                                                     "<0xZZ>"});
        expect_error(w, "BYTE");
    }
    {
        GgufWriter w = small_spm_writer();
        w.set_f32_array("tokenizer.ggml.scores", {0, 0});
        expect_error(w, "scores has 2 entries");
    }
    {
        GgufWriter w = small_bpe_writer();
        w.set_bool("tokenizer.ggml.add_bos_token", true);
        w.set_string_array("tokenizer.ggml.tokens", {"<|endoftext|>", "a", "b", "c", "\xc4\xa0", "ab", "abc", "\xc4\xa0" "a"});
        // bos given explicitly is fine; add_bos with BOS present loads.
        CHECK(tokenizer_from_writer(w).is_ok());
    }
    {
        GgufWriter w;
        w.set_string("tokenizer.ggml.model", "gpt2");
        w.set_string("tokenizer.ggml.pre", "gpt-2");
        w.set_string_array("tokenizer.ggml.tokens", {"a"});
        w.set_string_array("tokenizer.ggml.merges", {});
        w.set_bool("tokenizer.ggml.add_bos_token", true);  // default BOS 11 is outside a 1-token vocab
        expect_error(w, "no BOS token");
    }
}

TEST_CASE("chat templates: detection by name and by template text, rendering, errors") {
    auto render = [](std::string_view name, std::string_view user) {
        auto t = ChatTemplate::detect(name);
        REQUIRE_MESSAGE(t.is_ok(), t.status().to_string());
        return t->format_user_turn(user);
    };
    // Formats from llama.cpp's llama-chat.cpp, written out by hand.
    CHECK(render("chatml", "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    CHECK(render("smolvlm", "<__media__>Describe this image.") ==
          "<|im_start|>User: <__media__>Describe this image.<end_of_utterance>\nAssistant:");
    CHECK(render("vicuna", "<__media__>Describe this image.") == "USER: <__media__>Describe this image.\nASSISTANT:");
    CHECK(render("vicuna-orca", "hi") == "USER: hi\nASSISTANT:");
    CHECK(render("llama2", "hi") == "[INST] hi [/INST]");
    CHECK(render("llama2-sys-strip", "  hi \n") == "[INST] hi [/INST]");
    CHECK(render("llama3", " hi ") == "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                                      "<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK(render("gemma", "hi") == "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n");
    CHECK(render("phi3", "hi") == "<|user|>\nhi<|end|>\n<|assistant|>\n");
    CHECK(render("mistral-v7", "hi") == "[INST] hi[/INST]");
    CHECK(render("deepseek", "hi") == "### Instruction:\nhi\n### Response:\n");

    // A system prompt with llama2-sys and smolvlm.
    auto sys = ChatTemplate::detect("llama2-sys");
    REQUIRE(sys.is_ok());
    CHECK(sys->apply({{"system", "S"}, {"user", "U"}}, true) == "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]");
    auto smol = ChatTemplate::detect("smolvlm");
    REQUIRE(smol.is_ok());
    CHECK(smol->apply({{"system", "S"}, {"user", "U"}, {"assistant", "A"}}, false) ==
          "<|im_start|>S\n\nUser: U<end_of_utterance>\nAssistant: A<end_of_utterance>\n");

    // Detection from template source text.
    CHECK(ChatTemplate::detect("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}")->name() == "chatml");
    CHECK(ChatTemplate::detect("<|im_start|>...<end_of_utterance>")->name() == "smolvlm");
    CHECK(ChatTemplate::detect("{{ 'USER: ' + x }}{{ 'ASSISTANT: ' }}")->name() == "vicuna");
    CHECK(ChatTemplate::detect("{{ 'USER: ' }}{{ 'ASSISTANT: ' }}{{ 'SYSTEM: ' }}")->name() == "vicuna-orca");
    CHECK(ChatTemplate::detect("[INST] <<SYS>> content.strip()")->name() == "llama2-sys-strip");
    CHECK(ChatTemplate::detect("<|start_header_id|>x<|end_header_id|>")->name() == "llama3");

    // The SmolVLM GGUF carries the HF template text.
    auto g = open_gguf(smolvlm_text_path());
    auto from_model = ChatTemplate::for_model(*g, "");
    REQUIRE_MESSAGE(from_model.is_ok(), from_model.status().to_string());
    CHECK(from_model->name() == "smolvlm");
    auto chatml = ChatTemplate::for_model(*g, "chatml");
    REQUIRE(chatml.is_ok());
    CHECK(chatml->name() == "chatml");

    // Unknown text, templates glimpse does not render, a model without a template.
    auto unknown = ChatTemplate::detect("{{ messages }}");
    test::check_error(unknown.status(), StatusCode::invalid_argument, "--chat-template");
    auto glm = ChatTemplate::detect("chatglm3");
    test::check_error(glm.status(), StatusCode::unsupported, "chatglm3");
    auto llava = open_gguf(llava_text_path());
    auto none = ChatTemplate::for_model(*llava, "");
    REQUIRE_FALSE(none.is_ok());
    CHECK(none.status().message().find("--chat-template") != std::string::npos);
    auto bad_arg = ChatTemplate::for_model(*llava, "not-a-template");
    REQUIRE_FALSE(bad_arg.is_ok());
    CHECK(bad_arg.status().message().find("--chat-template") != std::string::npos);
}
