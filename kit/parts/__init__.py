"""The parts the algorithms are built from, each with one job and none knowing an algorithm: the
datasets (`data`) and their augmentations (`augment`), the networks (`models`), k-means with PCA
whitening (`clustering`), a network's features over a dataset (`features`), the samplers
(`sampling`), the label measures (`metrics`), the collapse signals (`collapse`), the device, seeds
and threads (`runtime`) and the processes of a torchrun job (`distributed`).
"""
