#!/usr/bin/env python3
"""Train qunbot's sentiment model (bot/data/sentiment.json.gz) on online_shopping_10_cats.

Reproducible: the split is a pure function of each review's text (SHA-1 order inside every
(cat, label) stratum, cut 80/10/10 into train/dev/test), training is full-batch deterministic
numpy, and the only hyper-parameter search uses the dev split. The test split is never used for
fitting or selection; its rows can be written with --eval-out for `qunbot nlp eval`.

    .venv/bin/python scripts/train_sentiment.py \\
        --data /work/shared/data/online_shopping_10_cats.zip --eval-out /tmp/sentiment_test.csv

Model: L2-regularized logistic regression over `bot.nlp.sentiment_features` of the squeezed text
(characters, character bigrams, "!"-marked characters after 不/没/别/未), binary features with
document frequency >= --min-df in the fitting rows; near-zero weights are pruned.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import sys
import time
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.nlp import DEFAULT_MODEL_PATH, MAX_SENTIMENT_CHARS, MODEL_FORMAT, sentiment_features  # noqa: E402
from bot.textnorm import TextNormalizer  # noqa: E402

DEFAULT_DATA = "/work/shared/data/online_shopping_10_cats.zip"
SEED = 20240611


@dataclass(frozen=True)
class Row:
    cat: str
    label: int
    review: str


def read_rows(path: str) -> list[Row]:
    """Rows of the data set (a .zip holding one CSV, or a CSV): columns cat,label,review."""
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".csv"))
            text = zf.read(name).decode("utf-8-sig")
    else:
        text = Path(path).read_text(encoding="utf-8-sig")
    rows = []
    for rec in csv.DictReader(io.StringIO(text)):
        review = (rec.get("review") or "").replace("\ufeff", "").strip()
        if review and rec.get("label") in ("0", "1"):
            rows.append(Row(rec.get("cat") or "", int(rec["label"]), review))
    return rows


def dedupe(rows: list[Row]) -> tuple[list[Row], int]:
    """Keep the first copy of each review; drop reviews that occur with both labels."""
    labels: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        labels[r.review].add(r.label)
    seen: set[str] = set()
    out = []
    for r in rows:
        if r.review in seen or len(labels[r.review]) > 1:
            continue
        seen.add(r.review)
        out.append(r)
    return out, len(rows) - len(out)


def row_key(row: Row) -> str:
    return hashlib.sha1(f"{SEED}:{row.review}".encode()).hexdigest()


def shuffle_key(row: Row) -> str:
    """An order independent of the split order (the split takes each stratum's highest keys)."""
    return hashlib.sha1(f"order:{row.review}".encode()).hexdigest()


def split_rows(rows: list[Row]) -> dict[str, list[Row]]:
    """Stratified 80/10/10 split: inside each (cat, label) stratum, order by hash and cut."""
    strata: dict[tuple[str, int], list[Row]] = defaultdict(list)
    for r in rows:
        strata[(r.cat, r.label)].append(r)
    out: dict[str, list[Row]] = {"train": [], "dev": [], "test": []}
    for key in sorted(strata):
        group = sorted(strata[key], key=row_key)
        n = len(group)
        a, b = round(n * 0.8), round(n * 0.9)
        out["train"] += group[:a]
        out["dev"] += group[a:b]
        out["test"] += group[b:]
    return out


def featurize(normalizer: TextNormalizer, rows: list[Row]) -> list[set[str]]:
    """Exactly what `LogRegScorer.score` computes at run time."""
    return [sentiment_features(normalizer.squeeze(r.review[:MAX_SENTIMENT_CHARS])) for r in rows]


class Design:
    """Sparse binary design matrix as (row index, column index) arrays."""

    def __init__(self, feats: list[set[str]], vocab: dict[str, int]) -> None:
        rows: list[int] = []
        cols: list[int] = []
        for i, fs in enumerate(feats):
            idx = sorted(vocab[f] for f in fs if f in vocab)  # fixed order: bit-identical sums
            rows += [i] * len(idx)
            cols += idx
        self.n = len(feats)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.cols = np.asarray(cols, dtype=np.int64)

    def dot(self, w: np.ndarray, b: float) -> np.ndarray:
        return np.bincount(self.rows, weights=w[self.cols], minlength=self.n) + b

    def tdot(self, r: np.ndarray, n_features: int) -> np.ndarray:
        return np.bincount(self.cols, weights=r[self.rows], minlength=n_features)


def train_logreg(
    x: Design, y: np.ndarray, n_features: int, l2: float, iters: int = 400, lr: float = 0.05
) -> tuple[np.ndarray, float]:
    """Minimize mean log-loss + l2/2 |w|^2 with full-batch Adam (deterministic)."""
    w = np.zeros(n_features)
    b = 0.0
    m_w = np.zeros(n_features)
    v_w = np.zeros(n_features)
    m_b = v_b = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, iters + 1):
        z = x.dot(w, b)
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        r = (p - y) / x.n
        g_w = x.tdot(r, n_features) + l2 * w
        g_b = float(r.sum())
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w * g_w
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b * g_b
        step = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        w -= step * m_w / (np.sqrt(v_w) + eps)
        b -= step * m_b / (np.sqrt(v_b) + eps)
    return w, b


