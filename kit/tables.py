"""`python -m kit evaluate RUN`: every protocol of `kit.evaluate` on the run's DeepCluster and ODC
backbones, beside a random-init floor and a supervised ceiling, as Markdown tables laid out like
the benchmark pages. Writes `RUN/evaluation.md` (and `evaluation.json`); the report shows it.
"""
from __future__ import annotations

import html
import io
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from . import evaluate as ev
from .data import batches, load_dataset
from .models import Backbone, ClusterNet, build_backbone
from .runs import atomic_write_bytes, atomic_write_json, load_checkpoint, read_config
from .runtime import autocast, grad_scaler, resolve_device, seed_everything
from .seeds import seed_folders
from .training import TrainConfig, build_network, optimise


def check_compare_run(run_path: Path) -> dict:
    """The settings of a finished `kit compare` run; one line for anything else."""
    cfg = read_config(run_path)
    if cfg["command"] != "compare":
        raise ValueError(f"{run_path} is a `{cfg['command']}` run: report and evaluate read `kit compare` runs "
                         "(python -m kit compare --name NAME)" + (
                             f"; a sweep's table is {run_path / 'sweep.md'}" if cfg["command"] == "sweep" else ""))
    check_saved_settings(run_path, cfg["compare"])
    seeds = cfg["compare"].get("seeds", 1)
    if seeds > 1:  # one evaluation takes minutes: the seeds are evaluated one by one, when asked
        seed = (seed_folders(run_path) or [run_path / f"seed-{cfg['compare'].get('seed', 31)}"])[0]
        raise ValueError(f"{run_path} holds {seeds} seeds, each a run of its own: evaluate one, e.g. "
                         f"python -m kit evaluate {seed}")
    if not (run_path / "deepcluster" / "checkpoint.pt").exists():
        raise FileNotFoundError(f"{run_path} is not a finished `kit compare` run (no deepcluster checkpoint): "
                                f"finish it with python -m kit compare --name {run_path.name} --runs {run_path.parent} --resume")
    return cfg["compare"]


def check_saved_settings(run_path: Path, saved) -> None:
    """A hand-edited config.json (`"n_clusters": "abc"`) is refused in one line naming the file, as the
    command line refuses the same value, before any data is loaded or network built."""
    from .compare import CompareConfig

    try:
        CompareConfig(**{**(saved or {}), "device": "cpu"})  # the device is this machine's choice, not the file's
    except (TypeError, ValueError) as e:
        raise ValueError(f"{run_path / 'config.json'} holds settings kit cannot use ({str(e).splitlines()[0]}): "
                         "restore the file from a copy") from None


def load_backbone(run: Path, algo: str, dataset) -> tuple[Backbone, TrainConfig]:
    """The trained backbone of `run/algo/checkpoint.pt`, and the settings it was trained with."""
    path = run / algo / "checkpoint.pt"
    state = load_checkpoint(path)
    if state.get("algo") != algo:
        raise ValueError(f"{path} holds a {state.get('algo')} checkpoint, not {algo}: restore the run's own file")
    common = {f.name for f in fields(TrainConfig)}  # the algorithm's own fields are not needed here
    cfg = TrainConfig.from_dict({k: v for k, v in state["config"].items() if k in common})
    net = build_network(cfg, dataset, neck=(algo == "odc"))
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit this run's network ({str(e).splitlines()[0]})") from None
    return net.backbone, cfg


def train_supervised(cfg: TrainConfig, dataset, epochs: int, device="auto") -> Backbone:
    """The ceiling: the same backbone and augmentation trained with the true labels."""
    device = resolve_device(device)
    seed_everything(cfg.seed)
    c, h, _ = dataset.image_shape
    net = ClusterNet(build_backbone(cfg.backbone, c, cfg.sobel, h), int(dataset.targets.max()) + 1).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    y = dataset.targets.to(device)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(epochs):
        supervised_epoch(net, opt, dataset, torch.randperm(len(dataset), generator=g), cfg.batch_size, y, device)
    return net.backbone


