"""billrun's capacity benchmark: one command, every scale, baselines side by side.

    python3 benches/capacity.py [--scales 1M,10M,100M,10M/1M] [--work DIR] [--results DIR]

A scale is a number of events, optionally with a number of customers after a slash:
`10M` is ten million events over the default thousand events per customer (10k
customers), `10M/1M` the same events over a million customers, the telecom shape of
many accounts with a few events each. For each scale it generates a dataset (`billrun generate`, cached in --work), runs the
release bill run on it as a child process and measures it (wall time, CPU time = user +
sys, peak RSS from wait4, bytes read = size of the input dataset, bytes written = size
of the output folder, per-stage times from manifest.json), then runs the baselines on
the same files in the same run (benches/baselines: DuckDB SQL, Polars, the bare DuckDB
group-by floor, and the write floor `copy`: the usage written back unchanged), checks
that their invoices equal billrun's to the minor unit, and prints billrun's wall time as
a ratio to each, and how billrun's wall time grows per doubling of the events between
scales. It writes, in --results:

* `capacity.md`  the table per scale (markdown), with the ratios;
* `capacity.csv` the same figures, one row per (scale, engine);
* `capacity.svg` the scaling curve: wall time and peak RSS against events, one line
  per engine.

Build first: `cargo build --release -p billrun`. `--binary label=path` (repeatable)
compares several billrun builds in one run (e.g. before/after a change). `--repeat N`
runs each build N times per scale, interleaved, and keeps the run with the median wall
time (the table shows the spread): on this machine one run of the same build varies by
up to about 10 %, as much as the difference between two scales' growth factors.
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ROOT / "benches" / "baselines" / "run_baselines.py"
STAGES = ["read", "validate", "dedupe", "rate", "invoice", "journal", "write"]


def parse_scale(text: str) -> int:
    text = text.strip().upper()
    for suffix, factor in (("K", 10**3), ("M", 10**6), ("G", 10**9)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def parse_shape(text: str) -> tuple:
    """`10M` -> (10M, 10k): about a thousand events per customer, as in the issue's
    10M / 10k run; `10M/1M` -> (10M, 1M)."""
    events, _, customers = text.partition("/")
    n = parse_scale(events)
    return n, parse_scale(customers) if customers else max(100, n // 1000)


def shape_label(events: int, customers: int) -> str:
    """The scale's name in tables and folder names: `10M` for the default shape, else
    `10M/1M`."""
    if customers == max(100, events // 1000):
        return label(events)
    return f"{label(events)}/{label(customers)}"


def label(events: int) -> str:
    for factor, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "K")):
        if events >= factor and events % factor == 0:
            return f"{events // factor}{suffix}"
    return str(events)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_measured(cmd: list) -> dict:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed with status {code}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }


def generate(binary: str, events: int, customers: int, seed: int, data: Path) -> None:
    marker = data / ".generated"
    options = f"{events} {customers} {seed}"
    if marker.exists() and marker.read_text() == options:
        return
    subprocess.run(["rm", "-rf", str(data)], check=True)
    print(f"generating {label(events)} events, {customers} customers -> {data}", file=sys.stderr)
    subprocess.run(
        [binary, "generate", "--customers", str(customers), "--events", str(events),
         "--seed", str(seed), "--out", str(data)],
        check=True, stdout=subprocess.DEVNULL,
    )
    marker.write_text(options)


def bill(binary: str, data: Path, out: Path, period: str, extra: list) -> dict:
    subprocess.run(["rm", "-rf", str(out)], check=True)
    result = run_measured([binary, "run", "--data", str(data), "--out", str(out),
                           "--period", period, *extra])
    manifest = json.loads((out / "manifest.json").read_text())
    stages = {s["stage"]: s["seconds"] for s in manifest["stages"]}
    # The process's resident high-water mark as each stage ended (Linux): the first stage
    # that reaches the peak is the one that set it.
    stage_peaks = {s["stage"]: s["peak_rss_bytes"] for s in manifest["stages"]
                   if "peak_rss_bytes" in s}
    result.update(
        stage_peaks=stage_peaks,
        bytes_read=du(data) - (data / ".generated").stat().st_size,
        bytes_written=du(out),
        rated=manifest["usage"]["rated"],
        stages=stages,
    )
    return result


def svg(rows: list, path: Path) -> None:
    """Two log-log panels (wall time, peak RSS against events), one line per engine.

    Written by hand: a few dozen lines of SVG need no plotting library, so the benchmark
    needs nothing beyond the baselines' packages and its picture is byte-stable.
    """
    engines = sorted({r["engine"] for r in rows}, key=lambda e: (not e.startswith("billrun"), e))
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#7f7f7f", "#9467bd", "#ff7f0e", "#8c564b"]
    w, h, pad = 420, 300, 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w + 40}" height="{h + 40}" '
           'font-family="sans-serif" font-size="11">', '<rect width="100%" height="100%" fill="white"/>']
    xs = sorted({r["events"] for r in rows})
    for panel, (key, title, unit, scale) in enumerate(
        [("wall_s", "wall time", "s", 1), ("peak_rss_bytes", "peak RSS", "GiB", 2**30)]
    ):
        ox = 20 + panel * (w + 20)
        vals = [r[key] / scale for r in rows]
        lo_x, hi_x = math.log10(min(xs)), math.log10(max(xs))
        lo_y, hi_y = math.log10(min(vals)), math.log10(max(vals))
        hi_x, hi_y = max(hi_x, lo_x + 1), max(hi_y, lo_y + 1)
        lo_y, hi_y = math.floor(lo_y), math.ceil(hi_y)
        px = lambda v: ox + pad + (math.log10(v) - lo_x) / (hi_x - lo_x) * (w - pad - 10)  # noqa: E731
        py = lambda v: 30 + (h - 60) - (math.log10(v) - lo_y) / (hi_y - lo_y) * (h - 60)  # noqa: E731
        out.append(f'<text x="{ox + w / 2}" y="18" text-anchor="middle" font-size="13">'
                   f'{title} ({unit}) vs events, log-log</text>')
        out.append(f'<rect x="{ox + pad}" y="30" width="{w - pad - 10}" height="{h - 60}" '
                   'fill="none" stroke="#999"/>')
        for e in range(int(lo_y), int(hi_y) + 1):
            y = py(10**e)
            out.append(f'<line x1="{ox + pad}" x2="{ox + w - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{ox + pad - 4}" y="{y + 4:.1f}" text-anchor="end">{10**e:g}</text>')
        for x in xs:
            out.append(f'<text x="{px(x):.1f}" y="{h - 15}" text-anchor="middle">{label(x)}</text>')
        for i, engine in enumerate(engines):
            pts = sorted((r["events"], r[key] / scale) for r in rows if r["engine"] == engine)
            colour = colours[i % len(colours)]
            line = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in pts)
            out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for x, v in pts:
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>')
    for i, engine in enumerate(engines):
        x = 20 + pad + i * 130
        out.append(f'<rect x="{x}" y="{h + 10}" width="12" height="12" fill="{colours[i % len(colours)]}"/>')
        out.append(f'<text x="{x + 16}" y="{h + 20}">{engine}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scales", default="1M,10M,100M", help="comma-separated event counts (1M, 10M, 100M, 250K, ...)")
    p.add_argument("--work", default="/tmp/billrun-capacity", help="datasets and outputs (large)")
    p.add_argument("--results", default=str(ROOT / "benches" / "results"))
    p.add_argument("--binary", action="append", default=[],
                   help="label=path of a billrun build (repeatable; default billrun=target/release/billrun)")
    p.add_argument("--engines", default="duckdb,polars,floor,copy", help="baselines to run ('' for none)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each billrun build per scale; the median run's figures are kept")
    p.add_argument("--engine-limit", action="append", default=[],
                   help="engine=scale: skip that baseline above that many events, e.g. "
                        "polars=10M where it needs more memory than the machine has (repeatable)")
    p.add_argument("--period", default="2026-10")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--run-arg", action="append", default=[], help="extra argument for `billrun run`")
    p.add_argument("--no-check", action="store_true", help="skip the invoice comparison with the baselines")
    args = p.parse_args()

    repeat = max(1, args.repeat)
    binaries = [b.split("=", 1) for b in args.binary] or [["billrun", str(ROOT / "target/release/billrun")]]
    work, results = Path(args.work), Path(args.results)
    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    rows = []
    for events, customers in [parse_shape(s) for s in args.scales.split(",")]:
        scale = shape_label(events, customers)
        slug = scale.replace("/", "-")
        data = work / f"data-{slug}"
        generate(binaries[0][1], events, customers, args.seed, data)
        runs = {name: [] for name, _ in binaries}
        for attempt in range(repeat):
            # Interleaved, so that a slow spell of the machine does not fall on one build.
            for name, binary in binaries:
                out = work / f"out-{slug}-{name}"
                print(f"[{scale}] {name} run {attempt + 1}/{repeat} ...",
                      file=sys.stderr)
                runs[name].append(bill(binary, data, out, args.period, args.run_arg))
        for name, _ in binaries:
            by_wall = sorted(runs[name], key=lambda r: r["wall_s"])
            median = by_wall[(len(by_wall) - 1) // 2]
            rows.append({"scale": scale, "events": events, "customers": customers,
                         "engine": name, **median,
                         "wall_runs_s": [r["wall_s"] for r in runs[name]]})
        limits = {e: parse_scale(n) for e, n in (x.split("=", 1) for x in args.engine_limit)}
        engines = ",".join(e for e in args.engines.split(",") if e and events <= limits.get(e, events))
        if engines != args.engines:
            print(f"[{scale}] skipping {set(args.engines.split(',')) - set(engines.split(','))} "
                  "(--engine-limit)", file=sys.stderr)
        if engines:
            js = work / f"baselines-{slug}.json"
            cmd = [sys.executable, str(BASELINES), "--data", str(data), "--period", args.period,
                   "--work", str(work / f"baselines-{slug}"), "--engines", engines,
                   "--json", str(js)]
            if not args.no_check:
                cmd += ["--check", str(work / f"out-{slug}-{binaries[0][0]}")]
            print(f"[{scale}] baselines {engines} ...", file=sys.stderr)
            subprocess.run(cmd, check=True)
            for b in json.loads(js.read_text()):
                rows.append({"scale": scale, "events": events, "customers": customers, **b})
        report(rows, binaries, results)
    print((results / "capacity.md").read_text())


def report(rows: list, binaries: list, results: Path) -> None:
    svg(rows, results / "capacity.svg")
    with open(results / "capacity.csv", "w", newline="") as f:
        fields = ["scale", "events", "customers", "engine", "wall_s", "wall_runs_s", "cpu_s", "peak_rss_bytes",
                  "events_per_s", "bytes_read", "bytes_written"] + [f"stage_{s}_s" for s in STAGES] \
            + [f"stage_{s}_peak_rss_bytes" for s in STAGES]
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({
                **{k: r.get(k, "") for k in fields if not k.startswith("stage_")},
                "wall_runs_s": ";".join(f"{w:.3f}" for w in r.get("wall_runs_s", [])),
                "events_per_s": round(r["events"] / r["wall_s"]),
                **{f"stage_{s}_s": r.get("stages", {}).get(s, "") for s in STAGES},
                **{f"stage_{s}_peak_rss_bytes": r.get("stage_peaks", {}).get(s, "")
                   for s in STAGES},
            })
    md = ["# billrun capacity benchmark", "",
          f"Machine: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB. "
          "All engines ran on the same generated files in the same run; ratios are billrun's "
          "wall time divided by the other engine's (below 1 = billrun faster).", ""]
    md += summary(rows, [name for name, _ in binaries])
    for scale in dict.fromkeys(r["scale"] for r in rows):
        rs = [r for r in rows if r["scale"] == scale]
        md += [f"## {scale} events", "",
               "| engine | wall s | runs (wall s) | CPU s | peak RSS MiB | events/s | read MB | written MB | "
               + " | ".join(f"{s} s" for s in STAGES) + " |",
               "|---" * (8 + len(STAGES)) + "|"]
        for r in rs:
            st = r.get("stages", {})
            walls = r.get("wall_runs_s", [])
            spread = f"{len(walls)}: {min(walls):.2f}–{max(walls):.2f}" if len(walls) > 1 else ""
            md.append(
                f"| {r['engine']} | {r['wall_s']:.2f} | {spread} | {r['cpu_s']:.2f} | "
                f"{r['peak_rss_bytes'] / 2**20:.0f} | "
                f"{r['events'] / r['wall_s']:,.0f} | "
                + (f"{r['bytes_read'] / 1e6:.1f} | {r['bytes_written'] / 1e6:.1f} | " if "bytes_read" in r else " | | ")
                + " | ".join(f"{st[s]:.2f}" if s in st else "" for s in STAGES) + " |"
            )
        md.append("")
        for name, _ in binaries:
            mine = next((r for r in rs if r["engine"] == name), None)
            if mine is None:
                continue
            ratios = [f"{o['engine']} {mine['wall_s'] / o['wall_s']:.2f}x"
                      for o in rs if o["engine"] != name]
            md += [f"{name} wall time as a ratio to: " + ", ".join(ratios), ""]
            peaks = mine.get("stage_peaks", {})
            if peaks:
                md += [f"{name} peak RSS so far at the end of each stage, MiB: " + ", ".join(
                    f"{s} {peaks[s] / 2**20:.0f}" for s in STAGES if s in peaks), ""]
    md += growth(rows, [name for name, _ in binaries])
    (results / "capacity.md").write_text("\n".join(md) + "\n")


def summary(rows: list, names: list) -> list:
    """Markdown lines: one table of every scale and shape, each engine's wall time with
    the first billrun build's ratio to it, and billrun's peak RSS."""
    scales = list(dict.fromkeys(r["scale"] for r in rows))
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    engines.sort(key=lambda e: (e not in names, names.index(e) if e in names else 0))
    mine = names[0]
    head = ["scale", "events", "customers"] + [f"{e} s" for e in engines] \
        + [f"{mine} / {e}" for e in engines if e != mine] + [f"{mine} peak RSS MiB"]
    lines = ["## All scales", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for scale in scales:
        by_engine = {r["engine"]: r for r in rows if r["scale"] == scale}
        any_row = next(iter(by_engine.values()))
        own = by_engine.get(mine)
        cells = [scale, f"{any_row['events']:,}", f"{any_row.get('customers', 0):,}"]
        cells += [f"{by_engine[e]['wall_s']:.2f}" if e in by_engine else "" for e in engines]
        cells += [f"{own['wall_s'] / by_engine[e]['wall_s']:.2f}x" if own and e in by_engine else ""
                  for e in engines if e != mine]
        cells.append(f"{own['peak_rss_bytes'] / 2**20:.0f}" if own else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    # The account dimension: the same events over many more customers, as a ratio to the
    # default shape of the same events where both ran.
    own = {(r["events"], r.get("customers")): r["wall_s"] for r in rows if r["engine"] == mine}
    for (events, customers), wall in own.items():
        base = own.get((events, max(100, events // 1000)))
        if base and customers != max(100, events // 1000):
            lines += [f"{mine} {shape_label(events, customers)} wall time as a ratio to "
                      f"{label(events)} over {max(100, events // 1000):,} customers: "
                      f"{wall / base:.2f}x", ""]
    return lines


def growth(rows: list, names: list) -> list:
    """Markdown lines: how each build's wall time grows per doubling of the events,
    between consecutive scales of the same shape (events per customer):
    (t2 / t1) ** (1 / log2(n2 / n1)); 2.00 is linear."""
    lines = []
    ratios = sorted({r["events"] // max(1, r.get("customers", 1)) for r in rows}, reverse=True)
    for name in names:
        for ratio in ratios:
            pts = sorted((r["events"], r["wall_s"]) for r in rows if r["engine"] == name
                         and r["events"] // max(1, r.get("customers", 1)) == ratio)
            steps = [f"{label(n1)}→{label(n2)} {(t2 / t1) ** (1 / math.log2(n2 / n1)):.2f}x"
                     for (n1, t1), (n2, t2) in zip(pts, pts[1:]) if n2 > n1]
            if steps:
                lines += [f"{name} wall time per doubling of the events, {ratio:,} events per "
                          "customer: " + ", ".join(steps), ""]
    if lines:
        lines = ["## Growth per doubling", ""] + lines
    return lines


if __name__ == "__main__":
    main()