def metrics(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    pred = (prob >= 0.5).astype(int)
    tp_neg = int(((pred == 0) & (y == 0)).sum())
    pred_neg = int((pred == 0).sum())
    true_neg = int((y == 0).sum())
    prec = tp_neg / pred_neg if pred_neg else 0.0
    rec = tp_neg / true_neg if true_neg else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {
        "n": len(y),
        "accuracy": float((pred == y).mean()),
        "neg_precision": prec,
        "neg_recall": rec,
        "neg_f1": f1,
    }


def build_vocab(feats: list[set[str]], min_df: int) -> dict[str, int]:
    df: Counter[str] = Counter()
    for fs in feats:
        df.update(fs)
    kept = sorted(f for f, c in df.items() if c >= min_df)
    return {f: i for i, f in enumerate(kept)}


def fmt(m: dict[str, float]) -> str:
    return (
        f"n={m['n']} acc={m['accuracy']:.4f} negP={m['neg_precision']:.4f} "
        f"negR={m['neg_recall']:.4f} negF1={m['neg_f1']:.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA, help="online_shopping_10_cats .zip or .csv")
    ap.add_argument("--out", default=str(DEFAULT_MODEL_PATH), help="model file to write (.json.gz)")
    ap.add_argument("--eval-out", help="write the held-out test rows (cat,label,review) to this CSV")
    ap.add_argument("--min-df", type=int, default=3)
    ap.add_argument("--l2", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4])
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--prune", type=float, default=0.02, help="drop features with |weight| below this")
    ap.add_argument("--final-on", choices=["train", "train+dev"], default="train+dev")
    args = ap.parse_args(argv)

    if args.eval_out:
        eval_out = os.path.abspath(args.eval_out)
        if eval_out.startswith(str(ROOT) + os.sep):
            ap.error("--eval-out must be outside the repository (e.g. /tmp/sentiment_test.csv)")

    t0 = time.perf_counter()
    rows, dropped = dedupe(read_rows(args.data))
    parts = split_rows(rows)
    print(
        f"rows={len(rows)} (dropped {dropped} duplicates/conflicts) "
        + " ".join(f"{k}={len(v)}" for k, v in parts.items())
    )
    if args.eval_out:
        with open(args.eval_out, "w", encoding="utf-8", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow(["cat", "label", "review"])
            for r in sorted(parts["test"], key=shuffle_key):  # shuffled: `--limit N` is a fair sample
                wr.writerow([r.cat, r.label, r.review])
        print(f"held-out test rows -> {args.eval_out}")

    normalizer = TextNormalizer()
    feats = {k: featurize(normalizer, v) for k, v in parts.items()}
    ys = {k: np.asarray([r.label for r in v], dtype=float) for k, v in parts.items()}
    print(f"featurized in {time.perf_counter() - t0:.1f}s")

    vocab = build_vocab(feats["train"], args.min_df)
    x_train, x_dev = Design(feats["train"], vocab), Design(feats["dev"], vocab)
    best = None
    for l2 in args.l2:
        w, b = train_logreg(x_train, ys["train"], len(vocab), l2, args.iters)
        m = metrics(ys["dev"], 1 / (1 + np.exp(-x_dev.dot(w, b))))
        print(f"l2={l2:g} features={len(vocab)} dev {fmt(m)}")
        if best is None or m["accuracy"] > best[1]["accuracy"]:
            best = (l2, m)
    assert best is not None
    l2 = best[0]

    fit_rows = feats["train"] + (feats["dev"] if args.final_on == "train+dev" else [])
    fit_y = np.concatenate([ys["train"], ys["dev"]]) if args.final_on == "train+dev" else ys["train"]
    vocab = build_vocab(fit_rows, args.min_df)
    w, b = train_logreg(Design(fit_rows, vocab), fit_y, len(vocab), l2, args.iters)
    names = sorted(vocab, key=vocab.__getitem__)
    weights = {f: round(float(w[i]), 4) for i, f in enumerate(names) if abs(w[i]) >= args.prune}
    pruned_vocab = {f: i for i, f in enumerate(weights)}
    pw = np.asarray(list(weights.values()))
    test = metrics(ys["test"], 1 / (1 + np.exp(-Design(feats["test"], pruned_vocab).dot(pw, round(b, 4)))))
    print(f"final l2={l2:g} fit_on={args.final_on} features={len(weights)}/{len(vocab)}")
    print(f"held-out test {fmt(test)}")

    model = {
        "format": MODEL_FORMAT,
        "version": 1,
        "bias": round(b, 4),
        "meta": {
            "data": os.path.basename(args.data),
            "seed": SEED,
            "split": {k: len(v) for k, v in parts.items()},
            "fit_on": args.final_on,
            "min_df": args.min_df,
            "l2": l2,
            "iters": args.iters,
            "prune": args.prune,
            "n_features": len(weights),
            "dev": best[1],
            "test": test,
        },
        "weights": weights,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(model, ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode()
    # mtime=0 and no file name: byte-identical output for identical input
    with open(out, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(payload)
    print(f"model -> {out} ({out.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
