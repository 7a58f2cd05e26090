"""What `python -m kit` runs, each built from the layers below: `compare` (train the algorithms side
by side, one or several seeds), `sweep`, `report` (a run's figures and report.html), `evaluate_run`
(the benchmark protocols on a trained run), `launch` (the same under torchrun), `machine` (`kit
doctor`), with `run_setup`, the checks and the run folder every training command starts from.
"""
