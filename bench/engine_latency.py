"""In-process latency of both engines on one model directory: ``python bench/engine_latency.py DIR [REPEATS]``.

Times the model call alone (onnxruntime on JSON columns vs the scikit-learn pipeline on a frame)
and the whole scoring path a request takes (contract check + engine, ``mlstack.serving.scoring.Scorer``),
for 1 and 32 rows. Prints one JSON line. The serving bench runs it pinned to the server core.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving_bench import rows_of  # noqa: E402
from mlstack.core.model import load  # noqa: E402
from mlstack.serving.protocol import parse_v1  # noqa: E402
from mlstack.serving.scoring import Scorer, fast_sklearn  # noqa: E402


def _per_call_ms(call, repeats: int) -> float:
    for _ in range(max(repeats // 10, 5)):  # warm up
        call()
    best = float("inf")
    for _ in range(3):  # best of three: the least disturbed by neighbours
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        best = min(best, (time.perf_counter() - started) / repeats * 1000)
    return round(best, 4)


def main() -> None:
    model_dir, repeats = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    fast_sklearn(1)
    out: dict = {}
    for engine in ("auto", "sklearn"):
        model = load(model_dir, name="loans", engine=engine)
        scorer = Scorer(model)
        name = model.engine
        out[name] = {}
        for count in (1, 32):
            parsed = parse_v1({"instances": rows_of(count)}, scorer.features, 1000)
            frame = scorer.frame(parsed.columns)
            if model.compiled is not None:
                model_call = lambda p=parsed, m=model: m.compiled.predict_columns(p.columns)  # noqa: E731
            else:
                model_call = lambda f=frame, m=model: m.predict(f)  # noqa: E731
            n = repeats if model.compiled is not None else max(repeats // 20, 20)
            out[name][f"model_call_ms_{count}_rows"] = _per_call_ms(model_call, n)
            out[name][f"scoring_path_ms_{count}_rows"] = _per_call_ms(
                lambda p=parsed, s=scorer: s.score(p), n
            )
        out[name]["per_row_ms_at_32"] = round(out[name]["scoring_path_ms_32_rows"] / 32, 5)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
