"""What kit computes from runs, with no drawing: cluster ids carried across epochs and the flows
between them (`flows`), what each epoch did to the last one's clusters (`transitions`), the aligned
UMAP layouts (`embed`), a run folder read into arrays (`rundata`), a history's series and means
(`history`), several seeds as mean ± std (`seeds`), the benchmark pages' protocols, which train
probes and fine-tune copies of a backbone but never the backbone itself (`evaluate`), and the
equal-K comparison's numbers with its ranking sentence (`findings`, `headline.json`). The views
(kit/views/) draw these; `compare` computes the layouts while it trains.
"""
