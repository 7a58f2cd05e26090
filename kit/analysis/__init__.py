"""What kit computes from a run to show it, with no drawing: cluster ids carried across epochs and
the flows between them (`flows`), what each epoch did to the last one's clusters (`transitions`),
the aligned UMAP layouts (`embed`), and a run folder read into arrays (`rundata`). The views
(kit/views/) draw these; `compare` computes the layouts while it trains.
"""
