#include "tools/tune/tune.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>

#include "ops/matmul.h"
#include "quant/quantize.h"
#include "runtime/aligned_buffer.h"
#include "runtime/dtype.h"
#include "runtime/gguf.h"
#include "runtime/threadpool.h"
#include "tools/common/args.h"

namespace glimpse::tools {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
    const size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

Result<std::vector<TuneShape>> model_tune_shapes(const std::string& path) {
    GLIMPSE_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> f, GgufFile::open(path));
    GLIMPSE_ASSIGN_OR_RETURN(std::string_view arch, f->get_string_or("general.architecture", ""));
    const bool mmproj = arch == "clip";
    std::vector<TuneShape> out;
    auto add = [&](DType t, int64_t M, int64_t K, int64_t N, const std::string& name) {
        for (TuneShape& s : out) {
            if (s.w_type == t && s.M == M && s.K == K && s.N == N) {
                ++s.count;
                return;
            }
        }
        out.push_back({t, M, K, N, 1, name});
    };
    int64_t patches = 0, merged = 0;
    if (mmproj) {
        GLIMPSE_ASSIGN_OR_RETURN(int64_t image, f->get_int("clip.vision.image_size"));
        GLIMPSE_ASSIGN_OR_RETURN(int64_t patch, f->get_int("clip.vision.patch_size"));
        GLIMPSE_CHECK_OR_RETURN(image > 0 && patch > 0 && image % patch == 0 && image / patch <= 1024, invalid_argument,
                                "%s: image_size %lld / patch_size %lld is not a patch grid", path.c_str(),
                                static_cast<long long>(image), static_cast<long long>(patch));
        patches = (image / patch) * (image / patch);
        GLIMPSE_ASSIGN_OR_RETURN(int64_t scale, f->get_int_or("clip.vision.projector.scale_factor", 1));
        merged = scale > 1 && patches % (scale * scale) == 0 ? patches / (scale * scale) : patches;
        if (f->find_tensor("v.class_embd")) patches += 1;
    }
    const bool tied = !mmproj && !f->find_tensor("output.weight");
    for (const GgufTensor& t : f->tensors()) {
        if (t.n_dims != 2 || !ends_with(t.name, ".weight")) continue;
        if (!select_matmul_kernel(t.type, 1, t.ne[0], t.ne[1])) continue;  // a type no matmul reads
        const int64_t K = t.ne[0], N = t.ne[1];
        if (mmproj) {
            if (starts_with(t.name, "v.blk.")) add(t.type, patches, K, N, t.name);
            else if (starts_with(t.name, "mm.")) add(t.type, merged, K, N, t.name);
        } else if (t.name == "output.weight" || (tied && t.name == "token_embd.weight")) {
            add(t.type, 1, K, N, t.name);
        } else if (starts_with(t.name, "blk.")) {
            add(t.type, 1, K, N, t.name);
            add(t.type, 512, K, N, t.name);
        }
    }
    return out;
}

