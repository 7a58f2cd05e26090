"""A run folder, `runs/<name>/`: config, metric history and checkpoints.

Every file is written to a temporary name in the same folder and then renamed over the old one,
so a crash or Ctrl-C leaves either the old file or the new one, never half of one. Checkpoints are
read with `torch.load(..., weights_only=True)`: no pickled code is ever executed.

The history grows by appending, never by rewriting (an ImageNet run has 1.28 M labels x 400 epochs):

    history.json    the small header (algo, the epoch-0 monitor, ODC's initial clustering)
    epochs.jsonl    one line per epoch record
    steps.jsonl     one line per saved epoch with that epoch's per-iteration records
    labels/         one `NNNNN.npy` (N,) int32 label snapshot per file, written once

A crash mid-append leaves at most a torn last line (no newline after it); it belongs to an epoch
whose checkpoint was never written, so `read_lines` drops it and the next `append_line` cuts it off
before it writes, so a new line never lands on the end of a torn one.

One process writes a run at a time: `Run.lock` holds an flock on `.kit-lock` (which names the
holder's pid while it writes); a second writer is refused in one line, and a lock left by a killed
process is free, since the kernel drops an flock with its process. Nothing is written through a
symbolic link planted inside a run, and every file is checked (type, dtype, shape, range) as it is
read back, so a damaged one is named in one line.
"""
from __future__ import annotations

import io
import json
import os
import re
import stat
import tempfile
import types
import typing
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; one writer per run is then the user's care
    fcntl = None

import numpy as np
import torch

from .algorithms import SPECS

CHECKPOINT_FORMAT = "kit-checkpoint-v1"
_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: there is no way to read the umask without setting it


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_npz(path: str | Path, compressed: bool = False, **arrays) -> None:
    """`np.savez` (or `savez_compressed`) of `arrays`, written atomically."""
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_npy(path: str | Path, array) -> None:
    """`np.save` of one array, written atomically."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, default=_json_default).encode())


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray, torch.Tensor)):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Atomically save `state` (tensors, numbers, strings, lists and dicts of them)."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a kit checkpoint; a one-line error for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: start a new run or check the run name")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, pickled code: all refused the same way
        raise ValueError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); "
                         "delete it to start over, or restore a copy") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a kit checkpoint (no '{CHECKPOINT_FORMAT}' tag); "
                         "pass a file written by kit")
    return state


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=@,-]*")
MARKER = ".kit-run"  # written into every folder kit creates; a folder without it is never written into
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # atomic_write_bytes's mkstemp names
HISTORY_FORMAT = "kit-history-v2"  # history.json's header; the records are in epochs.jsonl, steps.jsonl, labels/
EMBED = "embed_features"  # <algo>/embed_features/: epoch_0003.npy, ..., and subset.npy (Run.save_embed_features)
LOCK = ".kit-lock"  # flock-ed by the one process writing the run; holds its pid while it writes
_HELD: dict[str, int] = {}  # run folder -> open lock file, for the runs this process writes


class RunInUse(OSError):
    """Another live process holds the run's lock."""


def check_name(name: str) -> str:
    """A run name is one folder name: never a path, so a run cannot land outside its runs folder."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"run name {name!r} is not a plain folder name: use letters, digits and . _ - "
                         "(no '/', no leading '.' or '-'), e.g. --name mnist-k100")
    return name


def append_line(path: Path, record) -> None:
    """Append one JSON line and fsync it: the history grows without rewriting what is there. A torn
    last line (a crash mid-append) is cut off first; a symbolic link is never written through."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    with os.fdopen(fd, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        complete = _complete_length(f, size)
        if complete < size:
            f.truncate(complete)
            f.seek(complete)
        f.write(json.dumps(record, default=_json_default).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())


def _complete_length(f, size: int) -> int:
    """The bytes of `f` up to and including its last newline (0 if it has none)."""
    end = size
    while end > 0:
        start = max(0, end - 65536)
        f.seek(start)
        i = f.read(end - start).rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


JSON_CAP = 64 * 2**20  # the largest JSON file kit reads: a 1.28M-image run's header is a few kB
LINES_CAP = 8 * 2**30  # the largest .jsonl: ODC's steps at 20,000 a ImageNet epoch take ~1 MB a line, 440 lines
LINE_CAP = 64 * 2**20  # the longest line: one epoch's records
MAX_LINES = 100_000  # epochs a .jsonl may hold


