"""Files that a crash cannot tear and readers that a crafted file cannot hang or blow up: kit's one
way to write and one way to read back everything under `runs/`.

Every file is written to a temporary name in the same folder and then renamed over the old one, so a
crash or Ctrl-C leaves either the old file or the new one, never half of one; a history grows by
appended, fsync-ed JSON lines (`append_line`), whose torn last line a crash may leave and the next
append or read drops. Every read goes through `open_regular`: a regular file, no link, under a size
cap, checked before anything is read; JSON by `read_json` (one line naming the file when it is
damaged), dataclass fields by `check_fields`, arrays memory-mapped (`mapped_npy`, `read_snapshot`),
so a header claiming billions of rows is refused before anything is allocated.
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

import numpy as np

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
    atomic_write_bytes(path, json.dumps(obj, indent=1, default=json_default).encode())


def json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if hasattr(o, "tolist"):  # an array or a tensor (torch is not imported here for it)
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # atomic_write_bytes's mkstemp names


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
        f.write(json.dumps(record, default=json_default).encode() + b"\n")
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
# the largest .jsonl: ODC's steps at 20,000 a ImageNet epoch take ~1 MB a line, 440 lines
LINES_CAP = 8 * 2**30
LINE_CAP = 64 * 2**20  # the longest line: one epoch's records
MAX_LINES = 100_000  # epochs a .jsonl may hold


def read_regular(path: Path, cap: int) -> bytes:
    """The bytes of `path`, refused in one line unless it is a regular file, no link, of at most
    `cap` bytes."""
    with open_regular(path, cap) as f:
        return f.read(cap + 1)


def open_regular(path: Path, cap: int):
    """`path` opened for reading, refused in one line unless it is a regular file, no link, of at
    most `cap` bytes: a FIFO would hang the reader, a link to /dev/zero or a crafted giant file
    would fill the memory. Opened without following a link and without blocking, then checked on the
    open file."""
    path = Path(path)
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except OSError as e:
        if os.path.islink(path):
            raise ValueError(
                f"{path} is a symbolic link: kit reads only the files it wrote; replace it with "
                "the file itself, or start a new run"
            ) from None
        raise e
    f = os.fdopen(fd, "rb")
    st = os.fstat(f.fileno())
    problem = (
        "is not a regular file (a FIFO, a device or a folder): kit reads only the files it wrote"
        if not stat.S_ISREG(st.st_mode)
        else f"is {st.st_size / 2**20:,.0f} MiB, more than kit writes there ({cap / 2**20:,.0f} "
             "MiB at most)"
        if st.st_size > cap
        else None
    )
    if problem:
        f.close()
        raise ValueError(f"{path} {problem}: restore it from a copy or start a new run")
    return f


def read_lines(path: Path) -> list[dict]:
    """The JSON records of `path`, one per line. What follows the last newline is a torn line (a
    crash mid-append) and is dropped, as `append_line` drops it; any other bad line is refused."""
    if not os.path.lexists(path):
        return []
    lines = []
    # line by line: a crafted giant line is refused, not read whole
    with open_regular(path, LINES_CAP) as f:
        while line := f.readline(LINE_CAP + 1):
            if len(line) > LINE_CAP:
                raise ValueError(
                    f"{path} line {len(lines) + 1} is longer than {LINE_CAP // 2**20} MiB, more "
                    "than kit writes (one epoch's records): restore it from a copy or start a new "
                    "run"
                )
            if len(lines) == MAX_LINES:
                raise ValueError(
                    f"{path} holds more than {MAX_LINES:,} lines, more than kit writes (one an "
                    "epoch): restore it from a copy or start a new run"
                )
            # None: the torn last line
            lines.append(line.rstrip(b"\n") if line.endswith(b"\n") else None)
    lines = [line for line in lines if line is not None]
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(
                f"{path} is damaged at line {i + 1}: restore it from a copy or start a new run"
            ) from None
        if not isinstance(out[-1], dict):
            raise ValueError(
                f"{path} line {i + 1} is not a record ({{...}}): restore it from a copy or start a "
                "new run"
            )
    return out


def read_json(path: Path, what: str = "file", kind: type | None = None):
    """`path`'s JSON; with `kind`, refused in one line unless it is one (kit writes objects:
    `dict`)."""
    try:
        value = json.loads(read_regular(path, JSON_CAP))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" ({e.msg} at line {e.lineno})" if isinstance(e, json.JSONDecodeError) else ""
        raise ValueError(f"{path} is not valid JSON{where}: the {what} is damaged; "
                         "restore it from a copy or start a new run") from None
    if kind is not None and not isinstance(value, kind):
        raise ValueError(
            f"{path} holds a JSON {type(value).__name__}, not the {{...}} object kit writes: the "
            f"{what} is damaged; restore it from a copy or start a new run"
        )
    return value


def check_fields(cls, values: dict, file: Path, key: str = "") -> None:
    """Refuse in one line, naming the file and the field, a value of `values` whose type does not
    fit the field of the dataclass `cls` it sets (`"seeds": "3"`, `"root": 5`): before it reaches
    code that would fail on it."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if name in hints and not _fits(value, hints[name]):
            where = f"{key}.{name}" if key else name
            raise ValueError(
                f"{file}: {where} is {value!r}, not {_type_name(hints[name])}: restore the file "
                "from a copy or start a new run"
            )


