"""Datasets: loaders, the per-user split, the synthetic generator, the download registry."""

from .frames import InteractionMatrix, check_user_items, from_events, from_pandas, from_scipy
from .interactions import DataError, Interactions, binary_csr
from .readers import read_lightgcn_file, read_ratings_dat
from .registry import DATASET_NAMES, REGISTRY, load_dataset
from .split import split_per_user
from .synthetic import make_synthetic

__all__ = ["DataError", "Interactions", "binary_csr", "read_lightgcn_file", "read_ratings_dat",
           "DATASET_NAMES", "REGISTRY", "load_dataset", "split_per_user", "make_synthetic",
           "InteractionMatrix", "check_user_items", "from_events", "from_pandas", "from_scipy"]
