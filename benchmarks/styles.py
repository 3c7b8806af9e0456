"""The recognizer beyond MNIST, measured through the public HTTP API of a real stack.

    python -m benchmarks.styles --mnist ../shared/mnist        (make eval-styles)

Posts every case of benchmarks.stylesets to POST /v1/recognitions on a stack of its own (as
make eval-realworld does) and reports, per set: for digits and numbers, how many were read
right, misread or wrongly refused; for non-digits, how many were refused. Also the calibration
of `confidence` on the single-digit sets (expected calibration error, as the API reports it).
Writes benchmarks/results/styles.md and .json, and the figures into the model card
(model.json's ``evaluation``, MODEL_CARD.md rendered again).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import stylesets  # noqa: E402
from benchmarks.realworld import OUT, eval_stack  # noqa: E402
from services.recognizer import calibration, card, mnist  # noqa: E402

COMMAND = "make eval-styles"


def post_all(url: str, cases: list[stylesets.Case], concurrency: int = 4) -> list[tuple[stylesets.Case, dict]]:
    """(case, outcome) for every case: outcome has ``number`` and ``confidence`` when read, or
    ``refused`` (the problem type) when answered with a 4xx; a 5xx aborts (the stack is broken)."""
    with httpx.Client(base_url=url, timeout=120) as client:

        def post(case: stylesets.Case) -> tuple[stylesets.Case, dict]:
            reply = client.post("/v1/recognitions", files={"image": (case.filename, case.data, case.content_type)})
            if reply.status_code == 201:
                body = reply.json()
                return case, {"number": body["number"], "confidence": body["confidence"], "digits": body["digits"]}
            if 400 <= reply.status_code < 500:
                return case, {"refused": reply.json()["type"].rsplit("/", 1)[-1]}
            raise RuntimeError(f"{case.filename}: HTTP {reply.status_code} {reply.text[:200]}")

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(post, cases))


def summarise(outcomes: list[tuple[stylesets.Case, dict]]) -> dict:
    sets: dict[str, Counter] = defaultdict(Counter)
    confidence, correct = [], []
    for case, out in outcomes:
        tally = sets[case.set]
        tally["total"] += 1
        if case.expected is None:
            tally["refused"] += "refused" in out
        elif "refused" in out:
            tally["refused"] += 1
        else:
            right = out["number"] == case.expected
            tally["right"] += right
            if len(case.expected) == 1 and len(out["number"]) == 1:
                confidence.append(out["confidence"])
                correct.append(right)
    rows = []
    for name in sorted(sets, key=_order):
        t = sets[name]
        if name.startswith("not-digits"):
            result = f"{t['refused'] / t['total'] * 100:.1f}% refused"
        else:
            result = (f"{t['right'] / t['total'] * 100:.1f}% read right, "
                      f"{t['refused'] / t['total'] * 100:.1f}% refused")
        rows.append({"set": name, "total": t["total"], "right": t["right"], "refused": t["refused"], "result": result})
    rel = calibration.reliability(np.asarray(confidence), np.asarray(correct, dtype=bool))
    return {"rows": rows, "ece_single_digits": rel.ece, "calibrated_uploads": len(confidence)}


def _order(name: str) -> tuple[int, str]:
    prefixes = ("style:", "mnist-", "small", "numbers", "not-digits")
    return next(i for i, p in enumerate(prefixes) if name.startswith(p)), name


def families(rows: list[dict]) -> list[dict]:
    """The styles summed: all synthetic styles, and per digit style family of interest."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row["set"].startswith("style:"):
            groups["all synthetic styles"].append(row)
    out = []
    for name, members in groups.items():
        total = sum(m["total"] for m in members)
        right = sum(m["right"] for m in members)
        refused = sum(m["refused"] for m in members)
        out.append({"set": name, "total": total, "right": right, "refused": refused,
                    "result": f"{right / total * 100:.1f}% read right, {refused / total * 100:.1f}% refused"})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "mnist", help="MNIST IDX directory")
    parser.add_argument("--model", type=Path, default=ROOT / "services" / "recognizer" / "model")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run" / "eval-styles")
    parser.add_argument("--no-card", dest="card", action="store_false", help="leave model.json and the card alone")
    args = parser.parse_args()

    data = mnist.load(args.mnist)
    started = time.monotonic()
    cases = stylesets.all_cases(data.x_test, data.y_test)
    print(f"generated {len(cases)} cases in {time.monotonic() - started:.0f} s", flush=True)
    with eval_stack(args.run_dir) as url:
        started = time.monotonic()
        outcomes = post_all(url, cases)
        seconds = time.monotonic() - started
    summary = summarise(outcomes)
    rows = [*families(summary["rows"]), *summary["rows"]]
    meta_path = args.model / "model.json"
    meta = json.loads(meta_path.read_text())
    lines = [f"Model `{meta['version']}`; {len(cases)} uploads through POST /v1/recognitions in {seconds:.0f} s "
             f"(`{COMMAND}`).", "", "| set | uploads | result |", "|---|---:|---|"]
    lines += [f"| {r['set']} | {r['total']} | {r['result']} |" for r in rows]
    lines += ["", f"Expected calibration error of `confidence` on the {summary['calibrated_uploads']} single-digit "
                  f"uploads read as one digit: {summary['ece_single_digits'] * 100:.2f}%."]
    misses = [f"{c.set} {c.filename}: expected {c.expected or 'refusal'}, got {o.get('number') or o.get('refused') or 'an answer'}"
              for c, o in outcomes if (o.get("number") != c.expected if c.expected else "refused" not in o)]
    print("\n".join(lines))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "styles.md").write_text("\n".join(lines) + "\n\nMisses:\n\n" + "\n".join(f"- {m}" for m in misses) + "\n")
    (OUT / "styles.json").write_text(json.dumps({"model_version": meta["version"], **summary, "families": families(summary["rows"])}, indent=2) + "\n")
    if args.card:
        meta["evaluation"] = {"command": COMMAND, "rows": rows, "ece_single_digits": round(summary["ece_single_digits"], 5)}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        (args.model / "MODEL_CARD.md").write_text(card.render(meta))
    print(f"\nwrote {OUT / 'styles.md'} and {OUT / 'styles.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
