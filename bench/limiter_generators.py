"""Benchmark: the limiter model on generators it was not trained on (issue 17, docs/model.md).

Scores the shipped model, the z-score rules and the "largest key-metric z" side by side on the
training generator (held-out seed) and each shifted generator, worst model top-1 first, and
prints the Markdown table docs/model.md holds. With ``--oracle`` it also trains a model on each
generator itself (another seed) and reports its top-1 on the same held-out athletes: the level
the shipped model could reach there.

    .venv/bin/python bench/limiter_generators.py [--athletes 400] [--oracle] [--json FILE]

Targets (benchmarks, not tests): no extreme evidence below P = 0.2; top-1 above both baselines
everywhere and ≥ 0.90 where the oracle reaches 0.90; ≤ 10 % of limiter-free athletes flagged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.services.analysis import evaluate_model
from planner.store.model_io import SHIPPED_DIR

SCORERS = (("model", "model"), ("baseline", "rules"), ("key_z", "key z"))


def _f(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def _oracle(generator: str, athletes: int, test_seed: int) -> float | None:
    """Top-1 (one clear limiter) of a model trained on ``generator`` itself."""
    from planner import evidence as ev
    from planner.features import AREA_FEATURES, MODEL_FEATURES
    from planner.model import evaluate, fit_models, simulated_training_set

    train, _ = simulated_training_set(700, 424242, workers=2, generator=generator)
    pipeline, baseline = fit_models(train, random_state=1)
    support = ev.fit_support(
        train.X, MODEL_FEATURES, {a: list(f) for a, f in AREA_FEATURES.items()}
    )
    test, _ = simulated_training_set(athletes, test_seed, workers=2, generator=generator)
    report = evaluate(pipeline, baseline, test, support=support)
    value = report["model"]["top1_one_clear"]
    return None if value is None else float(value)


def table(reports: list[dict[str, Any]], oracle: dict[str, float | None]) -> str:
    lines = [
        "| generator | scorer | top-1, one clear limiter | false flags, limiter-free |"
        " extreme evidence with P < 0.2 | ROC-AUC push / swing / posture / balance |"
        " ECE push / swing / posture / balance |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in reports:
        g = r["generator"]
        for name, label in SCORERS:
            m = r[name]
            aucs = " / ".join(_f(m["areas"][a]["roc_auc"], ".2f") for a in m["areas"])
            eces = " / ".join(_f(m["areas"][a]["calibration_error"], ".2f") for a in m["areas"])
            top = _f(m["top1_one_clear"])
            if name == "model" and oracle.get(g) is not None:
                top += f" (trained on it: {_f(oracle[g])})"
            lines.append(
                f"| {g} | {label} | {top} (n={m['top1_one_clear_n']}) |"
                f" {_f(m['false_flag_rate'])} (n={m['limiter_free_n']}) |"
                f" {m['extreme_below_0_2']} of {m['extreme_n']} | {aucs} | {eces} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--athletes", type=int, default=400)
    parser.add_argument("--oracle", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    report = evaluate_model(directory=SHIPPED_DIR, n_athletes=args.athletes, generator="all")
    oracle: dict[str, float | None] = {}
    if args.oracle:
        for r in report["generators"]:
            oracle[r["generator"]] = _oracle(r["generator"], args.athletes, report["seed"])
    print(f"model {report['model_version']}, {args.athletes} held-out athletes per generator,")
    print(f"seed {report['seed']}; {time.perf_counter() - start:.0f} s\n")
    print(table(report["generators"], oracle))
    if args.json:
        report["oracle_top1_one_clear"] = oracle
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
