"""Crafted or damaged files in a run (issue 31, items 6 and 7): every file kit reads goes through
one checked reader, which refuses what is not a regular file, caps sizes, checks types, ranges and
shapes (from a header, before any allocation) and says in one line which file and which field. One
table of cases, each run through `python -m kit report` on a copy of the session's comparison; each
failed before (a traceback, a hang or a huge allocation)."""
import json
import os
import shutil

import numpy as np
import pytest


def _json(rel, change):
    def craft(run):
        path = run / rel
        value = json.loads(path.read_text())
        change(value)
        path.write_text(json.dumps(value))
    return craft


def _write(rel, data: bytes):
    def craft(run):
        (run / rel).write_bytes(data)
    return craft


def _npy(rel, array=None, header_shape=None):
    def craft(run):
        path = run / rel
        if header_shape is None:
            np.save(path, array)
            return
        with open(path, "wb") as f:  # a header that claims a huge array, over a few bytes of data
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": header_shape}
            )
            f.write(b"\0" * 64)
    return craft


def _swap(run):
    (run / "deepcluster").rename(run / "tmp")
    (run / "odc").rename(run / "deepcluster")
    (run / "tmp").rename(run / "odc")


def _swap_before_algos(run):
    """The same swap in a run from before `compare` recorded its algorithms."""
    _json("config.json", lambda v: v["compare"].pop("algos"))(run)
    _swap(run)


def _fifo(run):
    (run / "odc" / "epochs.jsonl").unlink()
    os.mkfifo(run / "odc" / "epochs.jsonl")


def _zero_link(run):
    (run / "config.json").unlink()
    os.symlink("/dev/zero", run / "config.json")


def _huge(run):
    # a sparse 300 MiB file with no newline: nothing is read
    with open(run / "odc" / "epochs.jsonl", "r+b") as f:
        f.truncate(300 * 2**20)


def _many_lines(run):
    (run / "odc" / "epochs.jsonl").write_text('{"epoch": 0}\n' * 200_000)


CASES = {  # name: (craft, what the one line must name)
    "config.json seeds '3'": (
        _json("config.json", lambda v: v["compare"].update(seeds="3")),
        "seeds",
    ),
    "config.json root 5": (_json("config.json", lambda v: v["compare"].update(root=5)), "root"),
    "config.json embed_epochs 'abc'": (
        _json("config.json", lambda v: v["compare"].update(embed_epochs="abc")),
        "embed_epochs",
    ),
    "history.json monitor_init []": (
        _json("odc/history.json", lambda v: v.update(monitor_init=[])),
        "monitor_init",
    ),
    "history.json n_clusters 1e12": (
        _json("odc/history.json", lambda v: v["config"].update(n_clusters=1e12)),
        "n_clusters",
    ),
    "history.json algo of the other folder": (_swap, "algo"),
    "the same, in a run from before algos": (_swap_before_algos, "algo"),
    "an epochs.jsonl line {}": (_write("odc/epochs.jsonl", b"{}\n"), "epoch"),
    "embed features of the wrong shape": (
        _npy("odc/embed_features/epoch_0001.npy", np.zeros((5, 3), np.float32)),
        "epoch_0001.npy",
    ),
    "embed features claiming (1e12, 64)": (
        _npy("odc/embed_features/epoch_0001.npy", header_shape=(10**12, 64)),
        "epoch_0001.npy",
    ),
    "evaluation.json {}": (_write("evaluation.json", b"{}"), "evaluation.json"),
    "evaluation.json without its keys": (
        _write("evaluation.json", b'{"DeepCluster": {"knn": {}}}'),
        "linear",
    ),
    "baselines.json a string": (_write("baselines.json", b'"raw"'), "baselines.json"),
    "a FIFO at epochs.jsonl": (_fifo, "not a regular file"),
    "config.json a link to /dev/zero": (_zero_link, "symbolic link"),
    "a 300 MiB epochs.jsonl": (_huge, "MiB"),
    "200,000 lines in epochs.jsonl": (_many_lines, "lines"),
}


@pytest.mark.timeout(120)  # a hang (the FIFO) fails here instead of stopping the suite
@pytest.mark.parametrize("case", list(CASES))
def test_a_crafted_file_is_refused_in_one_line_naming_it(fast_compare, tmp_path, capsys, case):
    from kit.__main__ import main

    run = tmp_path / "t"
    shutil.copytree(fast_compare.path, run)
    craft, field = CASES[case]
    craft(run)
    code = main(["report", str(run)])
    err = capsys.readouterr().err.strip()
    assert code == 2, (case, err[-1500:])
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert field in err, err
    if case not in (
        "history.json algo of the other folder",
        "the same, in a run from before algos",
    ):
        assert str(run) in err, err  # the file is named


def test_a_damaged_embeddings_cache_is_recomputed(fast_compare, tmp_path):
    """A junk embeddings.npz gave a traceback: it is a cache, so it is drawn again (here end to end
    for random bytes; an object array, a link and a FIFO read as no cache either)."""
    from kit.__main__ import main
    from kit.store.files import read_layouts

    run = tmp_path / "t"
    shutil.copytree(fast_compare.path, run)
    (run / "embeddings.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert main(["report", str(run)]) == 0
    with np.load(run / "embeddings.npz", allow_pickle=False) as f:
        assert f.files and all(f[k].dtype.kind == "f" for k in f.files)
    np.savez(tmp_path / "objects.npz", deepcluster=np.array([{"a": 1}], dtype=object))
    os.symlink(run / "embeddings.npz", tmp_path / "link.npz")
    os.mkfifo(tmp_path / "fifo.npz")
    for name in ("objects.npz", "link.npz", "fifo.npz"):
        assert read_layouts(tmp_path / name) == {}, name
    assert read_layouts(run / "embeddings.npz")  # the rebuilt one reads
