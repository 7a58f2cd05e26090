"""How far one k-means seed moves 'agreement with the classes': the example run's final backbones
(kit.example_run(), 30 epochs, K = 30, seed 31), their features of the 1,000 test digits, a 10-means
with 10 seeds, AMI to the classes.

    python bench/kmeans_seed_noise.py       # seconds; bench/equal_k.md quotes its output
"""
import numpy as np

import kit
from kit.parts.clustering import KMeans, l2_normalize
from kit.commands.evaluate_run import load_backbone
from kit.parts.metrics import ami

run, train, test = (
    kit.example_run(),
    kit.load_dataset("mnist5k"),
    kit.load_dataset("mnist5k", split="test"),
)
for algo in ("deepcluster", "odc"):
    backbone, _ = load_backbone(run, algo, train)
    x = l2_normalize(kit.extract_features(backbone, test))
    values = [
        ami(KMeans(10, n_iter=20, seed=s).fit(x).labels_, test.targets.numpy()) for s in range(10)
    ]
    print(
        f"{algo}: AMI to the classes over 10 k-means seeds {min(values):.3f} to {max(values):.3f} "
        f"(mean {np.mean(values):.3f}, std {np.std(values, ddof=1):.3f})"
    )
