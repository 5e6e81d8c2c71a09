#!/usr/bin/env python3
"""Helpers for scripts/bench.sh: tree generation, random reads, a resource sampler and
the results table. Standard library only."""

import argparse
import os
import random
import signal
import statistics
import sys
import time

# ---------------------------------------------------------------------------------------
# Tree generation


def _text(rng, n, marker):
    words = ["static", "int", "return", "struct", "void", "unsigned", "const", "if",
             "for", "while", "else", "break", "size_t", "u32", "u64", "NULL", "err"]
    out = []
    size = 0
    while size < n:
        line = " ".join(rng.choice(words) for _ in range(8)) + ";\n"
        out.append(line)
        size += len(line)
    if marker:
        out.insert(len(out) // 2, "EXPORT_SYMBOL(bench_symbol);\n")
    return "".join(out)


def gen_tree(args):
    """A small source-like tree: DIRS directories of FILES files each (a few KiB of text,
    one in three with EXPORT_SYMBOL), plus a few names the secrets preset hides."""
    rng = random.Random(1)
    root = args.dir
    for d in range(args.dirs):
        sub = os.path.join(root, f"dir{d // 10:03d}", f"sub{d:04d}")
        os.makedirs(sub, exist_ok=True)
        for f in range(args.files):
            with open(os.path.join(sub, f"file{f:04d}.c"), "w") as fh:
                fh.write(_text(rng, rng.randint(500, 6000), f % 3 == 0))
    certs = os.path.join(root, "certs")
    os.makedirs(certs, exist_ok=True)
    for name in ("signing_key.pem", "test.key"):
        with open(os.path.join(certs, name), "w") as fh:
            fh.write("-----BEGIN NOT A REAL KEY-----\n")


def gen_untar(args):
    """COUNT small files (100 per directory, 200 B to 4 KiB) under DIR/untar/."""
    rng = random.Random(2)
    base = os.path.join(args.dir, "untar")
    for i in range(args.count):
        sub = os.path.join(base, f"d{i // 100:03d}")
        if i % 100 == 0:
            os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i % 100:03d}.txt"), "w") as fh:
            fh.write(_text(rng, rng.randint(200, 4096), False))