def supervised_epoch(net: ClusterNet, opt, dataset, order, batch_size: int, targets, device) -> float:
    """One epoch of plain cross-entropy on `targets[idx]` (also the benchmarks' baseline epoch), stepped
    as the trainers step: the card's precision and loss scaler, and one read of the loss per step, so a
    timed ratio against a trainer's epoch compares like with like. Returns the mean loss."""
    net.train()
    scaler, losses = grad_scaler(device), []
    for x, idx in batches(dataset, order, batch_size, device, train=True):
        if len(idx) < 2:
            continue
        with autocast(device):
            _, logits = net(x)
        loss = F.cross_entropy(logits.float(), targets[idx.to(device)])
        optimise(opt, scaler, loss)
        losses.append(loss.item())  # as the trainers' logged loss: one wait for the device per step
    return sum(losses) / max(len(losses), 1)


def evaluate_backbones(backbones: dict[str, Backbone], train, test, finetune_steps: int = 200,
                       grid=ev.FINETUNE_GRID, draws: int = 5, log=print, probe_epochs: int = 60) -> dict:
    """All protocols for each named backbone: {name: {"linear", "knn", "svm", "semi"}}."""
    results = {}
    for name, bb in backbones.items():
        t0 = time.perf_counter()
        ftr, fte = ev.stage_features(bb, train), ev.stage_features(bb, test)
        ytr, yte = train.targets, test.targets
        results[name] = {
            "linear": ev.linear_probe(ftr, ytr, fte, yte, epochs=probe_epochs),
            "knn": ev.knn_table(ftr[-1], ytr, fte[-1], yte),
            "svm": ev.svm_table(ftr[-1], ytr, fte[-1], yte, draws=draws),
            "semi": {f: asdict(r) for f, r in ev.semi_supervised(bb, train, test, grid=grid, steps=finetune_steps).items()},
        }
        log(f"evaluated {name} in {time.perf_counter() - t0:.0f} s")
    return results


