/* glimpse.h: the C interface of glimpse (libglimpse.so), for programs in C, C++, Python (ctypes),
 * Go (cgo) and anything else that can call C.
 *
 *   glimpse_model* model = NULL;
 *   if (glimpse_model_load("text.gguf", "mmproj.gguf", NULL, &model) != GLIMPSE_OK) {
 *       fprintf(stderr, "%s\n", glimpse_last_error());
 *       return 1;
 *   }
 *   char* answer = NULL;
 *   if (glimpse_ask_file(model, "photo.jpg", NULL, NULL, NULL, NULL, &answer) == GLIMPSE_OK) puts(answer);
 *   glimpse_string_free(answer);
 *   glimpse_model_free(model);
 *
 * Conventions
 *   - Every call that can fail returns a glimpse_status; GLIMPSE_OK (0) is success. The message
 *     of the last call on the calling thread is glimpse_last_error(). No C++ exception crosses
 *     this interface, and no call exits or prints.
 *   - Bad input (NULL pointers, zero or oversized images, a stride shorter than a row, an
 *     undecodable file, a prompt longer than the model's context, options out of range) is an
 *     error status with a message, never a crash.
 *   - Objects are opaque handles created by *_load / freed by *_free. Strings returned to the
 *     caller are malloc'd by the library and freed with glimpse_string_free.
 *   - Options structs are filled with defaults by their *_init function first, then changed;
 *     a NULL options pointer means the defaults.
 *
 * Thread safety
 *   A glimpse_model is one model pair together with its compiled plans, KV cache and thread
 *   pool, and every ask writes to them: calls on one model must not overlap (use it from one
 *   thread at a time, or lock around it; the library does not lock). Different models are
 *   independent and may be used concurrently from different threads (each loads its own
 *   copy of the weights; the file pages are shared by the OS). glimpse_last_error() is per
 *   thread. glimpse_version(), glimpse_status_name() and the *_init functions may be called
 *   from any thread at any time.
 *
 * Memory
 *   A model plans its memory when it loads and when a prompt is longer than any before it;
 *   asking about many images of the same size reuses the same buffers, so the process's
 *   memory stays flat (glimpse_memory_report).
 *
 * Versioning
 *   glimpse_version() is the library's version; GLIMPSE_VERSION_* the header's. While the major
 *   version is 0, a new minor version may change this interface and its binary layout; the
 *   shared library's SONAME (libglimpse.so.MAJOR.MINOR) changes with it.
 */
#ifndef GLIMPSE_H
#define GLIMPSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GLIMPSE_API __attribute__((visibility("default")))
#else
#define GLIMPSE_API
#endif

#define GLIMPSE_VERSION_MAJOR 0
#define GLIMPSE_VERSION_MINOR 1
#define GLIMPSE_VERSION_PATCH 0

typedef enum glimpse_status {
    GLIMPSE_OK = 0,
    GLIMPSE_INVALID_ARGUMENT = 1,   /* a NULL pointer, a value out of range, a bad stride */
    GLIMPSE_PARSE_ERROR = 2,        /* a file's bytes do not follow its format (GGUF, image, plan) */
    GLIMPSE_IO_ERROR = 3,           /* a file cannot be opened or read, or changed while mapped */
    GLIMPSE_UNSUPPORTED = 4,        /* valid input glimpse does not implement */
    GLIMPSE_OUT_OF_RANGE = 5,       /* a size beyond a limit: e.g. a prompt longer than the context */
    GLIMPSE_RESOURCE_EXHAUSTED = 6, /* out of memory, or a budget that cannot be met */
    GLIMPSE_INTERNAL = 7            /* a bug in glimpse */
} glimpse_status;

typedef enum glimpse_kv_type {
    GLIMPSE_KV_F16 = 0, /* default, as llama.cpp */
    GLIMPSE_KV_F32 = 1
} glimpse_kv_type;

/* A loaded model pair (text GGUF + mmproj GGUF) with its plans. Opaque. */
typedef struct glimpse_model glimpse_model;

typedef struct glimpse_model_options {
    int32_t n_threads;              /* 0: the CPUs this process may use; 1..1024, clamped to them */
    int32_t kv_type;                /* a glimpse_kv_type: KV-cache storage; default GLIMPSE_KV_F16 */
    const char* chat_template;      /* a built-in name or template text; NULL: the model's own */
    /* Visual-token pruning (docs/pruning.md): either a plan file, or a method with a keep
     * fraction in (0, 1] (or a count > 1); NULL: no pruning. Not both. */
    const char* pruning_plan_file;
    const char* prune_method;       /* random, uniform, divprune, dart, fastervlm, attn-received */
    double prune_keep;
    int32_t compact_positions;      /* nonzero: renumber kept image rows (default 0: original ids) */
} glimpse_model_options;

typedef struct glimpse_generate_options {
    int32_t n_predict;   /* most tokens to generate (default 256); cut to what the context leaves */
    float temperature;   /* default 0.2 (llama-mtmd-cli's); 0 is greedy and deterministic */
    int32_t top_k;       /* default 40 */
    float top_p;         /* default 0.95, in (0, 1] */
    float min_p;         /* default 0.05, in [0, 1) */
    uint64_t seed;       /* sampling seed; default 0 (the same answer for the same input) */
} glimpse_generate_options;

