"""The playground: widgets build a config, a background thread trains, the live board draws the
history.

The kernel stays responsive while training runs: `train()` starts a daemon thread and returns at
once, so a click on Stop (a `threading.Event`) is handled and training ends cleanly at the next
iteration; the unfinished epoch is rolled back (the finished ones are kept). The controls start at
each algorithm's preset (`.small()`, or `.fast()` under KIT_FAST). With algorithm "both",
DeepCluster and then ODC train and share the board, each at its own preset for the shared knobs (K,
lr, batch) until the user moves one, which from then on applies to both (a note under the controls
says which). Every earlier run stays on the board, faded and labelled with the settings that
differed (`kit.views.live`). "Sweep K" trains a small sweep (`kit.commands.sweep`) and draws it cell
by cell.

The thread never writes with `with out:` (that routes output to whichever cell is running); it sets
widget traits and replaces `Output.outputs` with PNG data. An error shows as one line in the status
and its traceback in the collapsed log (ECOSYSTEM.md §3.2-3.4). Training code never imports
ipywidgets; only this module does.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

import ipywidgets as W

from ..algorithms import CONFIGS, GRID_KEYS, NAMES, SPECS, TRAINERS, check_controls, compared
from ..commands.compare import CompareConfig
from ..commands.sweep import SweepConfig
from ..parts import collapse
from ..parts.data import load_dataset, needs_download
from ..parts.runtime import fast_mode
from ..views import plots
from ..views.live import Trace, board, board_labels

# knobs both algorithms have, as the board names them
SHARED = {"n_clusters": "K", "lr": "lr", "batch_size": "batch"}
EPOCHS = 10  # a press of Train: about a minute per algorithm on the embedded digits, on 2 CPU cores
MAX_TRAIN = 4000  # the train-images slider's top: all of mnist5k's train split
# a dataset whose train split is larger: the slider reaches all of it
TRAIN_IMAGES = {"fashion5k": 5000}


class Playground:
    """Controls for both algorithms, Train / Stop / Sweep buttons, a progress bar and a live board.

    >>> pg = Playground(); pg.show()      # in a notebook
    >>> pg.algorithm.value = "odc"; pg.train_button.click(); pg.wait()   # or drive it from code
    """

    def __init__(self, redraw_seconds: float = 0.5, runs_root: str = "runs"):
        fast = fast_mode()
        self.presets = self._presets(CompareConfig.dataset)  # where each algorithm starts
        self._controls(fast)
        style = {"description_width": "150px"}
        lay = W.Layout(width="420px")
        self.train_button = W.Button(description="Train", button_style="success", icon="play")
        self.stop_button = W.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.sweep_button = W.Button(
            description="Sweep K",
            icon="table",
            tooltip="train each algorithm once per K; "
            "scores on a validation split carved from the train images",
        )
        self.progress = W.IntProgress(0, 0, 1, description="idle", style=style, layout=lay)
        self.status = W.HTML("")
        self.plot = W.Output(layout=W.Layout(min_height="320px"))
        # the board's runs in words: which are this press's, which are faded
        self.caption = W.HTML("")
        self.log = W.Output(layout=W.Layout(max_height="200px", overflow="auto"))
        self.log_box = W.Accordion(children=[self.log], selected_index=None)
        self.log_box.set_title(0, "log (per-epoch values, errors in full)")
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        self.sweep_button.on_click(lambda _: self.sweep())
        self._show_preset()
        self.redraw_seconds = redraw_seconds
        self.runs_root = runs_root
        # every run of this playground, oldest first; the board fades earlier ones
        self.runs: list[Trace] = []
        self.history: dict | None = None  # the history of the run training now, or of the last one
        self.trainer = None
        self.sweep_path = None  # the sweep's folder under runs_root, once one started
        self._current: list[Trace] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_draw = 0.0
        self._iters = 0  # iterations done in the epoch under way
        self._watch: collapse.Watch | None = None  # the collapse alarm of the run training now
        self._losses: list[float] = []  # its step losses, read by the alarm every few steps
        self.alarm = ""  # the collapse alarm's lines for this press of Train, "" while none
        self.draws = 0  # live-board redraws so far

    def _controls(self, fast: bool) -> None:
        """The knobs, each starting at its preset: the algorithms' (`self.presets`), the
        comparison's (`CompareConfig`: dataset, images) and the sweep's (`SweepConfig`: the K
        values)."""
        # the shared knobs start at the first algorithm's preset
        first = next(iter(self.presets.values()))
        run, sweep = (
            (CompareConfig.fast(), SweepConfig.fast()) if fast else (CompareConfig(), SweepConfig())
        )
        style = {"description_width": "150px"}
        lay = W.Layout(width="420px")
        s = dict(style=style, layout=lay, continuous_update=False)
        self.dataset = W.Dropdown(
            options=_dataset_options(),
            value=run.dataset,
            description="dataset",
            style=style,
            layout=lay,
        )
        self.n_train = W.IntSlider(
            run.n_train or MAX_TRAIN, 200, MAX_TRAIN, 200, description="train images", **s
        )
        self.backbone = W.Dropdown(
            options=["convnet", "resnet18", "resnet50"],
            value=first.backbone,
            description="backbone",
            style=style,
            layout=lay,
        )
        self.algorithm = W.ToggleButtons(
            options=[("both", "both"), *((title, algo) for algo, title in NAMES.items())],
            value="both",
            description="algorithm",
            style=style,
        )
        self.n_clusters = W.IntSlider(first.n_clusters, 10, 1000, 10, description="clusters K", **s)
        self.lr = W.FloatLogSlider(
            first.lr, base=10, min=-3, max=0, step=0.1, description="learning rate", **s
        )
        self.batch_size = W.IntSlider(first.batch_size, 16, 512, 16, description="batch size", **s)
        self.epochs = W.IntSlider(
            run.epochs if fast else EPOCHS, 1, 100, 1, description="epochs", **s
        )
        # a checkbox's long description is not cut short
        wide = dict(style=style, layout=W.Layout(width="480px"))
        check_controls()  # a spec registered since import is checked too
        self.switched_on = {}  # a switch's field -> the value it sets when ticked
        for algo, spec in SPECS.items():  # each algorithm's own knobs, from its spec, at its preset
            for c in spec.controls:
                setattr(
                    self, c.attribute, self._control(c, self.presets[algo], CONFIGS[algo], s, wide)
                )
        self.tensorboard = W.Checkbox(
            False, description="also log to TensorBoard (runs/playground/tb)", **wide
        )
        self.sweep_k = W.Text(
            ",".join(map(str, sweep.n_clusters)),
            description="sweep K over",
            style=style,
            layout=lay,
        )
        # the shared knobs the user has moved: those apply to both algorithms
        self.moved: set[str] = set()
        self._showing_preset = False  # True while the controls themselves set a knob (not a move)
        # wraps: the left column stays as wide as its sliders
        self.preset_note = W.HTML("", layout=W.Layout(width="430px"))
        for name in SHARED:
            getattr(self, name).observe(lambda change, name=name: self._knob_moved(name), "value")
        self.algorithm.observe(lambda _: self._show_preset(), "value")
        self.dataset.observe(lambda _: self._dataset_changed(), "value")
        for knob in (self.n_train, getattr(self, "min_cluster_size", None)):
            if knob is not None:
                knob.observe(lambda _: self._k_range(), "value")
        self._k_range()

    def _control(self, c, preset, config_class, slider: dict, wide: dict) -> W.Widget:
        """The widget of one of an algorithm's own knobs (`algorithms.Control`), at the algorithm's
        preset."""
        value = getattr(preset, c.field)
        if c.switch:
            on = value or getattr(config_class(), c.field)  # the value it sets when ticked
            self.switched_on[c.field] = on
            return W.Checkbox(bool(value), description=c.label.format(value=on), **wide)
        if c.low is None:
            return W.Checkbox(value, description=c.label, **wide)
        kind = W.FloatSlider if isinstance(value, float) else W.IntSlider
        return kind(value, min=c.low, max=c.high, step=c.step, description=c.label, **slider)

    @staticmethod
    def _presets(dataset: str) -> dict:
        """Each algorithm's preset on `dataset` (`.fast()` under KIT_FAST): {algorithm: config}."""
        return {
            algo: getattr(config, "fast" if fast_mode() else "small")(dataset=dataset)
            for algo, config in CONFIGS.items()
        }

    def _dataset_changed(self) -> None:
        """Another dataset: every knob not moved starts again from that dataset's presets (fashion5k
        has its own, bench/presets.md), each algorithm's own knobs too, and the train-images slider
        reaches its train split."""
        self.presets = self._presets(self.dataset.value)
        self._showing_preset = True
        try:
            for algo, spec in SPECS.items():
                for c in spec.controls:
                    value = getattr(self.presets[algo], c.field)
                    getattr(self, c.attribute).value = bool(value) if c.switch else value
            self.n_train.max = TRAIN_IMAGES.get(self.dataset.value, MAX_TRAIN)
        finally:
            self._showing_preset = False
        self._show_preset()

    def _own(self, algo: str) -> dict:
        """`algo`'s own knobs as set: {config field: value}."""
        return {
            c.field: (self.switched_on[c.field] if getattr(self, c.attribute).value else 0.0)
            if c.switch
            else getattr(self, c.attribute).value
            for c in SPECS[algo].controls
        }

    def _k_range(self) -> None:
        """K's slider reaches as far as the images allow: N / max(min_cluster_size, 10), at least 10
        (ODC refuses K above N / min_cluster_size; the floor of 10 images a cluster keeps
        DeepCluster's clusters as large)."""
        least = getattr(self, "min_cluster_size", None)
        top = max(10, self.n_train.value // max(least.value if least is not None else 0, 10))
        # a K clipped to the new top is not a user's move
        self._showing_preset, before = True, self._showing_preset
        try:
            self.n_clusters.max = top
        finally:
            self._showing_preset = before

    # -- layout -----------------------------------------------------------------------------
    @property
    def widget(self) -> W.Widget:
        common = W.VBox(
            [
                self.dataset,
                self.n_train,
                self.backbone,
                self.algorithm,
                self.n_clusters,
                self.lr,
                self.batch_size,
                self.epochs,
                self.preset_note,
            ]
        )
        own = [
            w
            for spec in SPECS.values()
            if spec.controls
            for w in (
                W.HTML(f"<b>{spec.title} only</b>"),
                *(getattr(self, c.attribute) for c in spec.controls),
            )
        ]
        specific = W.VBox([*own, W.HTML("<b>Sweep</b>"), self.sweep_k, self.tensorboard])
        buttons = W.HBox(
            [self.train_button, self.stop_button, self.sweep_button, self.progress, self.status]
        )
        return W.VBox([W.HBox([common, specific]), buttons, self.plot, self.caption, self.log_box])

    def show(self):
        from IPython.display import display

        display(self.widget)

    # -- config -----------------------------------------------------------------------------
    def algos(self) -> list[str]:
        return compared() if self.algorithm.value == "both" else [self.algorithm.value]

    def config(self, algo: str | None = None):
        """The config the widgets describe for `algo` (default: the selected one, DeepCluster for
        "both"): (algorithm, DeepClusterConfig | ODCConfig). A shared knob the user has not moved
        keeps `algo`'s preset. The board measures kNN and NMI every epoch."""
        algo = algo or self.algos()[0]
        common = dict(backbone=self.backbone.value, eval_every=1, **self._shared(algo))
        # the config's own checks run again
        return algo, replace(self.presets[algo], **common, **self._own(algo))

    def settings(self, algo: str) -> dict:
        """What a run was trained with, in the words the board's labels use ("K=30, lr=0.3")."""
        shared = self._shared(algo)
        out = {
            "dataset": self.dataset.value,
            "images": self.n_train.value,
            "backbone": self.backbone.value,
            **{label: shared[name] for name, label in SHARED.items()},
            "epochs": self.epochs.value,
        }
        out["lr"] = round(out["lr"], 4)
        return out | {c.short: getattr(self, c.attribute).value for c in SPECS[algo].controls}

    def _shared(self, algo: str) -> dict:
        """K, lr and batch for `algo`: a knob the user moved as set, the others at `algo`'s
        preset."""
        return {
            name: getattr(self, name).value
            if name in self.moved
            else getattr(self.presets[algo], name)
            for name in SHARED
        }

    def _knob_moved(self, name: str) -> None:
        if not self._showing_preset:
            self.moved.add(name)
            self._show_preset()

    def _show_preset(self) -> None:
        """Set the unmoved shared knobs to the selected algorithm's preset ("both": DeepCluster's)
        and say in the note which knobs follow each algorithm's preset."""
        first = self.presets[self.algos()[0]]
        self._showing_preset = True
        try:
            for name in set(SHARED) - self.moved:
                getattr(self, name).value = getattr(first, name)
        finally:
            self._showing_preset = False
        pair = {a: self.presets[a] for a in self.algos()}  # "both": the algorithms it trains
        # knobs where their presets differ
        own = [name for name in SHARED if name not in self.moved
               and len({getattr(p, name) for p in pair.values()}) > 1]
        if self.algorithm.value != "both" or not own:
            self.preset_note.value = ""
            return
        each = "; ".join(f"{NAMES[a]} " + ", ".join(f"{SHARED[n]}={getattr(p, n):g}" for n in own)
                         for a, p in pair.items())
        self.preset_note.value = (
            "<small>both: each algorithm trains at its own preset for "
            f"{', '.join(SHARED[n] for n in own)} ({each}); a knob you move applies to both</small>"
        )

    # -- running ----------------------------------------------------------------------------
    def train(self) -> None:
        """Train the selected algorithm (or both, one after the other) in a background thread;
        returns at once."""
        if not self._start_check():
            return
        try:
            jobs = [(algo, self.config(algo)[1], self.settings(algo)) for algo in self.algos()]
        except ValueError as e:  # a setting the algorithm's config refuses
            self._fail(str(e))
            return
        self._start(self._train_all, jobs)

    def sweep(self) -> None:
        """Train a sweep over the K values typed in `sweep_k` (both algorithms, or the selected one)
        in the background, drawing its figure after every cell. Each press writes a new sweep folder
        under `runs_root` (`sweep_path`); `python -m kit sweep --name ... --resume` continues
        one."""
        if not self._start_check():
            return
        try:
            ks = [int(v) for v in self.sweep_k.value.replace(" ", "").split(",") if v]
            shared = self._shared(self.algos()[0])
            # one lr for every cell: "both" with lr unmoved takes the sweep's own, as
            # `python -m kit sweep` does
            lr = (
                {}
                if self.algorithm.value == "both" and "lr" not in self.moved
                else {"lr": [round(shared["lr"], 4)]}
            )
            knobs = {  # each one's own
                k: [getattr(self, k).value] for k in GRID_KEYS if k not in ("n_clusters", "lr")
            }
            cfg = SweepConfig(
                algos=self.algos(),
                n_clusters=ks,
                **lr,
                **knobs,
                epochs=self.epochs.value,
                n_val=min(1000, self.n_train.value // 4),
                n_train=self.n_train.value,
                dataset=self.dataset.value,
                backbone=self.backbone.value,
                batch_size=shared["batch_size"],
            )
        except ValueError as e:
            self._fail(f"sweep K over: {e}" if "invalid literal" in str(e) else str(e))
            return
        self._start(self._sweep, cfg)

    def stop(self) -> None:
        """Ask training to end at the next iteration (a sweep: after the cell under way); the
        history so far is kept."""
        self._stop.set()
        self.status.value = "stopping…"

    def wait(self, timeout: float | None = None) -> dict | None:
        """Block until the training thread ends (for scripts and tests); returns the last run's
        history."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.history

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start_check(self) -> bool:
        """False, with the reason in the status, when nothing may start now."""
        if self.running:
            self._say("already training: press Stop first")
            return False
        note = needs_download(self.dataset.value)
        if note:
            self._fail(note)
            return False
        return True

    def _start(self, target, arg) -> None:
        self._stop.clear()
        # before the thread, so no earlier "done" reads as this run's
        self.status.value = "starting…"
        self.train_button.disabled = self.sweep_button.disabled = True
        self.stop_button.disabled = False
        self._thread = threading.Thread(
            target=self._guarded, args=(target, arg), name="kit-playground", daemon=True
        )
        self._thread.start()

    def _guarded(self, target, arg) -> None:
        try:
            target(arg)
        except Exception as e:
            # one line in the status, the traceback in the log: never lost in the thread
            self._fail(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}")
            self.log.append_stderr(traceback.format_exc())
        finally:
            self.train_button.disabled = self.sweep_button.disabled = False
            self.stop_button.disabled = True

    def _fail(self, line: str) -> None:
        import html

        self.status.value = f"<span style='color:#c00'>{html.escape(line)}</span>"

    def _train_all(self, jobs: list) -> None:
        n = self.n_train.value
        train = load_dataset(self.dataset.value, n=n)
        test = load_dataset(self.dataset.value, split="test", n=min(1000, n))
        per_epoch = -(-len(train) // self.batch_size.value)
        self.progress.max, self.progress.value = per_epoch * self.epochs.value * len(jobs), 0
        earlier = len(self.runs)
        self.alarm = ""
        self._current = [Trace(algo, settings) for algo, _, settings in jobs]
        self.runs.extend(self._current)
        done = []
        for trace, (algo, cfg, _) in zip(self._current, jobs):
            self.trainer, self._iters = TRAINERS[algo](cfg), 0
            self._watch, self._losses = collapse.Watch(NAMES[algo], cfg.n_clusters), []
            self.history = trace.history = self.trainer.history
            self.progress.description = NAMES[algo]
            self.status.value = f"{NAMES[algo]}: measuring the untrained network…"
            tb = self._tensorboard(algo, cfg)
            self.trainer.fit(train, self.epochs.value, eval_dataset=test, stop=self._stop,
                             callbacks=[self._on_record, *([tb] if tb else [])])
            epochs = len(trace.history["epoch"])
            if self._stop.is_set():
                done.append(
                    f"{NAMES[algo]} stopped after {epochs} epoch{'s' * (epochs != 1)}"
                    + (
                        f"; epoch {epochs + 1} rolled back after {self._iters} of {per_epoch} "
                        "iterations"
                        if self._iters
                        else ""
                    )
                )
                done += [f"{NAMES[a]} not started" for a, _, _ in jobs[len(done):]]
                break
            done.append(f"{NAMES[algo]} {epochs} epoch{'s' * (epochs != 1)}")
        self._draw(force=True, earlier=self.runs[:earlier])
        self._status(("stopped: " if self._stop.is_set() else "done: ") + "; ".join(done))

    def _tensorboard(self, algo: str, cfg):
        """With the TensorBoard box ticked: a logger for this run, `runs/playground/tb/<n>-<algo>`
        (n counts the playground's runs), so `tensorboard --logdir runs/playground/tb` shows every
        press side by side."""
        if not self.tensorboard.value:
            return None
        from ..views.tensorboard_log import TensorBoardLog, check_available

        check_available()  # one line in the status, naming the extra, when tensorboard is missing
        return TensorBoardLog(
            Path(self.runs_root) / "playground" / "tb" / f"{len(self.runs):03d}-{algo}",
            cfg.to_dict(),
            self.trainer,
        )

    def _status(self, text: str) -> None:
        """The status line, with the collapse alarm after it in red for as long as this press's runs
        last."""
        import html

        self.status.value = html.escape(text) + (
            f"<br><span style='color:#c00'><b>⚠</b> {html.escape(self.alarm)}</span>"
            if self.alarm
            else ""
        )

    def _raise(self, line: str | None) -> None:
        if line:
            self.alarm = (self.alarm + " | " if self.alarm else "") + line
            self._say(line)

    def _on_record(self, record: dict) -> None:
        if record["kind"] == "step":
            self._iters += 1
            self._losses.append(record["loss"])
            # every few steps: the loss, and ODC's labels as they are now
            if self._iters % collapse.STEP_WINDOW == 0:
                memory = getattr(self.trainer, "memory", None)
                self._raise(
                    self._watch.steps(
                        record["epoch"], self._losses, None if memory is None else memory.labels
                    )
                )
            self.progress.value = min(self.progress.value + 1, self.progress.max)
            self._status(
                f"{NAMES[record['algo']]}: epoch {record['epoch'] + 1}, loss {record['loss']:.3f}"
            )
        else:
            self._iters = 0
            self._raise(self._watch(record))
            self._say(
                f"{self.trainer.algo} epoch {record['epoch'] + 1}: "
                + ", ".join(
                    f"{k}={record[k]:.3f}"
                    for k in ("loss", "nmi_prev", "label_change", "change_ratio", "knn", "nmi_true")
                    if isinstance(record.get(k), float)
                )
            )
        self._draw(earlier=self.runs[:len(self.runs) - len(self._current)])

    def _draw(self, force: bool = False, earlier: list[Trace] | None = None) -> None:
        """Redraw at most every `redraw_seconds` (drawing every step would dominate a CPU run)."""
        if not force and time.monotonic() - self._last_draw < self.redraw_seconds:
            return
        self._last_draw = time.monotonic()
        earlier = earlier or []
        self._show(board(self._current, earlier, self.epochs.value), "live board")
        shown = board_labels(self._current, earlier)
        self.caption.value = (
            "<small>on the board: <b>"
            + ", ".join(shown["current"])
            + "</b>"
            + ("; faded: " + "; ".join(shown["earlier"]) if shown["earlier"] else "")
            + "</small>"
        )

    def _show(self, fig, text: str) -> None:
        png = plots.png(fig)
        self.plot.outputs = (
            {
                "output_type": "display_data",
                "data": {"image/png": _b64(png), "text/plain": text},
                "metadata": {},
            },
        )
        self.draws += 1

    def _sweep(self, cfg) -> None:
        from ..commands.sweep import METRICS, curves, run_sweep

        name = "playground-sweep-" + time.strftime("%Y%m%d-%H%M%S")
        self.sweep_path, total = Path(self.runs_root) / name, len(cfg.cells())
        self.progress.description, self.progress.max, self.progress.value = "sweep", total, 0
        self.status.value = f"sweep: training cell 1 of {total}"

        def drawn(results, cells):
            self.progress.value = len(results)
            self.status.value = f"sweep: {len(results)} of {total} cells done" + (
                f", training cell {len(results) + 1}" if len(results) < total else "")
            self._show(
                plots.sweep(curves(results), METRICS), f"sweep, {len(results)} of {total} cells"
            )

        run_sweep(
            name, cfg, self.runs_root, progress=False, log=self._say, on_cell=drawn, stop=self._stop
        )
        done = self.progress.value
        self.status.value = (
            f"sweep {'stopped' if done < total else 'done'}: {done} of {total} cells; "
            f"table in {self.sweep_path / 'sweep.md'}"
        )

    def _say(self, text: str) -> None:
        self.log.append_stdout(text + "\n")


def _dataset_options() -> list[tuple[str, str]]:
    """The dataset menu: those that need a download say so in their label."""
    return [(name + (" (needs a download)" if needs_download(name) else ""), name)
            for name in ("mnist5k", "fashion5k", "digits", "cifar10", "stl10")]


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
