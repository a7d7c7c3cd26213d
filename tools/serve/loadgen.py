#!/usr/bin/env python3
"""Load generator for `glimpse serve` (docs/serve.md), Python standard library only.

Sends POST /v1/chat/completions with one image (a data: URI) from C concurrent clients, each
waiting for its answer before sending the next, and reports requests/s and latency
percentiles per concurrency level. With --rss-pid it also reads the server's resident memory
(/proc/PID/status VmRSS) after given request counts, sending those requests one at a time.

  tools/serve/loadgen.py --port 8080 --image models/bundled/samples/1000000.png \
      --concurrency 1,2,3,4 --requests 100
  tools/serve/loadgen.py --port 8080 --image IMG --rss-pid PID --rss-at 10,1000

Talks to 127.0.0.1 (or --host) only; every loop is bounded by --requests / --rss-at.
"""
import argparse
import base64
import http.client
import json
import sys
import threading
import time


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(round(p / 100.0 * len(sorted_values) + 0.5 - 1e-9)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def make_body(image_path, prompt, max_tokens, temperature):
    with open(image_path, "rb") as f:
        data = f.read()
    kind = "png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "jpeg"
    url = "data:image/%s;base64,%s" % (kind, base64.b64encode(data).decode("ascii"))
    return json.dumps({
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": prompt}]}],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": 1,
    }).encode("utf-8")


def one_request(host, port, body, timeout):
    """Seconds taken and completion tokens; raises on anything but 200."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - t0
    if resp.status != 200:
        raise RuntimeError("HTTP %d: %s" % (resp.status, payload[:200]))
    return elapsed, json.loads(payload)["usage"]["completion_tokens"]


def run_level(host, port, body, clients, n_requests, timeout):
    latencies, tokens, errors = [], [], []
    lock = threading.Lock()
    next_index = [0]

    def worker():
        while True:
            with lock:
                if next_index[0] >= n_requests:
                    return
                next_index[0] += 1
            try:
                seconds, n_tok = one_request(host, port, body, timeout)
                with lock:
                    latencies.append(seconds)
                    tokens.append(n_tok)
            except Exception as e:  # reported, not fatal: the summary counts them
                with lock:
                    errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": wall,
        "requests_per_s": len(latencies) / wall if wall > 0 else 0.0,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
        "max_ms": 1000 * latencies[-1] if latencies else float("nan"),
        "mean_completion_tokens": sum(tokens) / len(tokens) if tokens else 0.0,
    }


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--image", required=True, help="PNG or JPEG sent with every request")
    ap.add_argument("--prompt", default="Describe this image.")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--concurrency", default="1,2,3,4", help="comma-separated client counts")
    ap.add_argument("--requests", type=int, default=100, help="requests per concurrency level")
    ap.add_argument("--warmup", type=int, default=3, help="requests sent (and not counted) before each level")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--rss-pid", type=int, help="the server's pid: measure its RSS instead of throughput")
    ap.add_argument("--rss-at", default="10,1000", help="request counts after which RSS is read")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    if args.requests < 1 or args.requests > 100000:
        ap.error("--requests must be in [1, 100000]")
    body = make_body(args.image, args.prompt, args.max_tokens, args.temperature)

    if args.rss_pid:
        marks = sorted(int(x) for x in args.rss_at.split(","))
        if not marks or marks[0] < 1 or marks[-1] > 100000:
            ap.error("--rss-at counts must be in [1, 100000]")
        report, sent = [], 0
        for mark in marks:
            while sent < mark:
                one_request(args.host, args.port, body, args.timeout)
                sent += 1
            report.append({"requests": sent, "rss_kib": rss_kib(args.rss_pid)})
            if not args.json:
                print("after %6d requests: RSS %.1f MiB" % (sent, report[-1]["rss_kib"] / 1024.0), flush=True)
        if args.json:
            print(json.dumps(report))
        return 0

    results = []
    for clients in (int(x) for x in args.concurrency.split(",")):
        for _ in range(args.warmup):
            one_request(args.host, args.port, body, args.timeout)
        results.append(run_level(args.host, args.port, body, clients, args.requests, args.timeout))
        r = results[-1]
        if not args.json:
            if len(results) == 1:
                print("clients  requests  errors    req/s   p50 ms   p95 ms   max ms  tokens/answer")
            print("%7d  %8d  %6d  %7.2f  %7.1f  %7.1f  %7.1f  %13.1f" % (
                r["clients"], r["requests"], r["errors"], r["requests_per_s"], r["p50_ms"], r["p95_ms"],
                r["max_ms"], r["mean_completion_tokens"]), flush=True)
            if r["first_error"]:
                print("  first error: %s" % r["first_error"], file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=1))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