def gen_million(args):
    """DIRS directories of FILES files of a few bytes each."""
    root = args.dir
    data = b"bench\n"
    t0 = time.monotonic()
    for d in range(args.dirs):
        sub = os.path.join(root, f"d{d:04d}")
        os.makedirs(sub, exist_ok=True)
        for f in range(args.files):
            fd = os.open(os.path.join(sub, f"f{f:04d}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.close(fd)
        if d % 100 == 99:
            print(f"  {(d + 1) * args.files} files, {time.monotonic() - t0:.0f} s", file=sys.stderr)


# ---------------------------------------------------------------------------------------
# Random reads


def randread(args):
    fd = os.open(args.file, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        blocks = size // args.bs
        rng = random.Random(args.seed)
        total = 0
        for _ in range(args.count):
            total += len(os.pread(fd, args.bs, rng.randrange(blocks) * args.bs))
    finally:
        os.close(fd)
    if total != args.count * args.bs:
        sys.exit(f"randread: short reads ({total} bytes of {args.count * args.bs})")


# ---------------------------------------------------------------------------------------
# Resource sampler: peak open descriptors and VmHWM of a process


def sample(args):
    pid = args.pid
    peak_fds = -1
    hwm_kib = 0
    stop = False

    def on_term(_sig, _frm):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def write():
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{peak_fds} {hwm_kib}\n")
        os.replace(tmp, args.out)

    while not stop:
        try:
            n = len(os.listdir(f"/proc/{pid}/fd"))
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        hwm_kib = max(hwm_kib, int(line.split()[1]))
                        break
        except (FileNotFoundError, ProcessLookupError):
            break
        except PermissionError as e:
            sys.exit(f"sampler: {e}")
        if n > peak_fds:
            peak_fds = n
            write()
        time.sleep(args.interval)
    write()


# ---------------------------------------------------------------------------------------
# Report


def _fmt(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _median(xs):
    if not xs:
        return None
    if any(x != x for x in xs):
        return float("nan")
    return statistics.median(xs)


def report(args):
    # results.tsv: workload \t system \t pass(first|rep) \t seconds
    times = {}
    workloads, systems = [], []
    with open(args.tsv) as fh:
        for line in fh:
            w, s, kind, secs = line.rstrip("\n").split("\t")
            if w not in workloads:
                workloads.append(w)
            if s not in systems:
                systems.append(s)
            times.setdefault((w, s), {"first": [], "rep": []})
            if kind == "first":
                times[(w, s)]["first"].append(float(secs))
            else:
                times[(w, s)]["rep"].append(float(secs))
    labels = {}
    if args.labels:
        with open(args.labels) as fh:
            for line in fh:
                k, v = line.rstrip("\n").split("\t", 1)
                labels[k] = v

    def get(w, s):
        t = times.get((w, s))
        if t is None:
            return None, None
        # Several cold first passes (each on a fresh mount): their median. A failed pass
        # (nan) makes the cell nan rather than leaving it out.
        return _median(t["first"]), _median(t["rep"])

    peers = [p for p in ("native", "bindfs", "fuse-overlayfs") if p in systems]
    out = []
    head = ["workload", "system", "first (s)", "median (s)"]
    head += [f"÷ {p} (first)" for p in peers]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
    for w in workloads:
        for s in systems:
            first, med = get(w, s)
            if first is None and med is None:
                continue
            row = [labels.get(w, w), s, _fmt(first), _fmt(med)]
            for p in peers:
                if s.startswith("scopefs") and p != s:
                    pf, pm = get(w, p)
                    rm, rf = _ratio(med, pm), _ratio(first, pf)
                    if rm is None and rf is None:
                        row.append("")
                    else:
                        row.append(f"{_fmt(rm)} ({_fmt(rf)})")
                else:
                    row.append("")
            out.append("| " + " | ".join(row) + " |")
    text = "\n".join(out) + "\n"
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    sys.stdout.write(text)


def resources(args):
    # resources.tsv: workload \t system \t peak fds \t VmHWM KiB
    rows, workloads, systems = {}, [], []
    with open(args.tsv) as fh:
        for line in fh:
            w, s, fds, hwm = line.rstrip("\n").split("\t")
            if w not in workloads:
                workloads.append(w)
            if s not in systems:
                systems.append(s)
            old = rows.get((w, s), (0, 0))
            rows[(w, s)] = (max(old[0], int(fds)), max(old[1], int(hwm)))
    labels = {}
    if args.labels:
        with open(args.labels) as fh:
            for line in fh:
                k, v = line.rstrip("\n").split("\t", 1)
                labels[k] = v
    if args.labels and "untar" in labels and "rm" in labels:
        labels["untar"] = labels["untar"] + " + rm"

    if not systems:
        sys.stdout.write("(no daemon was measured)\n")
        return

    def cell(v):
        return f"{v[0]} / {v[1] / 1024:.1f} MiB" if v else ""

    out = ["| workload | " + " | ".join(systems) + " |",
           "|---|" + "|".join(["---:"] * len(systems)) + "|"]
    for w in workloads:
        out.append(f"| {labels.get(w, w)} | " + " | ".join(cell(rows.get((w, s))) for s in systems) + " |")
    peak = []
    for s in systems:
        vals = [v for (w, t), v in rows.items() if t == s]
        peak.append((max(v[0] for v in vals), max(v[1] for v in vals)))
    out.append("| **whole run (peak)** | " + " | ".join(f"**{cell(v)}**" for v in peak) + " |")
    sys.stdout.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("gen-tree")
    p.add_argument("dir")
    p.add_argument("--dirs", type=int, default=60)
    p.add_argument("--files", type=int, default=50)
    p.set_defaults(fn=gen_tree)

    p = sub.add_parser("gen-untar")
    p.add_argument("dir")
    p.add_argument("--count", type=int, default=10000)
    p.set_defaults(fn=gen_untar)

    p = sub.add_parser("gen-million")
    p.add_argument("dir")
    p.add_argument("--dirs", type=int, default=1000)
    p.add_argument("--files", type=int, default=1000)
    p.set_defaults(fn=gen_million)

    p = sub.add_parser("randread")
    p.add_argument("file")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--bs", type=int, default=4096)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(fn=randread)

    p = sub.add_parser("sample")
    p.add_argument("pid", type=int)
    p.add_argument("out")
    p.add_argument("--interval", type=float, default=0.05)
    p.set_defaults(fn=sample)

    p = sub.add_parser("report")
    p.add_argument("tsv")
    p.add_argument("--labels")
    p.add_argument("--out")
    p.set_defaults(fn=report)

    p = sub.add_parser("resources")
    p.add_argument("tsv")
    p.add_argument("--labels")
    p.set_defaults(fn=resources)

    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
