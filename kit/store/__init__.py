"""The run store: what a run folder holds and how it is written and read, below everything that
trains or draws.

- `files`: atomic writes, appended lines, and the checked readers every file of a run goes through;
- `checkpoints`: the checkpoint format (weights, optimizer, memories, random states) and its
  loading;
- `runs`: the run folder, its lock and its append-only history.

It imports nothing else of kit: what a run holds, even which algorithms a comparison trained, it
reads from the run's own files (tests/test_layers.py).
"""
