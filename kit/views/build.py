"""The image-level views of a run for its report: the static figures and the flight recorder's
section."""
from __future__ import annotations

import html
import time
from pathlib import Path

from ..analysis.rundata import RunData
from . import plots

# file -> one-line caption (report.py lists them with its other figures)
FIGURES = {
    "flows.png": "Reassignment flows: where each class's images go from cluster to cluster across "
                 "the saved epochs (ids carried by Hungarian matching), and the largest "
                 "cluster-to-cluster moves.",
    "flows_last.png": "The same flows over one epoch: the last transition both algorithms have "
                      "(the same transition for both).",
    "clusters.png": "Clusters as images: the largest clusters of the UMAP subset, the images "
                    "nearest each centroid, with size and purity.",
    "confusion.png": "Cluster x class counts after matching each cluster to its majority class.",
    "moved.png": "The images that changed cluster most often, counted over the same transitions "
                 "for both algorithms.",
    "transitions.png": "What clusters do between epochs: survived, absorbed (merged), split, "
                       "shrank, died and born, beside the fraction of images reassigned.",
    "stability_map.png": "Per-image stability: how often each image kept its cluster against its "
                         "distance to its centroid, and the images that kept theirs least.",
}


def build(run_path: str | Path, log=print, figures: bool = True) -> str:
    """Write the views' figures into the run folder; return the report's interactive section (HTML).
    `figures=False` draws only the figures not there yet."""
    from .alluvial import flows_figure
    from .flight import flight_recorder
    from .gallery import clusters_figure, confusion_figure, moved_figure
    from .lifecycle import stability_map_figure, transitions_figure

    run_path, t0 = Path(run_path), time.perf_counter()
    data = RunData.load(run_path)

    plots.draw(run_path / "flows.png", lambda: flows_figure(data), figures)
    last = data.common_snapshots() - 1
    if last >= 1:  # a run of one epoch has no transition both algorithms made
        plots.draw(
            run_path / "flows_last.png",
            lambda: flows_figure(data, epochs=[last - 1, last]),
            figures,
        )
    plots.draw(run_path / "confusion.png", lambda: confusion_figure(data), figures)
    if last >= 1:
        plots.draw(run_path / "transitions.png", lambda: transitions_figure(data), figures)
        plots.draw(run_path / "stability_map.png", lambda: stability_map_figure(data), figures)
    if data.images is not None:
        plots.draw(run_path / "clusters.png", lambda: clusters_figure(data), figures)
        plots.draw(run_path / "moved.png", lambda: moved_figure(data), figures)
    page = flight_recorder(data)
    section = (f"<h2>The flight recorder</h2>\n<p>{html.escape(_HELP)}</p>\n{page.iframe()}")
    log(f"image-level views in {time.perf_counter() - t0:.1f} s")
    return section


_HELP = (
    "The same images in both views, on the aligned UMAP layouts of each saved epoch. Drag the "
    "slider or press play to watch them move; colour them by true class, by cluster (ids carried "
    "across epochs) or by whether they changed cluster in the previous epoch; hover for the "
    "image; box- or lasso-select in either view to see the selection in both and, below, each "
    "image with its cluster history."
)
