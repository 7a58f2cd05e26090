"""kit: DeepCluster and Online Deep Clustering, faithful, small, fast and visible.

    import kit
    train, test = kit.load_dataset("mnist5k"), kit.load_dataset("mnist5k", split="test")
    dc = kit.DeepCluster(kit.DeepClusterConfig.small()).fit(train, epochs=10, eval_dataset=test)
    odc = kit.ODC(kit.ODCConfig.small()).fit(train, epochs=10, eval_dataset=test)
"""
from .clustering import KMeans, l2_normalize, pca_whiten, preprocess_features
from .data import load_dataset, with_indices
from .deepcluster import DeepCluster, DeepClusterConfig
from .features import extract_features
from .memory import ODCMemory, class_weights
from .models import ClusterHead, ClusterNet, ODCNeck, Sobel, build_backbone
from .odc import ODC, ODCConfig
from .runs import Run, load_checkpoint, save_checkpoint
from .runtime import resolve_device, seed_everything
from .sampling import replacement_indices, uniform_cluster_indices

__all__ = [
    "KMeans", "l2_normalize", "pca_whiten", "preprocess_features", "load_dataset", "with_indices",
    "DeepCluster", "DeepClusterConfig", "extract_features", "ODCMemory", "class_weights",
    "ClusterHead", "ClusterNet", "ODCNeck", "Sobel", "build_backbone", "ODC", "ODCConfig",
    "Run", "load_checkpoint", "save_checkpoint", "resolve_device", "seed_everything",
    "replacement_indices", "uniform_cluster_indices",
]
__version__ = "0.1.0"
