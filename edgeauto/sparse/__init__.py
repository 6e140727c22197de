"""Unstructured sparsity: per-weight masks and sparse training methods selected by name."""

from edgeauto.sparse import dynamic as _dynamic  # noqa: F401  (registers ctre, colt)
from edgeauto.sparse import methods as _methods  # noqa: F401  (registers the methods)
from edgeauto.sparse import scored as _scored  # noqa: F401  (gibbs, hessian, activation)
from edgeauto.sparse import spectral as _spectral  # noqa: F401  (hessian-spectral)
from edgeauto.sparse.base import (
    SPARSE_METHODS,
    SparseConfig,
    SparseMethod,
    SparseResult,
    get_sparse_method,
    list_sparse_methods,
)
from edgeauto.sparse.masks import Masks, erk_densities, maskable, random_masks

__all__ = [
    "SPARSE_METHODS", "Masks", "SparseConfig", "SparseMethod", "SparseResult", "erk_densities",
    "get_sparse_method", "list_sparse_methods", "maskable", "random_masks",
]  # fmt: skip
