"""What `python -m kit` runs (kit/__main__.py parses the command line), each built from the layers
below: `compare` (the algorithms side by side, one or several seeds; `train`, one algorithm, is
there too), `sweep`, `report` (a run's figures and report.html), `evaluate_run` (the benchmark
protocols on a trained run: `evaluate`) and `machine` (`doctor`); `run_setup`, the checks and the
run folder every training command starts from; and `launch`, for a notebook: start `compare` under
torchrun and watch its run folder grow.
"""
