#!/usr/bin/env python3
"""Counts the aarch64 instructions of one phase of a program (e.g. one vision-encoder pass) under
qemu-user, per emulated CPU model: glimpse's proxy for ARM speed where no board is reachable.

The program runs under qemu-aarch64 with icount_plugin.c loaded; the plugin records the
instruction count at every write(2). The phase is what runs between the write of a stdout/stderr
line matching --start and the write of the next line matching --stop.

  encode_icount.py --cpu cortex-a76 --start 'warm-up: vision plan' --stop 'encoded chunk 1/' \\
      -- build-rpi4/tools/bench/glimpse-bench e2e -m T.gguf --mmproj M.gguf --image I.jpg -n 1 -t 1
  encode_icount.py --cpu cortex-a76 --start 'encoding image slice' --stop 'image slice encoded' \\
      -- llama-mtmd-cli -m T.gguf --mmproj M.gguf --image I.jpg -p hi -n 1 -t 1 -v
  encode_icount.py --self-test      # the plugin counts a loop of known length exactly

Run the program with ONE compute thread: the plugin's counter is not atomic across guest threads.
Limits of the proxy: it counts instructions, not cycles. It knows nothing of a core's issue width,
latencies, caches or memory bandwidth; a 128-bit NEON instruction and a scalar add count the same;
qemu's CPU model only decides which features (dotprod, i8mm, ...) the program may use.
JSON result on stdout: {"cpu", "phases": [instructions, ...], "total"} (total: the whole run's count,
null when --stop-after ended it).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def build_plugin(out_dir):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        sys.exit("encode_icount: no host C compiler (cc) to build the qemu plugin")
    so = os.path.join(out_dir, "libicount.so")
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o", so,
                    os.path.join(HERE, "icount_plugin.c")], check=True)
    return so


def count_matches(path, regex):
    with open(path, "rb") as f:
        return sum(1 for line in f.read().decode(errors="replace").splitlines() if regex.search(line))


def run_counted(cmd, cpu, work, stop_re=None, stop_after=0):
    """Runs cmd under qemu-aarch64 -cpu CPU with the plugin; returns (marks, total, {fd: bytes}).
    With stop_after > 0 the program is killed once stop_re has matched that many output lines
    (a pass of a big encoder takes minutes under qemu: no need to run the rest)."""
    qemu = shutil.which("qemu-aarch64")
    if not qemu:
        sys.exit("encode_icount: qemu-aarch64 not found (apt-get install qemu-user)")
    marks_path = os.path.join(work, "marks.txt")
    env = dict(os.environ)
    env.setdefault("QEMU_LD_PREFIX", "/usr/aarch64-linux-gnu")
    outs = {1: os.path.join(work, "stdout"), 2: os.path.join(work, "stderr")}
    with open(outs[1], "wb") as o, open(outs[2], "wb") as e:
        proc = subprocess.Popen([qemu, "-cpu", cpu, "-plugin", build_plugin(work) + ",out=" + marks_path] + cmd,
                                stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env)
        while True:
            try:
                rc = proc.wait(timeout=2)
                break
            except subprocess.TimeoutExpired:
                pass
            if stop_after > 0 and sum(count_matches(p, stop_re) for p in outs.values()) >= stop_after:
                proc.kill()
                proc.wait()
                rc = 0  # stopped on purpose
                break
    streams = {fd: open(p, "rb").read() for fd, p in outs.items()}
    if rc != 0:
        sys.stderr.write(streams[2].decode(errors="replace")[-2000:])
        sys.exit(f"encode_icount: the program exited with {rc} under qemu -cpu {cpu}")
    marks, total = [], None
    for line in open(marks_path):
        f = line.split()
        if f[0] == "total":
            total = int(f[1])
        else:
            marks.append((int(f[0]), int(f[1]), int(f[2]), len(f) > 3))
    return marks, total, streams


def line_counts(marks, streams):
    """[(instructions at the write that completed the line, line text)] for stdout and stderr,
    in the order the writes happened."""
    offsets = {1: 0, 2: 0}
    result = []
    for count, fd, nbytes, is_writev in marks:
        if fd not in streams:
            continue
        if is_writev:
            sys.exit("encode_icount: the program used writev on stdout/stderr; byte offsets are unknown")
        start, end = offsets[fd], offsets[fd] + nbytes
        offsets[fd] = end
        chunk = streams[fd][start:end]
        # every line this write ends (a write may end several, or none)
        text_before = streams[fd][:start]
        line_start = text_before.rfind(b"\n") + 1
        pos = 0
        while True:
            nl = chunk.find(b"\n", pos)
            if nl < 0:
                break
            line = streams[fd][line_start:start + nl].decode(errors="replace")
            result.append((count, line))
            line_start = start + nl + 1
            pos = nl + 1
    return result


def phases(lines, start_re, stop_re):
    out, begin = [], None
    for count, text in lines:
        if begin is None and start_re.search(text):
            begin = count
        elif begin is not None and stop_re.search(text):
            out.append(count - begin)
            begin = None
    return out


def self_test():
    """A loop of 6 instructions x 10^7 between two lines: the count must be 6e7 (+ a few hundred
    for the printing), or the plugin/ABI is wrong."""
    cross = shutil.which("aarch64-linux-gnu-gcc")
    if not cross:
        sys.exit("encode_icount --self-test: aarch64-linux-gnu-gcc not found")
    with tempfile.TemporaryDirectory() as work:
        src = os.path.join(work, "loop.c")
        with open(src, "w") as f:
            f.write('#include <stdio.h>\nint main(void){fprintf(stderr,"start\\n");unsigned long n=10000000;\n'
                    '__asm__ volatile("1: subs %0, %0, #1\\n nop\\n nop\\n nop\\n nop\\n b.ne 1b" : "+r"(n) :: "cc");\n'
                    'fprintf(stderr,"stop\\n");return 0;}\n')
        exe = os.path.join(work, "loop")
        subprocess.run([cross, "-O1", "-o", exe, src], check=True)
        marks, total, streams = run_counted([exe], "cortex-a72", work)
        got = phases(line_counts(marks, streams), re.compile("^start$"), re.compile("^stop$"))
        expect = 6 * 10000000
        ok = len(got) == 1 and expect <= got[0] <= expect + 5000
        print(json.dumps({"self_test": "passed" if ok else "FAILED", "expected": expect, "counted": got,
                          "total": total}))
        return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", default="cortex-a72", help="qemu -cpu model (cortex-a72, cortex-a76, max, ...)")
    ap.add_argument("--start", help="regex of the output line that opens a phase")
    ap.add_argument("--stop", help="regex of the output line that closes it")
    ap.add_argument("--label", default="", help="copied into the JSON")
    ap.add_argument("--stop-after", type=int, default=0, metavar="N",
                    help="kill the program once N lines matched --stop (default: let it finish)")
    ap.add_argument("--self-test", action="store_true", help="check the plugin on a loop of known length")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS...")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd or not a.start or not a.stop:
        ap.error("give --start, --stop and -- PROGRAM ARGS (or --self-test)")
    if a.stop_after < 0:
        ap.error("--stop-after must be >= 0")
    with tempfile.TemporaryDirectory() as work:
        start_re, stop_re = re.compile(a.start), re.compile(a.stop)
        marks, total, streams = run_counted(cmd, a.cpu, work, stop_re, a.stop_after)
        got = phases(line_counts(marks, streams), start_re, stop_re)
    if not got:
        sys.exit(f"encode_icount: no line matched --start {a.start!r} followed by --stop {a.stop!r}")
    print(json.dumps({"label": a.label, "cpu": a.cpu, "phases": got, "total": total}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
