#!/usr/bin/env python3
"""Describe an image (or answer a question about it) with glimpse from Python, through the C
interface (include/glimpse.h) and ctypes from the standard library: no packages to install.

    python3 examples/caption.py -m TEXT.gguf --mmproj MMPROJ.gguf --image IMG [-p PROMPT]
                                [-n N] [--temp T] [--seed S] [-t THREADS] [--lib libglimpse.so]

The answer is streamed to stdout; timings and memory go to stderr. The library is --lib, else
$GLIMPSE_LIBRARY, else build/capi/libglimpse.so beside this file's repository, else the
system's (an installed glimpse-vlm package).
"""
import argparse
import ctypes
import ctypes.util
import os
import sys


class ModelOptions(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int32), ("kv_type", ctypes.c_int32),
                ("chat_template", ctypes.c_char_p), ("pruning_plan_file", ctypes.c_char_p),
                ("prune_method", ctypes.c_char_p), ("prune_keep", ctypes.c_double),
                ("compact_positions", ctypes.c_int32)]


class GenerateOptions(ctypes.Structure):
    _fields_ = [("n_predict", ctypes.c_int32), ("temperature", ctypes.c_float), ("top_k", ctypes.c_int32),
                ("top_p", ctypes.c_float), ("min_p", ctypes.c_float), ("seed", ctypes.c_uint64)]


class Stats(ctypes.Structure):
    _fields_ = [("preprocess_ms", ctypes.c_double), ("encode_ms", ctypes.c_double),
                ("prefill_ms", ctypes.c_double), ("decode_ms", ctypes.c_double),
                ("n_prompt_tokens", ctypes.c_int64), ("n_image_tokens", ctypes.c_int64),
                ("n_image_tokens_in", ctypes.c_int64), ("n_image_chunks", ctypes.c_int64),
                ("n_generated", ctypes.c_int64), ("n_predict", ctypes.c_int32),
                ("stopped_at_eog", ctypes.c_int32), ("stopped_by_callback", ctypes.c_int32)]


class Memory(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in
                ("weights", "packed_weights", "file_weights", "vision_arena", "text_arena", "kv_cache",
                 "image_buffers", "total", "process_rss", "process_peak_rss")]


TEXT_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t, ctypes.c_void_p)


class GlimpseError(RuntimeError):
    pass


class Glimpse:
    """The C functions with their signatures declared (ctypes would otherwise guess int)."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        lib.glimpse_version.restype = ctypes.c_char_p
        lib.glimpse_status_name.restype = ctypes.c_char_p
        lib.glimpse_status_name.argtypes = [ctypes.c_int]
        lib.glimpse_last_error.restype = ctypes.c_char_p
        lib.glimpse_model_options_init.argtypes = [ctypes.POINTER(ModelOptions)]
        lib.glimpse_generate_options_init.argtypes = [ctypes.POINTER(GenerateOptions)]
        lib.glimpse_model_load.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ModelOptions),
                                           ctypes.POINTER(ctypes.c_void_p)]
        lib.glimpse_model_free.argtypes = [ctypes.c_void_p]
        lib.glimpse_ask_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                         ctypes.POINTER(GenerateOptions), TEXT_CALLBACK, ctypes.c_void_p,
                                         ctypes.POINTER(ctypes.c_void_p)]
        lib.glimpse_last_stats.argtypes = [ctypes.c_void_p, ctypes.POINTER(Stats)]
        lib.glimpse_memory_report.argtypes = [ctypes.c_void_p, ctypes.POINTER(Memory)]
        lib.glimpse_string_free.argtypes = [ctypes.c_void_p]
        for fn in (lib.glimpse_model_load, lib.glimpse_ask_file, lib.glimpse_last_stats, lib.glimpse_memory_report):
            fn.restype = ctypes.c_int
        self.lib = lib

    def check(self, status):
        if status != 0:
            name = self.lib.glimpse_status_name(status).decode()
            raise GlimpseError(f"{name}: {self.lib.glimpse_last_error().decode(errors='replace')}")


def find_library(explicit):
    if explicit:
        return explicit
    if os.environ.get("GLIMPSE_LIBRARY"):
        return os.environ["GLIMPSE_LIBRARY"]
    in_build = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "capi", "libglimpse.so")
    if os.path.exists(in_build):
        return in_build
    return ctypes.util.find_library("glimpse") or "libglimpse.so"


def main():
    ap = argparse.ArgumentParser(description="Caption an image with glimpse (ctypes example).")
    ap.add_argument("-m", required=True, help="text model GGUF")
    ap.add_argument("--mmproj", required=True, help="vision projector GGUF")
    ap.add_argument("--image", required=True)
    ap.add_argument("-p", default=None, help="question (default: the library's caption prompt)")
    ap.add_argument("-n", type=int, default=None, help="most tokens to generate")
    ap.add_argument("--temp", type=float, default=None, help="0: greedy")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("-t", type=int, default=0, help="threads (0: all usable CPUs)")
    ap.add_argument("--lib", default=None, help="path of libglimpse.so")
    args = ap.parse_args()

    g = Glimpse(find_library(args.lib))
    print(f"glimpse {g.lib.glimpse_version().decode()}", file=sys.stderr)
    model_options = ModelOptions()
    g.lib.glimpse_model_options_init(ctypes.byref(model_options))
    model_options.n_threads = args.t
    options = GenerateOptions()
    g.lib.glimpse_generate_options_init(ctypes.byref(options))
    if args.n is not None:
        options.n_predict = args.n
    if args.temp is not None:
        options.temperature = args.temp
    if args.seed is not None:
        options.seed = args.seed

    model = ctypes.c_void_p()
    try:
        g.check(g.lib.glimpse_model_load(args.m.encode(), args.mmproj.encode(), ctypes.byref(model_options),
                                         ctypes.byref(model)))
        out = sys.stdout.buffer

        def on_text(data, size, _user):
            out.write(ctypes.string_at(data, size))
            out.flush()
            return 0  # go on

        callback = TEXT_CALLBACK(on_text)  # kept referenced for the whole call
        answer = ctypes.c_void_p()
        g.check(g.lib.glimpse_ask_file(model, args.image.encode(), args.p.encode() if args.p is not None else None,
                                       ctypes.byref(options), callback, None, ctypes.byref(answer)))
        g.lib.glimpse_string_free(answer)  # the callback already printed it
        out.write(b"\n")
        out.flush()
        stats, memory = Stats(), Memory()
        g.check(g.lib.glimpse_last_stats(model, ctypes.byref(stats)))
        g.check(g.lib.glimpse_memory_report(model, ctypes.byref(memory)))
        print(f"encode {stats.encode_ms:.1f} ms, prefill {stats.prefill_ms:.1f} ms ({stats.n_prompt_tokens} tokens), "
              f"decode {stats.decode_ms:.1f} ms ({stats.n_generated} tokens); planned memory "
              f"{memory.total / 2**20:.1f} MiB, process RSS {memory.process_rss / 2**20:.1f} MiB", file=sys.stderr)
    except GlimpseError as e:
        print(f"caption.py: {e}", file=sys.stderr)
        return 1
    finally:
        g.lib.glimpse_model_free(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