def read_regular(path: Path, cap: int) -> bytes:
    """The bytes of `path`, refused in one line unless it is a regular file, no link, of at most `cap` bytes."""
    with open_regular(path, cap) as f:
        return f.read(cap + 1)


def open_regular(path: Path, cap: int):
    """`path` opened for reading, refused in one line unless it is a regular file, no link, of at most `cap` bytes:
    a FIFO would hang the reader, a link to /dev/zero or a crafted giant file would fill the memory. Opened without
    following a link and without blocking, then checked on the open file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        if os.path.islink(path):
            raise ValueError(f"{path} is a symbolic link: kit reads only the files it wrote; replace it with the "
                             "file itself, or start a new run") from None
        raise e
    f = os.fdopen(fd, "rb")
    st = os.fstat(f.fileno())
    problem = ("is not a regular file (a FIFO, a device or a folder): kit reads only the files it wrote"
               if not stat.S_ISREG(st.st_mode) else
               f"is {st.st_size / 2**20:,.0f} MiB, more than kit writes there ({cap / 2**20:,.0f} MiB at most)"
               if st.st_size > cap else None)
    if problem:
        f.close()
        raise ValueError(f"{path} {problem}: restore it from a copy or start a new run")
    return f


def read_lines(path: Path) -> list[dict]:
    """The JSON records of `path`, one per line. What follows the last newline is a torn line (a crash
    mid-append) and is dropped, as `append_line` drops it; any other bad line is refused."""
    if not os.path.lexists(path):
        return []
    lines = []
    with open_regular(path, LINES_CAP) as f:  # line by line: a crafted giant line is refused, not read whole
        while line := f.readline(LINE_CAP + 1):
            if len(line) > LINE_CAP:
                raise ValueError(f"{path} line {len(lines) + 1} is longer than {LINE_CAP // 2**20} MiB, more than kit "
                                 "writes (one epoch's records): restore it from a copy or start a new run")
            if len(lines) == MAX_LINES:
                raise ValueError(f"{path} holds more than {MAX_LINES:,} lines, more than kit writes (one an epoch): "
                                 "restore it from a copy or start a new run")
            lines.append(line.rstrip(b"\n") if line.endswith(b"\n") else None)  # None: the torn last line
    lines = [line for line in lines if line is not None]
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{path} is damaged at line {i + 1}: restore it from a copy or start a new run") from None
        if not isinstance(out[-1], dict):
            raise ValueError(f"{path} line {i + 1} is not a record ({{...}}): restore it from a copy or start a new run")
    return out


def read_json(path: Path, what: str = "file", kind: type | None = None):
    """`path`'s JSON; with `kind`, refused in one line unless it is one (kit writes objects: `dict`)."""
    try:
        value = json.loads(read_regular(path, JSON_CAP))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" ({e.msg} at line {e.lineno})" if isinstance(e, json.JSONDecodeError) else ""
        raise ValueError(f"{path} is not valid JSON{where}: the {what} is damaged; "
                         "restore it from a copy or start a new run") from None
    if kind is not None and not isinstance(value, kind):
        raise ValueError(f"{path} holds a JSON {type(value).__name__}, not the {{...}} object kit writes: the {what} "
                         "is damaged; restore it from a copy or start a new run")
    return value