namespace {

// Random weights of type t, (N, K), from uniform f32 values (quantized with ggml's rounding).
std::vector<uint8_t> random_weights(DType t, int64_t N, int64_t K, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> row(static_cast<size_t>(K));
    const int64_t row_bytes = dtype_row_bytes(t, K);
    std::vector<uint8_t> w(static_cast<size_t>(row_bytes * N));
    for (int64_t n = 0; n < N; ++n) {
        for (float& v : row) v = u(rng);
        quantize_row(t, row.data(), w.data() + n * row_bytes, K);  // f32, f16 and bf16 too
    }
    return w;
}

struct Prepared {
    const MatmulKernel* kernel;
    const TuneShape* shape;
    std::vector<uint8_t> w;
    uint8_t* packed = nullptr;
    uint8_t* scratch = nullptr;
    std::vector<float> x, y, bias;
    ~Prepared() {
        aligned_buffer_free(packed);
        aligned_buffer_free(scratch);
    }
};

double run_ms(Prepared& p, ThreadPool* pool) {
    const MatmulArgs a = dense_matmul_args(*p.kernel, p.x.data(), p.w.data(), p.packed, p.bias.data(), p.y.data(),
                                           p.scratch, p.shape->M, p.shape->K, p.shape->N);
    const auto t0 = std::chrono::steady_clock::now();
    p.kernel->run(a, pool);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Group {
    DType w_type;
    MatmulShapeClass shape;
    std::vector<const TuneShape*> shapes;
};

}  // namespace

int tune_command(const std::string& program, int argc, char** argv) {
    ArgParser args(program, "-m TEXT.gguf [--mmproj MMPROJ.gguf] [options]",
                   "Times every matmul kernel this CPU can run on the model's own matrix shapes (interleaved rounds,\n"
                   "best of each) and writes the fastest per weight type and shape class (decode, small, large) to a\n"
                   "decision file that glimpse uses from then on. Run it once per machine and glimpse build; the file\n"
                   "is keyed by CPU model and the build's kernel set, and ignored anywhere else.");
    args.option("-m,--model", "FILE", "text model GGUF");
    args.option("--mmproj", "FILE", "vision projector GGUF");
    args.option("-t,--threads", "N", "threads (default: the CPUs this process may use)");
    args.option("-o,--out", "FILE", "where to write (default: the per-user cache file glimpse reads by default)");
    args.option("--rounds", "N", "timing rounds per candidate, interleaved (best of N)", "5");
    args.flag("--fast", "also consider coarser-numerics kernels (applied only with GLIMPSE_MATMUL_DECISIONS=fast)");
    args.flag("--dry-run", "measure and report, write nothing");
    std::string error;
    if (!args.parse(argc, argv, &error)) {
        std::fprintf(stderr, "%s: %s\n", program.c_str(), error.c_str());
        return 2;
    }
    if (args.has("--help")) {
        std::fputs(args.help().c_str(), stdout);
        return 0;
    }
    if (!args.has("--model") && !args.has("--mmproj")) {
        std::fprintf(stderr, "%s: give -m TEXT.gguf and/or --mmproj MMPROJ.gguf (see --help)\n", program.c_str());
        return 2;
    }
    int64_t threads = 0, rounds = 5;
    if (!args.get_int("--threads", 0, 1024, &threads, &error) || !args.get_int("--rounds", 1, 100, &rounds, &error)) {
        std::fprintf(stderr, "%s: %s\n", program.c_str(), error.c_str());
        return 2;
    }
    if (threads == 0) threads = usable_cpu_count();
    const std::string out_path = args.has("--out") ? args.get("--out") : default_matmul_decisions_path();
    if (out_path.empty() && !args.has("--dry-run")) {
        std::fprintf(stderr, "%s: no default location (neither XDG_CACHE_HOME nor HOME is set): give --out FILE\n",
                     program.c_str());
        return 2;
    }

    std::vector<TuneShape> shapes;
    for (const char* opt : {"--model", "--mmproj"}) {
        if (!args.has(opt)) continue;
        Result<std::vector<TuneShape>> s = model_tune_shapes(args.get(opt));
        if (!s.is_ok()) {
            std::fprintf(stderr, "%s: %s\n", program.c_str(), s.status().message().c_str());
            return 1;
        }
        shapes.insert(shapes.end(), s->begin(), s->end());
    }
    std::vector<Group> groups;
    for (const TuneShape& s : shapes) {
        const MatmulShapeClass c = matmul_shape_class(s.M, s.K, s.N);
        if (c == MatmulShapeClass::tiny) continue;  // never decided (ops/matmul_registry.cpp)
        auto g = std::find_if(groups.begin(), groups.end(),
                              [&](const Group& x) { return x.w_type == s.w_type && x.shape == c; });
        if (g == groups.end()) groups.push_back({s.w_type, c, {&s}});
        else g->shapes.push_back(&s);
    }

    ThreadPool pool(static_cast<int>(threads));
    std::mt19937 rng(27);
    MatmulDecisionFile file = matmul_decisions_for_this_machine(static_cast<int>(threads));
    std::fprintf(stderr, "%s: %s, level %s, %lld threads, kernel set %s\n", program.c_str(), file.cpu_model.c_str(),
                 isa_name(file.isa), static_cast<long long>(threads), file.kernel_set.c_str());
    for (const Group& g : groups) {
        // The priority choice for the group's largest shape is what the policy is judged against.
        const TuneShape* big = *std::max_element(g.shapes.begin(), g.shapes.end(), [](const TuneShape* a, const TuneShape* b) {
            return a->M * a->K * a->N < b->M * b->K * b->N;
        });
        const MatmulKernel* prio = priority_matmul_kernel(g.w_type, big->M, big->K, big->N);
        if (!prio) continue;
        std::vector<const MatmulKernel*> candidates;
        for (const MatmulKernel* k : matmul_kernels()) {
            if (k->w_type != g.w_type || !isa_usable(k->isa) || (k->available && !k->available())) continue;
            // Double-precision oracles are never fast; portable scalar kernels only where the
            // priority choice is one (their timing rounds would take minutes on encoder shapes).
            if (k->priority == KernelPriority::reference) continue;
            if (k->priority == KernelPriority::scalar && prio->priority > KernelPriority::scalar) continue;
            bool all = true;
            for (const TuneShape* s : g.shapes) all = all && (!k->supports || k->supports(s->M, s->K, s->N));
            if (!all) continue;
            if (!args.has("--fast") && matmul_policy_of(*k, *prio) != MatmulPolicy::exact) continue;
            candidates.push_back(k);
        }
        if (candidates.size() < 2) continue;
        // Prepare every (candidate, shape) once: weights packed, buffers, scratch.
        std::vector<std::vector<std::unique_ptr<Prepared>>> prep(candidates.size());
        std::map<const TuneShape*, std::vector<uint8_t>> weights;
        for (const TuneShape* s : g.shapes) weights[s] = random_weights(g.w_type, s->N, s->K, rng);
        for (size_t c = 0; c < candidates.size(); ++c) {
            for (const TuneShape* s : g.shapes) {
                auto p = std::make_unique<Prepared>();
                p->kernel = candidates[c];
                p->shape = s;
                p->w = weights[s];
                if (p->kernel->pack) {
                    p->packed = aligned_buffer_alloc(static_cast<size_t>(p->kernel->packed_bytes(s->N, s->K)));
                    p->kernel->pack(p->w.data(), s->N, s->K, p->packed);
                }
                if (p->kernel->scratch_bytes) {
                    p->scratch = aligned_buffer_alloc(
                        static_cast<size_t>(p->kernel->scratch_bytes(s->M, s->K, s->N, static_cast<int>(threads))) + 64);
                }
                p->x.resize(static_cast<size_t>(s->M * s->K));
                for (size_t i = 0; i < p->x.size(); ++i) p->x[i] = static_cast<float>((i * 7919) % 2001) / 1000.0f - 1.0f;
                p->y.resize(static_cast<size_t>(s->M * s->N));
                p->bias.assign(static_cast<size_t>(s->N), 0.25f);
                run_ms(*p, &pool);  // warm-up (first-touch, library JIT)
                prep[c].push_back(std::move(p));
            }
        }
        // Rounds interleave the candidates, so a burst of load from elsewhere hits them alike;
        // each candidate keeps its best round. Total = Σ count · time over the group's shapes.
        std::vector<double> best(candidates.size(), 1e300);
        for (int64_t r = 0; r < rounds; ++r) {
            for (size_t c = 0; c < candidates.size(); ++c) {
                double total = 0;
                for (auto& p : prep[c]) total += p->shape->count * run_ms(*p, &pool);
                best[c] = std::min(best[c], total);
            }
        }
        std::vector<size_t> order(candidates.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return best[a] < best[b]; });
        std::fprintf(stderr, "  %s %s (%zu shapes, e.g. %s %lldx%lldx%lld):\n", dtype_name(g.w_type),
                     matmul_shape_class_name(g.shape), g.shapes.size(), big->example.c_str(),
                     static_cast<long long>(big->M), static_cast<long long>(big->K), static_cast<long long>(big->N));
        for (size_t i : order) {
            std::fprintf(stderr, "    %-28s %9.2f ms%s\n", candidates[i]->name, best[i],
                         candidates[i] == prio ? "  (priority choice)" : "");
        }
        MatmulDecision d;
        d.w_type = g.w_type;
        d.shape = g.shape;
        d.kernel = candidates[order[0]]->name;
        d.policy = matmul_policy_of(*candidates[order[0]], *prio);
        d.ms = best[order[0]];
        d.runner_up = candidates[order[1]]->name;
        d.runner_up_ms = best[order[1]];
        file.decisions.push_back(d);
    }
    if (args.has("--dry-run")) {
        std::fputs(matmul_decisions_to_json(file).c_str(), stdout);
        return 0;
    }
    if (Status s = write_matmul_decisions(out_path, file); !s.is_ok()) {
        std::fprintf(stderr, "%s: %s\n", program.c_str(), s.message().c_str());
        return 1;
    }
    std::fprintf(stderr, "%s: wrote %zu decisions to %s\n", program.c_str(), file.decisions.size(), out_path.c_str());
    return 0;
}

}  // namespace glimpse::tools
