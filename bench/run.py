"""Run the whole benchmark and write bench/RESULTS.md (``make bench``), or a quick smoke run that
checks the benchmark still works (``make bench-smoke``, in CI; results go to bench/out/).

Every figure is from one run on one machine; compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def runs(args: list[str], timeout: int = 1800) -> str:
    """``python -m <args>`` in a clean environment; its stdout (it must exit 0)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUNBOT_")}
    out = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def sub(args: list[str], timeout: int = 1800) -> dict[str, Any]:
    """A benchmark run whose last line of output is its JSON result."""
    return json.loads(runs(args, timeout).strip().splitlines()[-1])


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiogram

    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
            f"Python {platform.python_version()}, aiogram {aiogram.__version__}; "
            f"load average at start {os.getloadavg()[0]:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="small N, no per-plugin runs, results in bench/out/")
    parser.add_argument("--n", type=int, default=None)
    args = parser.parse_args()
    n = args.n or (400 if args.smoke else 20_000)
    started = time.time()
    from bot.registry import discover

    plugins = list(discover())
    results: dict[str, Any] = {"machine": machine(), "n": n}
    results["bare"] = sub(["bench.inprocess", "--variant", "bare", "--n", str(n)])
    results["full"] = sub(["bench.inprocess", "--variant", "full", "--n", str(n)])
    results["ratio"] = round(results["full"]["updates_per_s"] / results["bare"]["updates_per_s"], 3)
    if not args.smoke:
        results["core"] = sub(["bench.inprocess", "--variant", "core", "--n", str(n)])
        results["without"] = {p: sub(["bench.inprocess", "--variant", f"without:{p}", "--n", str(n)])
                              for p in plugins}
    results["e2e"] = sub(["bench.e2e", "--n", str(n)])
    if args.smoke:  # the helper scripts behind bench/NOTES.md must keep running too
        runs(["bench.profile_kinds", "--n", "300"])
        runs(["bench.statement_cost", "--n", "300"])
    results["wall_seconds"] = round(time.time() - started, 1)
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / ("smoke.json" if args.smoke else "results.json")).write_text(
        json.dumps(results, ensure_ascii=False, indent=2))
    report = render(results, smoke=args.smoke)
    if not args.smoke:
        notes = ROOT / "bench" / "NOTES.md"  # the hand-written analysis of these figures
        if notes.exists():
            report += "\n" + notes.read_text(encoding="utf-8")
        (ROOT / "bench" / "RESULTS.md").write_text(report, encoding="utf-8")
    print(report)
    return 0


def render(r: dict[str, Any], *, smoke: bool) -> str:
    bare, full, e2e = r["bare"], r["full"], r["e2e"]
    lines = [
        "# Benchmark results" + (" (smoke run)" if smoke else ""),
        "",
        f"Machine: {r['machine']}. Traffic: {r['n']} seeded updates (bench/traffic.py: chatter, FAQ questions, "
        "签到, replies, stickers/photos, commands, joins, a negative burst, a spam wave).",
        f"Reproduce: `make bench` ({r['wall_seconds']} s here).",
        "",
        "## In-process (parse + dispatch; real SQLite file, real jieba and sentiment model)",
        "",
        "| variant | updates/s | p50 ms | p99 ms | peak RSS MB |",
        "|---|---|---|---|---|",
        f"| bare aiogram, one no-op handler | {bare['updates_per_s']} | {bare['p50_ms']} | {bare['p99_ms']} | "
        f"{bare['peak_rss_mb']} |",
        f"| qunbot, all plugins ({', '.join(full.get('plugins', []))}) | {full['updates_per_s']} | "
        f"{full['p50_ms']} | {full['p99_ms']} | {full['peak_rss_mb']} |",
    ]
    if "core" in r:
        c = r["core"]
        lines.append(f"| qunbot core, no plugins | {c['updates_per_s']} | {c['p50_ms']} | {c['p99_ms']} | "
                     f"{c['peak_rss_mb']} |")
    lines += ["", f"**full / bare = {r['ratio']}** (target ≥ 0.5)", ""]
    if "without" in r:
        lines += ["### Per-plugin cost (all plugins but one)", "",
                  "| plugin off | updates/s | vs full | µs per update saved | p99 ms | peak RSS MB |",
                  "|---|---|---|---|---|---|"]
        full_us = 1e6 / full["updates_per_s"]
        for name, v in r["without"].items():
            saved = full_us - 1e6 / v["updates_per_s"]
            lines.append(f"| {name} | {v['updates_per_s']} | {v['updates_per_s'] / full['updates_per_s']:.2f}× | "
                         f"{saved:.0f} | {v['p99_ms']} | {v['peak_rss_mb']} |")
        lines.append("")
    lines += [
        "## End to end (getUpdates over HTTP from the local Bot API emulator, bot in its own process)",
        "",
        "| bot | updates/s | seconds | bot process peak RSS MB |",
        "|---|---|---|---|",
        f"| minimal aiogram bot (start_polling, no-op handler) | {e2e['baseline']['updates_per_s']} | "
        f"{e2e['baseline']['seconds']} | {e2e['baseline'].get('peak_rss_mb')} |",
        f"| qunbot, all plugins | {e2e['qunbot']['updates_per_s']} | {e2e['qunbot']['seconds']} | "
        f"{e2e['qunbot'].get('peak_rss_mb')} |",
        "",
        f"**qunbot / baseline = {e2e['ratio']}** (target: qunbot ≥ 1,000 updates/s)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