/* Called with each piece of the answer as it is generated (UTF-8 bytes, not NUL-terminated).
 * Return 0 to go on, nonzero to stop generating: the ask then returns GLIMPSE_OK with the
 * answer so far (including this piece) and glimpse_stats.stopped_by_callback set. */
typedef int (*glimpse_text_callback)(const char* bytes, size_t n_bytes, void* user_data);

typedef struct glimpse_stats {
    double preprocess_ms;   /* image decode + resize/normalise + prompt tokenisation */
    double encode_ms;       /* vision encoder + projector */
    double prefill_ms;      /* the prompt through the text model */
    double decode_ms;       /* token generation */
    int64_t n_prompt_tokens;      /* prompt positions, image positions included */
    int64_t n_image_tokens;       /* image positions in the prompt (after pruning) */
    int64_t n_image_tokens_in;    /* visual tokens before pruning */
    int64_t n_image_chunks;       /* encoder runs (tiles + overview) */
    int64_t n_generated;          /* tokens generated */
    int32_t n_predict;            /* the token budget used (n_predict cut to the context) */
    int32_t stopped_at_eog;       /* the model ended its answer */
    int32_t stopped_by_callback;  /* the callback returned nonzero */
} glimpse_stats;

typedef struct glimpse_memory {
    /* Planned bytes of the model, by region (the last ask's plans, or the load's). */
    int64_t weights;          /* resident weights: repacked for the kernels + used in place */
    int64_t packed_weights;   /* of which repacked */
    int64_t file_weights;     /* the same tensors as stored in the files (not in total) */
    int64_t vision_arena;     /* encoder activations + scratch */
    int64_t text_arena;       /* decoder activations + scratch */
    int64_t kv_cache;
    int64_t image_buffers;    /* preprocessed tiles + image embeddings of the last ask */
    int64_t total;            /* weights + arenas + KV cache + image buffers */
    /* The whole process, as the OS counts it (Linux /proc/self/statm, getrusage); 0 if unknown. */
    int64_t process_rss;
    int64_t process_peak_rss;
} glimpse_memory;

/* "0.1.0": the library's version (compare GLIMPSE_VERSION_* of the header you compiled with). */
GLIMPSE_API const char* glimpse_version(void);
/* "ok", "invalid_argument", ... for a glimpse_status; "unknown" for any other value (an int, so that
 * any value a caller holds can be passed). */
GLIMPSE_API const char* glimpse_status_name(int status);
/* The message of the last glimpse call on this thread that returned a status: "" after a
 * success. Valid until the next such call on this thread. Never NULL. */
GLIMPSE_API const char* glimpse_last_error(void);

GLIMPSE_API void glimpse_model_options_init(glimpse_model_options* options);
GLIMPSE_API void glimpse_generate_options_init(glimpse_generate_options* options);

/* Loads a model pair and compiles its plans. *model is set on success and NULL otherwise.
 * options may be NULL (defaults). */
GLIMPSE_API glimpse_status glimpse_model_load(const char* text_model_path, const char* mmproj_path,
                                              const glimpse_model_options* options, glimpse_model** model);
/* Frees a model; NULL is ignored. */
GLIMPSE_API void glimpse_model_free(glimpse_model* model);

/* Asks about one image: prompt NULL captions it ("Describe this image."). The answer is
 * streamed to on_text (may be NULL) and, if answer is not NULL, returned in *answer (malloc'd,
 * NUL-terminated; free with glimpse_string_free; NULL on error). options may be NULL.
 * The same model, image, prompt and options give the same answer as `glimpse caption`. */
GLIMPSE_API glimpse_status glimpse_ask_file(glimpse_model* model, const char* image_path, const char* prompt,
                                            const glimpse_generate_options* options, glimpse_text_callback on_text,
                                            void* user_data, char** answer);
/* The same for 8-bit RGB pixels in memory: row y starts at rgb + y * stride_bytes and holds
 * width R,G,B triples (stride_bytes >= 3 * width; padding bytes are not read). The pixels are
 * read during the call only; the caller keeps ownership. */
GLIMPSE_API glimpse_status glimpse_ask_rgb(glimpse_model* model, const uint8_t* rgb, int32_t width, int32_t height,
                                           size_t stride_bytes, const char* prompt,
                                           const glimpse_generate_options* options, glimpse_text_callback on_text,
                                           void* user_data, char** answer);

/* Timings and token counts of the model's last successful ask. */
GLIMPSE_API glimpse_status glimpse_last_stats(const glimpse_model* model, glimpse_stats* stats);
/* The model's planned memory and the process's resident memory now. */
GLIMPSE_API glimpse_status glimpse_memory_report(const glimpse_model* model, glimpse_memory* memory);

/* Frees a string the library returned; NULL is ignored. */
GLIMPSE_API void glimpse_string_free(char* text);

#ifdef __cplusplus
}
#endif

#endif /* GLIMPSE_H */
