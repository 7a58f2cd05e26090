"""Command line: `python -m kit compare | train | report`.

    python -m kit compare [--dataset mnist5k] [--epochs 30] [--device auto] [--name NAME] [--resume]
    python -m kit train --algo deepcluster|odc [--epochs N] [--name NAME] [--resume]
    python -m kit report runs/NAME
    python -m kit evaluate runs/NAME [--export deepcluster]

KIT_FAST=1 in the environment shrinks everything to a seconds-long smoke run (used by the tests).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .runtime import fast_mode



def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist5k", help="mnist5k (embedded), digits, cifar10, stl10, imagefolder")
    p.add_argument("--root", default="data", help="where torchvision datasets / image folders live")
    p.add_argument("--epochs", type=int, default=None, help="epochs of training (default 30; 2 with KIT_FAST=1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--backbone", default="convnet", help="convnet, resnet18, resnet50")
    p.add_argument("--n-clusters", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=31)
    p.add_argument("--n-train", type=int, default=None, help="keep a class-stratified subset of the train split")
    p.add_argument("--name", default=None, help="run folder under --runs (default: dataset and time)")
    p.add_argument("--runs", default="runs", help="where run folders go")
    p.add_argument("--resume", action="store_true", help="continue the run --name from its checkpoint")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kit", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="train DeepCluster and ODC side by side and write a report")
    _common(c)
    t = sub.add_parser("train", help="train one algorithm")
    _common(t)
    t.add_argument("--algo", required=True, choices=["deepcluster", "odc"])
    r = sub.add_parser("report", help="rebuild the figures and report.html of a saved comparison run")
    r.add_argument("run", help="the run folder, e.g. runs/mnist5k-20261123-101500")
    e = sub.add_parser("evaluate", help="linear / kNN / SVM / semi-supervised tables for a comparison run")
    e.add_argument("run", help="the run folder of a finished `compare`")
    e.add_argument("--finetune-steps", type=int, default=None, help="SGD steps per fine-tuning setting (default 200)")
    e.add_argument("--export", choices=["deepcluster", "odc"], default=None,
                   help="also save that backbone as a torchvision ResNet state dict (ResNet backbones only)")
    return p


def _compare_config(a):
    from .compare import CompareConfig

    cfg = CompareConfig(dataset=a.dataset, root=a.root, epochs=a.epochs or 30, n_clusters=a.n_clusters,
                        backbone=a.backbone, batch_size=a.batch_size, lr=a.lr, device=a.device, seed=a.seed,
                        n_train=a.n_train)
    if fast_mode():  # seconds, not minutes: 400 images, 2 epochs, K = 20
        cfg.epochs, cfg.n_clusters, cfg.n_train = a.epochs or 2, min(a.n_clusters, 20), a.n_train or 400
        cfg.embed_points, cfg.embed_epochs = 300, [0, 1, 2]
    return cfg


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    name = getattr(a, "name", None) or f"{getattr(a, 'dataset', 'run')}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        if a.command == "report":
            from .report import build_report

            print(f"report: {build_report(Path(a.run)).resolve()}")
        elif a.command == "evaluate":
            from .evaluate import FINETUNE_GRID
            from .report import build_report
            from .tables import evaluate_run, save_torchvision

            if a.export:
                print(f"torchvision weights: {save_torchvision(a.run, a.export, Path(a.run) / f'{a.export}_torchvision.pt')}")
            fast = fast_mode()
            out = evaluate_run(a.run, finetune_steps=a.finetune_steps or (5 if fast else 200),
                               supervised_epochs=2 if fast else None, draws=2 if fast else 5,
                               grid=((0.01, 1), (0.1, 10)) if fast else FINETUNE_GRID)  # a 2-setting grid for smoke runs
            print(Path(out).read_text())
            build_report(Path(a.run))
            print(f"tables: {Path(out).resolve()} (also in the run's report.html)")
        elif a.command == "compare":
            from .compare import run_compare

            out = run_compare(name, _compare_config(a), runs_root=a.runs, resume=a.resume)
            print(f"\nreport: {out.resolve()}\nopen it in a browser, or rebuild it with: python -m kit report {out.parent}")
        else:
            _train(a, name)
    except KeyboardInterrupt:
        print(f"\ninterrupted: what was written under {a.runs if hasattr(a, 'runs') else 'runs'}/{name} is kept; "
              f"continue with: python -m kit {a.command} --name {name} --resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _train(a, name: str) -> None:
    from .data import load_dataset
    from .deepcluster import DeepCluster
    from .odc import ODC
    from .runs import Run, atomic_write_json

    cfg = _compare_config(a)
    algo_cfg = cfg.algo_configs()[a.algo]
    run = Run.create(a.runs, name, resume=a.resume)
    atomic_write_json(run.file("config.json"), {"algo": a.algo, **algo_cfg.to_dict()})
    train = load_dataset(cfg.dataset, "train", root=cfg.root, n=cfg.n_train)
    test = load_dataset(cfg.dataset, "test", root=cfg.root)
    trainer = (DeepCluster if a.algo == "deepcluster" else ODC)(algo_cfg)
    h = trainer.fit(train, cfg.epochs, eval_dataset=test, run=run, progress=True)
    last = h["epoch"][-1] if h["epoch"] else {}
    print(f"{a.algo}: {len(h['epoch'])} epochs; final " + ", ".join(
        f"{k}={last[k]:.3f}" for k in ("loss", "knn", "nmi_true", "nmi_prev") if last.get(k) is not None))
    print(f"run folder: {run.path.resolve()}")


if __name__ == "__main__":
    sys.exit(main())