def _fits(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.ClassVar:
        return True
    if origin in (list, tuple):
        items = [a for a in args if a is not Ellipsis]
        return (
            isinstance(value, (list, tuple)) and all(_fits(v, items[0]) for v in value)
            if items
            else isinstance(value, (list, tuple))
        )
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    # a whole float as well: `check_number` accepts epochs=30.0, and config.json then holds it
    if hint is int:
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and float(value).is_integer()
        )
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def mapped_npy(f: Path) -> np.ndarray:
    """A .npy memory-mapped (its header read, nothing allocated), or one line naming it."""
    try:
        if not stat.S_ISREG(os.lstat(f).st_mode):
            raise ValueError("not a regular file")
        return np.load(f, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        # random bytes, pickles, a header larger than the file: all the same
        raise ValueError(
            f"{f} is not a .npy array kit wrote ({type(e).__name__}: {str(e)[:80]}): restore it "
            "from a copy or start a new run"
        ) from None


def read_layouts(cache: Path) -> dict:
    '''The UMAP layouts cached in `embeddings.npz`; {} for a cache that cannot be read (a killed
    write, a crafted file, an object array): it is computed again.'''
    if not cache.exists():
        return {}
    try:
        # one read, checked first
        with open_regular(cache, 2**31) as raw, np.load(raw, allow_pickle=False) as f:
            return {k: f[k] for k in f.files if f[k].dtype.kind == "f" and f[k].ndim == 2}
    except Exception:
        # any damage: the layouts are recomputed, as for a run drawn the first time
        return {}


def read_snapshot(
    f: Path, n_samples: int | None = None, n_clusters: int | None = None
) -> np.ndarray:
    """One label snapshot as (N,) int64, refused in one line naming the file unless it is a .npy of
    N integers in [0, n_clusters). Never unpickled; memory-mapped, so a header claiming billions of
    rows is refused before anything is allocated."""
    a = mapped_npy(f)
    fits = (
        isinstance(a, np.ndarray)
        and a.ndim == 1
        and a.dtype.kind in "iu"
        and n_samples in (None, len(a))
    )
    values = ""
    if fits and len(a):
        low, high = int(a.min()), int(a.max())
        fits, values = (
            low >= 0 and (n_clusters is None or high < n_clusters),
            f" from {low} to {high}",
        )
    if not fits:
        want = (
            f"({n_samples if n_samples is not None else 'N'},) integers in [0, {n_clusters or 'K'})"
        )
        got = f"{a.dtype} {a.shape}{values}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(
            f"label snapshot {f} holds {got} where the run has {want}: restore it from a copy "
            "or start a new run"
        )
    return np.array(a, dtype=np.int64)
