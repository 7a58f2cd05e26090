"""The teaching layer, on top of everything else: what the notebooks and a lecture use.

- `lesson`: the one takeaway, worded around the equal-K numbers of kit/analysis/findings.py, the
  papers' numbers and the notebooks' folded answers;
- `exercises/`: the self-checks of notebooks 02, 03 and 05;
- `ablations`: notebook 05's churn and safeguard runs;
- `example`: the trained run that ships in `example-run/`, and the notebooks' settings;
- `widgets`: the playground.
"""
