"""The bundled preference set: parity questions a tiny model can learn on a CPU in minutes.

"Is 347 even or odd?" -> chosen "347 is odd.", rejected "347 is even.". Chosen and rejected
share every token but the verdict, so the reward gap isolates the one thing to learn
(the last digit decides), and held-out numbers test generalisation, not memory.
The unpaired form keeps every positive and a fixed share of the negatives, so its label
counts differ (n != m), as real unpaired data does.

``python -m axolotl_aot.tools.synthetic`` rewrites the files in ``axolotl_aot/data/``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA_DIR = Path(__file__).parent.parent / "data"
TEMPLATES = ("Is {n} even or odd?", "Tell me whether {n} is odd or even.", "{n}: odd or even?")
NEGATIVE_SHARE = 0.7  # of the unpaired negatives kept


def parity_pair(n: int, template: str) -> dict[str, str]:
    right, wrong = ("even", "odd") if n % 2 == 0 else ("odd", "even")
    return {"prompt": template.format(n=n), "chosen": f"{n} is {right}.", "rejected": f"{n} is {wrong}."}


def bundled_splits(seed: int = 0, train: int = 400, test: int = 100) -> dict[str, list[dict]]:
    """Paired train/test splits on disjoint numbers, and their unpaired forms."""
    rng = random.Random(seed)
    numbers = rng.sample(range(100, 1000), train + test)
    paired = {
        "train": [parity_pair(n, rng.choice(TEMPLATES)) for n in numbers[:train]],
        "test": [parity_pair(n, rng.choice(TEMPLATES)) for n in numbers[train:]],
    }
    splits = {f"paired_{name}": rows for name, rows in paired.items()}
    for name, rows in paired.items():
        unpaired = []
        for row in rows:
            unpaired.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True})
            if rng.random() < NEGATIVE_SHARE:
                unpaired.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False})
        splits[f"unpaired_{name}"] = unpaired
    return splits


def write_bundled(folder: Path = DATA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in bundled_splits().items():
        path = folder / f"parity_{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_bundled():
        print(path)