def check_fields(cls, values: dict, file: Path, key: str = "") -> None:
    """Refuse in one line, naming the file and the field, a value of `values` whose type does not fit the field of
    the dataclass `cls` it sets (`"seeds": "3"`, `"root": 5`): before it reaches code that would fail on it."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if name in hints and not _fits(value, hints[name]):
            where = f"{key}.{name}" if key else name
            raise ValueError(f"{file}: {where} is {value!r}, not {_type_name(hints[name])}: restore the file from a "
                             "copy or start a new run")


def _fits(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.ClassVar:
        return True
    if origin in (list, tuple):
        items = [a for a in args if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_fits(v, items[0]) for v in value) if items else \
            isinstance(value, (list, tuple))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # a whole float as well: `check_number` accepts epochs=30.0, and config.json then holds it
        return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


class Run:
    """`runs/<name>/`: `config.json`, the history files above and `checkpoint.pt`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._saved: tuple[int, int, int] | None = None  # (epochs, steps, snapshots) on disk, read once

    @classmethod
    def create(cls, root: str | Path, name: str, resume: bool = False, lock: bool = False) -> "Run":
        """A run folder; refuses to reuse a folder that already holds a run unless `resume`, any
        folder kit did not make and one holding a symbolic link. With `lock`, this process becomes
        the run's one writer first (`lock`). Call it only once every check of the command has passed."""
        run = cls(Path(root) / check_name(name))
        run.check_ours()
        if run.exists() and not resume:
            raise FileExistsError(f"{run.path} already holds a run: pass resume=True (--resume) to continue "
                                  "it, or choose another name")
        run.check_links()
        run.path.mkdir(parents=True, exist_ok=True)
        if lock:
            run.lock()
            if run.exists() and not resume:  # another process made it while we checked
                run.unlock()
                raise FileExistsError(f"{run.path} already holds a run: pass resume=True (--resume) to "
                                      "continue it, or choose another name")
        if not run.file(MARKER).exists():
            atomic_write_bytes(run.file(MARKER), b"written by kit\n")
        run.clean_temporaries()
        return run

    def check_ours(self) -> None:
        """Refuse a path that is a file, or a non-empty folder that kit did not write."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise FileExistsError(f"{p} is a file, not a run folder: choose another --name")
        if not p.exists() or (p / MARKER).exists():
            return
        # kit's own lock and temporaries alone: a folder whose making was killed before its marker, taken over
        entries = {e.name for e in p.iterdir() if not _TEMPORARY.fullmatch(e.name) and e.name != LOCK}
        if entries:
            raise FileExistsError(f"{p} holds files kit did not write ({', '.join(sorted(entries)[:3])}...): "
                                  "kit never writes into it; choose another --name or --runs")

    def check_links(self) -> None:
        """Refuse a run holding a symbolic link: kit writes only into folders it made, and a link
        planted inside a run (`odc/labels` -> elsewhere) would carry its writes and deletions there."""
        for folder, dirs, files in os.walk(self.path):  # a link to a folder is listed, never entered
            for name in (*dirs, *files):
                if os.path.islink(os.path.join(folder, name)):
                    raise ValueError(f"{Path(folder) / name} is a symbolic link: kit never writes through a link "
                                     "inside a run; replace it with the folder or file itself, or start a new run")

    def lock(self) -> None:
        """Become the run's one writer, or refuse in one line naming the process that is. The lock is
        an flock on `.kit-lock`, which the kernel releases when its process ends, however it ends:
        a lock left by a killed process is free to take. Held until `unlock` (or the process ends)."""
        key = str(self.path.resolve())
        if fcntl is None or key in _HELD:
            return
        if str(self.path.parent.resolve()) not in _HELD:  # a run inside a run (seed-31/): its parent's writer writes it
            Run(self.path.parent).check_free()
        try:
            fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError:
            if self.file(LOCK).is_symlink():
                self.check_links()
            raise
        self._take(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = fd

    def _take(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunInUse(f"{self.path} is being written by another kit process (pid {holder}): wait for it to end, "
                           f"or stop it (kill {holder}) and resume; one process writes a run at a time") from None

    def check_free(self) -> None:
        """Refuse in one line if another process holds the run's lock; writes nothing (for a run inside the
        run this process holds: `seed-31/` of a comparison)."""
        if fcntl is None or str(self.path.resolve()) in _HELD or not self.file(LOCK).is_file():
            return
        fd = os.open(self.file(LOCK), os.O_RDONLY | os.O_NOFOLLOW)
        self._take(fd)
        os.close(fd)  # a probe: the flock goes with the file

    def unlock(self) -> None:
        """Release the locks this process holds on the run and on the runs inside it."""
        root = str(self.path.resolve())
        for key in [k for k in _HELD if k == root or k.startswith(root + os.sep)]:
            fd = _HELD.pop(key)
            os.ftruncate(fd, 0)  # no pid at rest (before the flock goes, so a new holder's pid stays)
            os.close(fd)  # closing the file releases the flock

    def check(self, n_samples: int | None = None) -> None:
        """Read back every file a resume will read, in this run and the runs inside it, before anything
        is trained or written: a damaged file is named now, not after the first algorithm has trained."""
        self.check_links()
        for header in sorted(self.path.rglob("history.json")):
            Run(header.parent).load_history(n_samples)
        for f in sorted(self.path.rglob(f"{EMBED}/*.npy")):
            try:
                np.load(f, mmap_mode="r", allow_pickle=False).shape
            except Exception as e:  # noqa: BLE001 - numpy and OS errors alike: name the file
                raise ValueError(f"{f} is damaged or not kit's ({type(e).__name__}): restore it from a copy, or "
                                 "delete it (the views then leave that epoch out)") from None
        for f in sorted(self.path.rglob("*.json")):
            if f.name in ("config.json", "baselines.json", "result.json"):
                read_json(f, f.stem, dict)

    def exists(self) -> bool:
        return any(self.file(f).exists() for f in ("checkpoint.pt", "history.json", "config.json"))

    def file(self, name: str) -> Path:
        return self.path / name

    def clean_temporaries(self) -> None:
        """Remove temporaries of kit's own pattern left by a process killed mid-write (SIGKILL)."""
        for d in (self.path, self.path / "labels", self.path / EMBED):
            if d.is_dir():
                for f in d.iterdir():
                    if _TEMPORARY.fullmatch(f.name) and f.is_file():
                        f.unlink(missing_ok=True)

    # -- history ------------------------------------------------------------------------------
    def save_history(self, history: dict) -> None:
        """Append what is new since the last save: label snapshots, that epoch's step records and epoch
        records, in that order, then the small header. Nothing written earlier is rewritten."""
        n_epochs, n_steps, n_snaps = self._on_disk()
        labels = history.get("labels", [])
        (self.path / "labels").mkdir(exist_ok=True)
        for i in range(n_snaps, len(labels)):
            self._write_snapshot(i, labels[i])
        steps = history.get("step", {})
        total = len(next(iter(steps.values()), []))
        if total > n_steps:
            append_line(self.file("steps.jsonl"), {k: v[n_steps:] for k, v in steps.items()})
        for record in history.get("epoch", [])[n_epochs:]:
            append_line(self.file("epochs.jsonl"), record)
        self._write_header(history)
        self._saved = (len(history.get("epoch", [])), total, len(labels))

    def rewrite_history(self, history: dict) -> None:
        """Write the whole history anew (a resume that drops the records of an unfinished epoch)."""
        labels = history.get("labels", [])
        (self.path / "labels").mkdir(exist_ok=True)
        for i, a in enumerate(labels):
            self._write_snapshot(i, a)
        for f in (self.path / "labels").glob("*.npy"):
            if f.stem.isdigit() and int(f.stem) >= len(labels):
                f.unlink()
        steps = history.get("step", {})
        atomic_write_bytes(self.file("steps.jsonl"), (json.dumps(steps, default=_json_default) + "\n").encode()
                           if steps else b"")
        atomic_write_bytes(self.file("epochs.jsonl"), "".join(
            json.dumps(r, default=_json_default) + "\n" for r in history.get("epoch", [])).encode())
        self._write_header(history)
        self._saved = (len(history.get("epoch", [])), len(next(iter(steps.values()), [])), len(labels))

    def load_history(self, n_samples: int | None = None) -> dict:
        """The history as trainers keep it: header fields, `epoch` records, `step` lists and `labels`
        (a list of (N,) int64 arrays, each checked against the run: N = `n_samples` when given,
        labels in [0, n_clusters))."""
        if not self.file("history.json").exists():
            raise FileNotFoundError(f"{self.path} has no history.json: is it a kit run folder?")
        history = read_json(self.file("history.json"), "run's history", dict)
        if history.pop("format", None) != HISTORY_FORMAT:
            raise ValueError(f"{self.file('history.json')} is not a {HISTORY_FORMAT} header (a run from before kit's "
                             "first release, or not kit's): start a new run")
        self._check_header(history)
        history["epoch"] = read_lines(self.file("epochs.jsonl"))
        for i, record in enumerate(history["epoch"]):
            if record.get("epoch") != i or isinstance(record.get("epoch"), bool):
                raise ValueError(f"{self.file('epochs.jsonl')} line {i + 1}: epoch is {record.get('epoch')!r}, not {i}: "
                                 "restore it from a copy or start a new run")
        history["step"] = {}
        for chunk in read_lines(self.file("steps.jsonl")):
            for k, v in chunk.items():
                if not isinstance(v, list):
                    raise ValueError(f"{self.file('steps.jsonl')} holds {k!r}: {type(v).__name__}, not a list: "
                                     "restore it from a copy or start a new run")
                history["step"].setdefault(k, []).extend(v)
        config = history.get("config")
        k = config.get("n_clusters") if isinstance(config, dict) else None
        history["labels"] = []
        for f in self._snapshot_files():
            history["labels"].append(read_snapshot(f, n_samples, k if isinstance(k, int) else None))
            n_samples = len(history["labels"][0])  # every snapshot labels the same N images
        return history

    HEADER = {"algo": str, "config": dict, "monitor_init": dict, "init": dict}  # history.json's fields kit reads
    MAX_CLUSTERS = 2**24  # K beyond any run kit can train (ImageNet's is 10,000): a crafted 1e12 allocates TiBs

    def _check_header(self, history: dict) -> None:
        file = self.file("history.json")
        for key, kind in self.HEADER.items():
            if key in history and not isinstance(history[key], kind):
                raise ValueError(f"{file}: {key} is {type(history[key]).__name__}, not the {kind.__name__} kit writes: "
                                 "restore it from a copy or start a new run")
        if history.get("algo") not in (None, self.path.name) and self._in_a_comparison():
            raise ValueError(f"{file}: algo is {history['algo']!r}, but the folder is {self.path.name}/: the two "
                             "algorithms' folders were swapped or copied over each other; put them back")
        k = history.get("config", {}).get("n_clusters")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= self.MAX_CLUSTERS):
            raise ValueError(f"{file}: config.n_clusters is {k!r}, not an integer from 2 to {self.MAX_CLUSTERS:,}: "
                             "restore it from a copy or start a new run")

    def _in_a_comparison(self) -> bool:
        """Whether this folder is one algorithm's of a `compare` run, named after its algorithm."""
        parent = self.path.parent / "config.json"
        try:
            return self.path.name in SPECS and read_json(parent, "run's config", dict).get(
                "command") == "compare"
        except (OSError, ValueError):
            return False

    def history_until(self, epochs: int, n_snapshots: int, n_samples: int | None = None) -> dict:
        """The history as it stood when the checkpoint of `epochs` epochs (`n_snapshots` label snapshots)
        was written; refused in one line if it stops before. The records of a later, unfinished epoch
        (a stop between saving the history and the checkpoint) are dropped, from the files too."""
        history = self.load_history(n_samples)
        if len(history["epoch"]) < epochs or len(history["labels"]) < n_snapshots:
            raise ValueError(f"{self.path}'s history stops before its checkpoint (epoch {epochs}: "
                             f"{len(history['epoch'])} epoch records, {len(history['labels'])} of {n_snapshots} "
                             "label snapshots): restore the missing files or start a new run")
        n_steps = sum(1 for e in history["step"].get("epoch", []) if e < epochs)
        longer = (len(history["epoch"]) > epochs or len(history["labels"]) > n_snapshots
                  or len(history["step"].get("epoch", [])) > n_steps)
        history["epoch"], history["labels"] = history["epoch"][:epochs], history["labels"][:n_snapshots]
        history["step"] = {k: v[:n_steps] for k, v in history["step"].items()}
        if longer:
            self.rewrite_history(history)
        return history

    def _on_disk(self) -> tuple[int, int, int]:
        if self._saved is None:
            steps = read_lines(self.file("steps.jsonl"))
            self._saved = (len(read_lines(self.file("epochs.jsonl"))),
                           sum(len(next(iter(c.values()), [])) for c in steps), len(self._snapshot_files()))
        return self._saved

    def _snapshot_files(self) -> list[Path]:
        files = sorted(f for f in (self.path / "labels").glob("*.npy") if f.stem.isdigit())
        for i, f in enumerate(files):
            if int(f.stem) != i:
                raise ValueError(f"label snapshot {i:05d}.npy is missing from {self.path / 'labels'}: "
                                 "restore the run from a copy or start a new run")
        return files

    def _write_snapshot(self, i: int, labels) -> None:
        atomic_write_npy(self.path / "labels" / f"{i:05d}.npy", np.asarray(labels, dtype=np.int32))

    # -- the features the embeddings are drawn from -------------------------------------------
    def save_embed_features(self, epoch: int, features, subset) -> None:
        """The (n, D) features of a fixed subset after `epoch` epochs: one file per epoch under
        `embed_features/`, and the subset's (n,) train indices once beside them. A new epoch adds a file."""
        folder = self.path / EMBED
        if not (folder / "subset.npy").exists():
            atomic_write_npy(folder / "subset.npy", np.asarray(subset, dtype=np.int64))
        atomic_write_npy(folder / f"epoch_{epoch:04d}.npy", features)

    def embed_features(self) -> dict[str, np.ndarray]:
        """{"subset": (n,), "epoch_0003": (n, D), ...} as `save_embed_features` wrote them; {} if none."""
        folder = self.path / EMBED
        if not (folder / "subset.npy").exists():
            return {}
        out = {f.stem: _mapped(f) for f in sorted(folder.glob("*.npy"))}  # headers first: nothing allocated yet
        n, dims = len(out["subset"]), set()
        for name, a in out.items():
            shape_ok = a.ndim == 1 and a.dtype.kind in "iu" if name == "subset" else (
                a.ndim == 2 and a.dtype.kind == "f" and len(a) == n)
            if not shape_ok:
                want = f"({n},) integers" if name == "subset" else f"({n}, D) floats, one row per subset image"
                raise ValueError(f"{folder / name}.npy holds {a.dtype} {a.shape}, not {want}: restore it from a "
                                 "copy, or delete it (the flight recorder then leaves that epoch out)")
            if name != "subset":
                dims.add(a.shape[1])
        if len(dims) > 1:
            raise ValueError(f"{folder} holds features of several widths {sorted(dims)}: restore it from a copy")
        return {k: np.array(a) for k, a in out.items()}

    def _write_header(self, history: dict) -> None:
        header = {k: v for k, v in history.items() if k not in ("epoch", "step", "labels")}
        atomic_write_json(self.file("history.json"), {"format": HISTORY_FORMAT, **header})