def markdown(results: dict) -> str:
    """The benchmark pages' tables: linear (Feature1-5, AvgPool), kNN, SVM + low-shot, semi-supervised."""
    names = list(results)
    f = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["### Linear classification, top-1 % (frozen backbone, one linear head per stage)", "",
             "| Model | " + " | ".join(ev.STAGES) + " |", "|---" * (len(ev.STAGES) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(f(results[n]["linear"][s]["top1"]) for s in ev.STAGES) + " |" for n in names]
    ks = list(next(iter(results.values()))["knn"])
    lines += ["", "### kNN on the pooled feature, top-1 %", "", "| Model | " + " | ".join(f"k={k}" for k in ks) + " |",
              "|---" * (len(ks) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(f(results[n]["knn"][k]) for k in ks) + " |" for n in names]
    lows = [k for k in next(iter(results.values()))["svm"] if k != "SVM"]
    lines += ["", "### SVM and low-shot SVM (k labelled images per class; mean ± std over draws), top-1 %", "",
              "| Model | SVM | " + " | ".join(f"k={k}" for k in lows) + " |", "|---" * (len(lows) + 2) + "|"]
    lines += [f"| {n} | {f(results[n]['svm']['SVM'])} | " + " | ".join(
        f"{results[n]['svm'][k][0]:.1f} ± {results[n]['svm'][k][1]:.1f}" for k in lows) + " |" for n in names]
    fr = list(next(iter(results.values()))["semi"])
    lines += ["", "### Semi-supervised fine-tuning, top-1 / top-5 % (best of base lr {0.001, 0.01, 0.1} x head lr multiplier {1, 10, 100})", "",
              "| Model | " + " | ".join(f"{float(x):.0%} top-1 | {float(x):.0%} top-5 | {float(x):.0%} setting" for x in fr) + " |",
              "|---" * (3 * len(fr) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(f"{f(results[n]['semi'][x]['top1'])} | {f(results[n]['semi'][x]['top5'])} | "
                                       f"{results[n]['semi'][x]['setting']}" for x in fr) + " |" for n in names]
    return "\n".join(lines) + "\n"


def markdown_html(md: str) -> str:
    """`markdown`'s output (headings, pipe tables, paragraphs) as HTML for the report: tables as <table>."""
    out, table = [], []

    def flush():
        if table:
            head, *body = table
            cell = lambda tag, c: f"<{tag}>{html.escape(c.strip())}</{tag}>"  # noqa: E731
            out.append("<table><tr>" + "".join(cell("th", c) for c in head) + "</tr>\n" + "\n".join(
                "<tr>" + "".join(cell("td", c) for c in row) + "</tr>" for row in body) + "</table>")
            table.clear()

    for line in md.splitlines():
        line = line.strip()
        if line.startswith("|"):
            if not line.startswith("|---"):  # the header separator
                table.append(line.strip("|").split("|"))
            continue
        flush()
        if line.startswith("#"):
            tag = "h3" if line.startswith("# ") else "h4"  # under the report's "Evaluation protocols" h2
            out.append(f"<{tag}>{html.escape(line.lstrip('#').strip())}</{tag}>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


def evaluate_run(run_path: str | Path, finetune_steps: int = 200, supervised_epochs: int | None = None,
                 grid=ev.FINETUNE_GRID, draws: int = 5, log=print, probe_epochs: int = 60) -> Path:
    """Evaluate a `kit compare` run's backbones beside random-init and supervised ones; write the tables."""
    run_path = Path(run_path)
    cfg = check_compare_run(run_path)
    train = load_dataset(cfg["dataset"], "train", root=cfg.get("root", "data"), n=cfg.get("n_train"))
    test = load_dataset(cfg["dataset"], "test", root=cfg.get("root", "data"))
    learned, base = load_backbone(run_path, "deepcluster", train)
    seed_everything(base.seed)  # the same initial weights the trainers started from
    c, h, _ = train.image_shape
    backbones = {"random init": build_backbone(base.backbone, c, base.sobel, h), "DeepCluster": learned}
    if (run_path / "odc" / "checkpoint.pt").exists():
        backbones["ODC"] = load_backbone(run_path, "odc", train)[0]
    t0 = time.perf_counter()
    backbones["supervised"] = train_supervised(base, train, supervised_epochs or cfg.get("epochs", 30))
    log(f"supervised baseline trained in {time.perf_counter() - t0:.0f} s")
    results = evaluate_backbones(backbones, train, test, finetune_steps, grid, draws, log, probe_epochs)
    atomic_write_json(run_path / "evaluation.json", {n: {**r, "svm": {str(k): v for k, v in r["svm"].items()},
                                                         "knn": {str(k): v for k, v in r["knn"].items()},
                                                         "semi": {str(k): v for k, v in r["semi"].items()}}
                                                     for n, r in results.items()})
    md = f"# Evaluation of {run_path.name}\n\n{cfg['dataset']}: {len(train)} train / {len(test)} test images.\n\n" + markdown(results)
    atomic_write_bytes(run_path / "evaluation.md", md.encode())
    return run_path / "evaluation.md"


def save_torchvision(run_path: str | Path, algo: str, out: str | Path) -> Path:
    """Write the run's `algo` backbone as a torchvision ResNet state dict (`torch.save`)."""
    run_path = Path(run_path)
    cfg = check_compare_run(run_path)
    train = load_dataset(cfg["dataset"], "train", root=cfg.get("root", "data"), n=cfg.get("n_train"))
    sd = ev.export_torchvision(load_backbone(run_path, algo, train)[0])
    buf = io.BytesIO()
    torch.save(sd, buf)
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
