"""Image-level views of a comparison run: see every image move (presentation layer, like plots.py
and report.py: they only read run folders and histories, and change nothing).

    flows.py     the maths: cluster ids carried across epochs (Hungarian), flow tables, flips, purity,
                 images nearest a centroid; pure functions of label and feature arrays
    rundata.py   RunData: what the views read from a run folder, gathered once
    flight.py    the flight recorder (bokeh): DeepCluster | ODC on the aligned UMAP layouts, an epoch
                 slider, a thumbnail on hover, selection linked across both views
    page.py      a bokeh view as one self-contained offline page, for notebooks and report.html
    alluvial.py  reassignment flows as a static figure (matplotlib)
    gallery.py   clusters as images, the cluster x class table, the most-moved images (matplotlib)
    transitions.py  what clusters do between epochs (survived, merged, split, died, born) and which images
                 keep theirs; pure functions of label and feature arrays
    lifecycle.py the transitions strip and the per-image stability map (matplotlib)
    build.py     the report's share: writes the figures, returns the flight recorder's HTML

bokeh is imported inside the functions that draw with it, so importing kit stays light.
"""
