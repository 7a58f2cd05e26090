"""The presentation layer: everything that draws, renders or shows a run. These modules read
histories, run folders and what kit/analysis/ computes, and write only their own outputs (figures,
pages, the TensorBoard log); the parts and the algorithms never import them.

    plots.py     the figures of a comparison (matplotlib): stability, reassignment, cluster sizes,
                 learning curves, seeded bands, the sweep; `save`, `png`, `show`
    live.py      the playground's live board (matplotlib), fed one epoch at a time
    evaluation.py  the evaluation tables (evaluation.json -> Markdown for evaluation.md, rows for
                 the report)
    flight.py    the flight recorder (bokeh): the algorithms side by side on the aligned UMAP
                 layouts, an epoch slider, a thumbnail on hover, selection linked across the views
    page.py      a bokeh view as one self-contained offline page, for notebooks and report.html
    alluvial.py  reassignment flows as a static figure (matplotlib)
    gallery.py   clusters as images, the cluster x class table, the most-moved images (matplotlib)
    lifecycle.py the transitions strip and the per-image stability map (matplotlib)
    ablations.py notebook 05's ablation figures (matplotlib)
    palette.py   colours that read on white: tab10 for classes, 30 distinct cluster colours (class
                 colours above 30 clusters), text colours darkened to a readable contrast, each
                 algorithm's colour
    build.py     the report's share: writes the figures, returns the flight recorder's HTML
    tensorboard_log.py  the optional TensorBoard log, written as a run trains (a callback)

What they draw is computed in kit/analysis/ (flows, transitions, UMAP layouts, run data); the page
that puts a run's figures together is a command, `python -m kit report RUN`
(kit/commands/report.py).

This file imports nothing: `import kit` and the training code stay free of matplotlib and bokeh, and
bokeh is imported inside the functions that draw with it.
"""
