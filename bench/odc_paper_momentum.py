"""ODC at the reference config's memory momentum 0.5 (kit's preset: 0.2), everything else as the
headline's comparison: K = 30, 30 epochs, the 4,000 embedded digits, scored on the 1,000 test
digits, seeds 31, 32, 33. Prints one JSON line per seed with the takeaway's measures;
bench/make_headline.py keeps them beside the headline (kit/analysis/headline.json).

    python bench/odc_paper_momentum.py > runs/odc-m05.jsonl     # ~12 min on 2 cores
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kit  # noqa: E402
from bench.make_headline import numbers  # noqa: E402

train, test = kit.load_dataset("mnist5k"), kit.load_dataset("mnist5k", split="test")
for seed in (31, 32, 33):
    history = kit.ODC(kit.ODCConfig.small(memory_momentum=0.5, seed=seed)).fit(
        train, 30, eval_dataset=test
    )
    print(json.dumps({"seed": seed, **numbers(history)}), flush=True)
