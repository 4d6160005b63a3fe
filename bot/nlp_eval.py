"""`qunbot nlp eval FILE.csv [--scorer NAME] [--limit N]`: accuracy and speed of a sentiment scorer.

The CSV needs columns ``label`` (1 positive, 0 negative) and ``review``; other columns are ignored,
UTF-8 with or without BOM. Rows with another label or an empty review are skipped (and counted).
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from typing import TextIO

from bot.nlp import DEFAULT_SCORER, NlpService

WARM_UP_ROWS = 20


def _read(csv_path: str, limit: int | None) -> tuple[list[tuple[int, str]], int]:
    rows: list[tuple[int, str]] = []
    skipped = 0
    with open(csv_path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = {(f or "").strip().lower() for f in reader.fieldnames or []}
        if not {"label", "review"} <= fields:
            raise KeyError(f"needs columns label,review; found {','.join(sorted(fields)) or 'none'}")
        for rec in reader:
            rec = {(k or "").strip().lower(): v for k, v in rec.items()}
            label = (rec.get("label") or "").strip()
            review = (rec.get("review") or "").strip()
            if label not in ("0", "1") or not review:
                skipped += 1
                continue
            rows.append((int(label), review))
            if limit is not None and len(rows) >= limit:
                break
    return rows, skipped


def run_eval(csv_path: str, scorer: str = DEFAULT_SCORER, limit: int | None = None, out: TextIO = sys.stdout) -> int:
    """Score every row, print n, accuracy, negative-class P/R/F1 and ms/message. Returns an exit code:
    0 ok, 2 for a missing/unreadable file, bad columns, no usable rows or an unknown scorer."""
    try:
        rows, skipped = _read(csv_path, limit)
    except FileNotFoundError:
        print(f"error: no such file: {csv_path}", file=out)
        return 2
    except KeyError as exc:
        print(f"error: {csv_path}: {exc.args[0]}", file=out)
        return 2
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"error: cannot read {csv_path}: {exc}", file=out)
        return 2
    if not rows:
        print(f"error: {csv_path}: no rows with label 0/1 and a review", file=out)
        return 2
    try:
        nlp = NlpService(scorer=scorer)
    except ValueError as exc:
        print(f"error: {exc}", file=out)
        return 2

    t0 = time.perf_counter()
    score = nlp.scorer.score
    load = getattr(nlp.scorer, "load", None)
    if load is not None:
        load()
    score(rows[0][1])  # first call loads lazily-imported scorers (snownlp: ~4 s)
    load_s = time.perf_counter() - t0
    for _, review in rows[:WARM_UP_ROWS]:
        score(review)

    clock = time.perf_counter_ns
    tp_neg = fp_neg = fn_neg = correct = 0
    times: list[int] = []
    for label, review in rows:
        t = clock()
        prob = score(review)
        times.append(clock() - t)
        pred = 1 if prob >= 0.5 else 0
        correct += pred == label
        if pred == 0 and label == 0:
            tp_neg += 1
        elif pred == 0:
            fp_neg += 1
        elif label == 0:
            fn_neg += 1

    n = len(rows)
    prec = tp_neg / (tp_neg + fp_neg) if tp_neg + fp_neg else 0.0
    rec = tp_neg / (tp_neg + fn_neg) if tp_neg + fn_neg else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    print(f"scorer          {scorer}", file=out)
    print(f"file            {csv_path}", file=out)
    print(f"n               {n}" + (f" ({skipped} rows skipped)" if skipped else ""), file=out)
    print(f"accuracy        {correct / n:.4f}", file=out)
    print(f"neg precision   {prec:.4f}", file=out)
    print(f"neg recall      {rec:.4f}", file=out)
    print(f"neg F1          {f1:.4f}", file=out)
    print(f"ms/message      median {statistics.median(times) / 1e6:.4f}  mean {statistics.mean(times) / 1e6:.4f}",
          file=out)  # fmt: skip
    print(f"load            {load_s:.2f} s (warm-up, not included above)", file=out)
    return 0
