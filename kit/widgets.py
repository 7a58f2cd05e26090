"""The playground: widgets build a config, a background thread trains, plots consume the history.

The kernel stays responsive while training runs: `train()` starts a daemon thread and returns at
once, so a click on Stop (a `threading.Event`) is handled and training ends cleanly at the next
iteration, keeping its history. The thread never writes with `with out:` (that routes output to
whichever cell is running); it sets widget traits and replaces `Output.outputs` with PNG data, and
any error lands in the log box instead of vanishing (ECOSYSTEM.md §3.2-3.4).
Training code never imports ipywidgets; only this module does.
"""
from __future__ import annotations

import threading
import time
import traceback

import ipywidgets as W

from . import plots
from .data import load_dataset
from .deepcluster import DeepCluster, DeepClusterConfig
from .odc import ODC, ODCConfig
from .runtime import fast_mode


class Playground:
    """Controls for both algorithms, Train / Stop buttons, a progress bar and a live plot.

    >>> pg = Playground(); pg.show()      # in a notebook
    >>> pg.algorithm.value = "odc"; pg.train_button.click(); pg.wait()   # or drive it from code
    """

    def __init__(self, redraw_seconds: float = 0.5):
        small = fast_mode()
        style = {"description_width": "150px"}
        lay = W.Layout(width="420px")
        s = dict(style=style, layout=lay, continuous_update=False)
        self.dataset = W.Dropdown(options=["mnist5k", "digits", "cifar10", "stl10"], value="mnist5k", description="dataset", style=style, layout=lay)
        self.n_train = W.IntSlider(400 if small else 4000, 200, 4000, 200, description="train images", **s)
        self.backbone = W.Dropdown(options=["convnet", "resnet18", "resnet50"], value="convnet", description="backbone", style=style, layout=lay)
        self.algorithm = W.ToggleButtons(options=["deepcluster", "odc"], value="deepcluster", description="algorithm", style=style)
        self.n_clusters = W.IntSlider(20 if small else 100, 10, 1000, 10, description="clusters K", **s)
        self.lr = W.FloatLogSlider(0.1, base=10, min=-3, max=0, step=0.1, description="learning rate", **s)
        self.batch_size = W.IntSlider(64, 16, 512, 16, description="batch size", **s)
        self.epochs = W.IntSlider(2 if small else 10, 1, 100, 1, description="epochs", **s)
        self.memory_momentum = W.FloatSlider(0.5, min=0.0, max=1.0, step=0.05, description="memory momentum", **s)
        self.centroid_interval = W.IntSlider(10, 1, 100, 1, description="centroid interval", **s)
        self.min_cluster_size = W.IntSlider(5 if small else 10, 0, 100, 1, description="min cluster size", **s)
        self.pca_dim = W.IntSlider(16 if small else 64, -1, 256, 1, description="PCA dim (-1: none)", **s)
        self.sobel = W.Checkbox(False, description="Sobel front-end", style=style)
        self.train_button = W.Button(description="Train", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = W.IntProgress(0, 0, 1, description="idle", style=style, layout=lay)
        self.status = W.HTML("")
        self.plot = W.Output(layout=W.Layout(min_height="320px"))
        self.log = W.Output(layout=W.Layout(max_height="160px", overflow="auto"))
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        self.redraw_seconds = redraw_seconds
        self.history: dict | None = None
        self.trainer = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_draw = 0.0
        self.draws = 0  # live-plot redraws so far

    # -- layout -----------------------------------------------------------------------------
    @property
    def widget(self) -> W.Widget:
        common = W.VBox([self.dataset, self.n_train, self.backbone, self.algorithm, self.n_clusters, self.lr,
                         self.batch_size, self.epochs])
        specific = W.VBox([W.HTML("<b>ODC only</b>"), self.memory_momentum, self.centroid_interval, self.min_cluster_size,
                           W.HTML("<b>DeepCluster only</b>"), self.pca_dim, self.sobel])
        buttons = W.HBox([self.train_button, self.stop_button, self.progress, self.status])
        return W.VBox([W.HBox([common, specific]), buttons, self.plot, self.log])

    def show(self):
        from IPython.display import display

        display(self.widget)

    # -- config -----------------------------------------------------------------------------
    def config(self):
        """The config the widgets describe: (algorithm, DeepClusterConfig | ODCConfig)."""
        common = dict(n_clusters=self.n_clusters.value, backbone=self.backbone.value, lr=self.lr.value,
                      batch_size=self.batch_size.value, eval_every=max(1, self.epochs.value // 5))
        if self.algorithm.value == "odc":
            return "odc", ODCConfig.small(memory_momentum=self.memory_momentum.value,
                                          centroid_interval=self.centroid_interval.value,
                                          min_cluster_size=self.min_cluster_size.value, **common)
        return "deepcluster", DeepClusterConfig.small(pca_dim=self.pca_dim.value, sobel=self.sobel.value, **common)

    # -- running ----------------------------------------------------------------------------
    def train(self) -> None:
        """Start training in a background thread; returns at once."""
        if self._thread is not None and self._thread.is_alive():
            self._say("already training: press Stop first")
            return
        algo, cfg = self.config()
        self._stop.clear()
        self.history = None
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.progress.description = algo
        self._thread = threading.Thread(target=self._run, args=(algo, cfg), name="kit-playground", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask training to end at the next iteration; the history so far is kept."""
        self._stop.set()
        self.status.value = "stopping…"

    def wait(self, timeout: float | None = None) -> dict | None:
        """Block until the training thread ends (for scripts and tests); returns the history."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.history

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, algo: str, cfg) -> None:
        try:
            train = load_dataset(self.dataset.value, n=self.n_train.value)
            test = load_dataset(self.dataset.value, split="test", n=min(1000, self.n_train.value))
            self.trainer = (ODC if algo == "odc" else DeepCluster)(cfg)
            steps = -(-len(train) // cfg.batch_size) * self.epochs.value
            self.progress.max, self.progress.value = steps, 0
            self.status.value = "clustering the untrained network…"
            self.history = self.trainer.fit(train, self.epochs.value, callback=self._on_record, eval_dataset=test,
                                            stop=self._stop)
            self._draw(force=True)
            done = len(self.history["epoch"])
            self.status.value = (f"stopped after {done} epochs" if self._stop.is_set() else f"done: {done} epochs")
        except Exception:  # noqa: BLE001 - shown in the log box, never lost in the thread
            self.status.value = "<span style='color:red'>failed: see the log</span>"
            self.log.append_stderr(traceback.format_exc())
        finally:
            self.train_button.disabled, self.stop_button.disabled = False, True

    def _on_record(self, record: dict) -> None:
        if record["kind"] == "step":
            self.progress.value = min(self.progress.value + 1, self.progress.max)
            self.status.value = f"epoch {record['epoch'] + 1}, loss {record['loss']:.3f}"
        else:
            self._say(", ".join(f"{k}={v:.3f}" for k, v in record.items() if isinstance(v, float) and v is not None
                                and k in ("loss", "nmi_prev", "label_change", "change_ratio", "knn", "nmi_true")))
        self.history = self.trainer.history
        self._draw()

    def _draw(self, force: bool = False) -> None:
        """Redraw at most every `redraw_seconds` (drawing every step would dominate a CPU run)."""
        if self.history is None or (not force and time.monotonic() - self._last_draw < self.redraw_seconds):
            return
        self._last_draw = time.monotonic()
        png = plots.png(plots.live(self.history, self.trainer.algo))
        self.plot.outputs = ({"output_type": "display_data", "data": {"image/png": _b64(png), "text/plain": "live plot"},
                              "metadata": {}},)
        self.draws += 1

    def _say(self, text: str) -> None:
        self.log.append_stdout(text + "\n")


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
