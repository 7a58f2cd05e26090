"""Every config field is actually read somewhere in kit (STYLE.md principle 6), and the defaults
are the published values."""
import re
from dataclasses import fields
from pathlib import Path

import pytest

import kit
from kit.compare import CompareConfig

SOURCE = "\n".join(p.read_text() for p in (Path(kit.__file__).parent).glob("*.py"))


@pytest.mark.parametrize("cls", [kit.DeepClusterConfig, kit.ODCConfig, CompareConfig])
def test_every_field_is_read(cls):
    for f in fields(cls):
        reads = re.findall(rf"(?:cfg|config|self)\.{f.name}\b", SOURCE)
        assert reads, f"{cls.__name__}.{f.name} is never read"


def test_defaults_are_the_published_values():
    dc, odc = kit.DeepClusterConfig(), kit.ODCConfig()
    assert (dc.n_clusters, dc.pca_dim, dc.kmeans_iters, dc.lr, dc.momentum, dc.weight_decay) == (10_000, 256, 20, 0.1, 0.9, 1e-5)
    assert dc.sobel and dc.uniform_sampling and not dc.reweight and dc.backbone == "resnet50"
    assert (odc.n_clusters, odc.lr, odc.memory_momentum, odc.min_cluster_size, odc.centroid_interval) == (10_000, 0.06, 0.5, 20, 10)
    assert odc.lr_decay_epochs == (400,) and odc.lr_decay == 0.4 and odc.reweight_power == 0.5


def test_unknown_fields_in_a_saved_config_are_refused():
    with pytest.raises(ValueError, match="unknown DeepClusterConfig fields: typo"):
        kit.DeepClusterConfig.from_dict({"typo": 1})
