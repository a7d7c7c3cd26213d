/* caption: describe an image (or answer a question about it) through glimpse's C interface.
 *
 *   caption -m TEXT.gguf --mmproj MMPROJ.gguf --image IMG [-p PROMPT] [-n N] [--temp T]
 *           [--seed S] [-t THREADS] [--stop-after PIECES]
 *
 * The answer is streamed to stdout as it is generated; timings and memory go to stderr.
 * Build against an installed glimpse:  cc caption.c $(pkg-config --cflags --libs glimpse-c)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glimpse.h"

struct stream_state {
    long pieces;      /* pieces printed so far */
    long stop_after;  /* stop generating after this many pieces; < 0: never */
};

/* Prints each piece as it arrives; returning nonzero stops generation. */
static int print_piece(const char* bytes, size_t n_bytes, void* user_data) {
    struct stream_state* state = (struct stream_state*)user_data;
    if (fwrite(bytes, 1, n_bytes, stdout) != n_bytes || fflush(stdout) != 0) return 1; /* reader gone */
    state->pieces += 1;
    return state->stop_after >= 0 && state->pieces >= state->stop_after;
}

static int parse_long(const char* text, long* out) {
    char* end = NULL;
    errno = 0;
    *out = strtol(text, &end, 10);
    return errno == 0 && end != text && *end == '\0';
}

static int parse_float(const char* text, float* out) {
    char* end = NULL;
    errno = 0;
    *out = strtof(text, &end);
    return errno == 0 && end != text && *end == '\0';
}

static int usage(const char* msg) {
    fprintf(stderr,
            "caption: %s\nusage: caption -m TEXT.gguf --mmproj MMPROJ.gguf --image IMG [-p PROMPT] [-n N] "
            "[--temp T] [--seed S] [-t THREADS] [--stop-after PIECES]\n",
            msg);
    return 2;
}

int main(int argc, char** argv) {
    const char *text_path = NULL, *mmproj_path = NULL, *image_path = NULL, *prompt = NULL;
    glimpse_model_options model_options;
    glimpse_generate_options options;
    struct stream_state state = {0, -1};
    glimpse_model_options_init(&model_options);
    glimpse_generate_options_init(&options);

    for (int i = 1; i < argc; ++i) {
        const char* flag = argv[i];
        const char* value = i + 1 < argc ? argv[i + 1] : NULL;
        long number = 0;
        if (!value) return usage("every option takes a value");
        ++i;
        if (!strcmp(flag, "-m")) text_path = value;
        else if (!strcmp(flag, "--mmproj")) mmproj_path = value;
        else if (!strcmp(flag, "--image")) image_path = value;
        else if (!strcmp(flag, "-p")) prompt = value;
        else if (!strcmp(flag, "--temp") && parse_float(value, &options.temperature)) continue;
        else if (!strcmp(flag, "-n") && parse_long(value, &number)) options.n_predict = (int32_t)number;
        else if (!strcmp(flag, "--seed") && parse_long(value, &number)) options.seed = (uint64_t)number;
        else if (!strcmp(flag, "-t") && parse_long(value, &number)) model_options.n_threads = (int32_t)number;
        else if (!strcmp(flag, "--stop-after") && parse_long(value, &number)) state.stop_after = number;
        else return usage("unknown option or bad number");
    }
    if (!text_path || !mmproj_path || !image_path) return usage("-m, --mmproj and --image are required");

    fprintf(stderr, "glimpse %s\n", glimpse_version());
    glimpse_model* model = NULL;
    if (glimpse_model_load(text_path, mmproj_path, &model_options, &model) != GLIMPSE_OK) {
        fprintf(stderr, "caption: %s\n", glimpse_last_error());
        return 1;
    }
    /* The answer is printed by the callback as it streams; it is not needed again here. */
    glimpse_status status = glimpse_ask_file(model, image_path, prompt, &options, print_piece, &state, NULL);
    if (status != GLIMPSE_OK) {
        fprintf(stderr, "caption: %s: %s\n", glimpse_status_name(status), glimpse_last_error());
        glimpse_model_free(model);
        return 1;
    }
    putchar('\n');

    glimpse_stats stats;
    glimpse_memory memory;
    if (glimpse_last_stats(model, &stats) == GLIMPSE_OK && glimpse_memory_report(model, &memory) == GLIMPSE_OK) {
        fprintf(stderr,
                "preprocess %.1f ms, encode %.1f ms, prefill %.1f ms (%lld tokens), decode %.1f ms (%lld tokens)%s\n",
                stats.preprocess_ms, stats.encode_ms, stats.prefill_ms, (long long)stats.n_prompt_tokens,
                stats.decode_ms, (long long)stats.n_generated,
                stats.stopped_by_callback ? ", stopped by the callback" : "");
        fprintf(stderr, "memory: planned %.1f MiB, process RSS %.1f MiB (peak %.1f MiB)\n",
                memory.total / 1048576.0, memory.process_rss / 1048576.0, memory.process_peak_rss / 1048576.0);
    }
    glimpse_model_free(model);
    return fflush(stdout) == 0 ? 0 : 1;
}
