"""BatchNorm folded into the convolution before it, against the network as it is, for the extraction
pass (issue 31, item 12): the same features (relative differences ~1e-6), measured side by side in
one process.

    python bench/bn_fold.py
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import kit  # noqa: E402
from kit.parts import features as kf  # noqa: E402
from kit.parts.runtime import prepare_model  # noqa: E402


def main() -> None:
    digits = kit.load_dataset("mnist5k")
    for backbone in ("convnet", "resnet18"):
        data = digits if backbone == "convnet" else digits.select(torch.arange(1000))
        net = prepare_model(
            kit.ClusterNet(kit.build_backbone(backbone, 1, image_size=28), 10), torch.device("cpu")
        )
        net.eval()
        unfused = lambda m: kf._Features(m.backbone, m.neck)  # noqa: E731 - the network as it is
        runs = {"folded": kf.inference_module, "as it is": unfused}
        times = {k: [] for k in runs}
        out = {}
        for _ in range(4):  # interleaved rounds; the first is a warm-up
            for name, make in runs.items():
                original = kf.inference_module
                kf.inference_module = make
                try:
                    t = time.perf_counter()
                    out[name] = kf.extract_features(net, data, device="cpu")
                    times[name].append(time.perf_counter() - t)
                finally:
                    kf.inference_module = original
        med = {k: statistics.median(v[1:]) for k, v in times.items()}
        drift = float(abs(out["folded"] - out["as it is"]).max() / abs(out["as it is"]).max())
        print(
            f"{backbone}, {len(data):,} images: as it is {med['as it is']:.3f} s, folded "
            f"{med['folded']:.3f} s: folding is {med['as it is'] / med['folded']:.2f}x as fast; "
            f"largest difference {drift:.1e} of the largest feature"
        )


if __name__ == "__main__":
    main()