def _mapped(f: Path) -> np.ndarray:
    """A .npy memory-mapped (its header read, nothing allocated), or one line naming it."""
    try:
        if not stat.S_ISREG(os.lstat(f).st_mode):
            raise ValueError("not a regular file")
        return np.load(f, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - random bytes, pickles, a header larger than the file: all the same
        raise ValueError(f"{f} is not a .npy array kit wrote ({type(e).__name__}: {str(e)[:80]}): restore it "
                         "from a copy or start a new run") from None


def read_layouts(cache: Path) -> dict:
    '''The UMAP layouts cached in `embeddings.npz`; {} for a cache that cannot be read (a killed write, a crafted
    file, an object array): it is computed again.'''
    if not cache.exists():
        return {}
    try:
        with open_regular(cache, 2**31) as raw, np.load(raw, allow_pickle=False) as f:  # one read, checked first
            return {k: f[k] for k in f.files if f[k].dtype.kind == "f" and f[k].ndim == 2}
    except Exception:  # noqa: BLE001 - any damage: the layouts are recomputed, as for a run drawn the first time
        return {}


def read_snapshot(f: Path, n_samples: int | None = None, n_clusters: int | None = None) -> np.ndarray:
    """One label snapshot as (N,) int64, refused in one line naming the file unless it is a .npy of
    N integers in [0, n_clusters). Never unpickled; memory-mapped, so a header claiming billions of
    rows is refused before anything is allocated."""
    a = _mapped(f)
    fits = isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype.kind in "iu" and n_samples in (None, len(a))
    values = ""
    if fits and len(a):
        low, high = int(a.min()), int(a.max())
        fits, values = low >= 0 and (n_clusters is None or high < n_clusters), f" from {low} to {high}"
    if not fits:
        want = f"({n_samples if n_samples is not None else 'N'},) integers in [0, {n_clusters or 'K'})"
        got = f"{a.dtype} {a.shape}{values}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"label snapshot {f} holds {got} where the run has {want}: restore it from a copy "
                         "or start a new run")
    return np.array(a, dtype=np.int64)


def read_config(path: str | Path) -> dict:
    """A run's `config.json`: {"command": "compare" | "train" | "sweep", "algo": str | None, and the
    settings under "compare" or "sweep"}."""
    file = Path(path) / "config.json"
    if not file.exists():
        raise FileNotFoundError(f"{path} has no config.json: is it a kit run folder?")
    cfg = read_json(file, "run's config", dict)
    for key in ("compare", "sweep"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise ValueError(f"{file} holds {key!r}: {type(cfg[key]).__name__}, not the {{...}} of settings kit "
                             "writes: restore it from a copy or start a new run")
    if "command" not in cfg:
        raise ValueError(f"{file} names no command (a run from before kit's first release, or not kit's): "
                         "start a new run")
    return cfg
