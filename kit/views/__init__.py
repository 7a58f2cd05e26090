"""The presentation layer: everything that draws, renders or shows a run. These modules only read
histories and run folders and change nothing; the training code never imports them.

    plots.py     the figures of a comparison (matplotlib): stability, reassignment, cluster sizes,
                 learning curves, seeded bands, the sweep; `save`, `png`, `show`
    live.py      the playground's live board (matplotlib), fed one epoch at a time
    report.py    `python -m kit report RUN`: every figure and report.html from a saved run
    evaluation.py  the evaluation tables (evaluation.json -> Markdown for evaluation.md, rows for the report)
    embed.py     aligned UMAP layouts of the features across epochs (faiss kNN graph, Procrustes)
    flows.py     the maths: cluster ids carried across epochs (Hungarian), flow tables, flips, purity,
                 images nearest a centroid; pure functions of label and feature arrays
    rundata.py   RunData: what the views read from a run folder, gathered once
    flight.py    the flight recorder (bokeh): DeepCluster | ODC on the aligned UMAP layouts, an epoch
                 slider, a thumbnail on hover, selection linked across both views
    page.py      a bokeh view as one self-contained offline page, for notebooks and report.html
    alluvial.py  reassignment flows as a static figure (matplotlib)
    gallery.py   clusters as images, the cluster x class table, the most-moved images (matplotlib)
    transitions.py  what clusters do between epochs (survived, merged, split, shrank, died, born) and which images
                 keep theirs; pure functions of label and feature arrays
    lifecycle.py the transitions strip and the per-image stability map (matplotlib)
    palette.py   colours that read on white: tab10 for classes, 30 distinct cluster colours (class colours
                 above 30 clusters), text colours darkened to a readable contrast, each algorithm's colour
    build.py     the report's share: writes the figures, returns the flight recorder's HTML

This file imports nothing: `import kit` and the training code stay free of matplotlib and bokeh, and
bokeh is imported inside the functions that draw with it.
"""
