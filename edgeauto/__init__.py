"""edgeauto: hardware-aware architecture search and compression for edge devices.

The public API: one call per command (:func:`run`, :func:`compress`, :func:`search`,
:func:`profile`, :func:`deploy`, :func:`import_table`) and the core nouns. Everything else is an
implementation detail.
"""

from edgeauto.budget import Budget
from edgeauto.compress import (
    CRITERIA,
    PRUNERS,
    Criterion,
    PruneProblem,
    Pruner,
    PruningPlan,
    list_criteria,
    list_pruners,
)
from edgeauto.config import RunConfig
from edgeauto.data import Dataset, load_dataset
from edgeauto.devices.profile import DeviceProfile, list_profiles, load_profile
from edgeauto.errors import (
    AgreementFailed,
    BudgetInfeasible,
    ConfigError,
    DatasetError,
    EdgeAutoError,
    ExportError,
    OverBudget,
    RunDirError,
    RunnerError,
    TableMiss,
    UnknownComponent,
    VerificationFailed,
)  # fmt: skip
from edgeauto.export.runtimes import RUNTIMES, Runtime, list_runtimes
from edgeauto.jobs.compress import compress
from edgeauto.jobs.deploy import deploy
from edgeauto.jobs.fleet import BoardResult, profile
from edgeauto.jobs.lut import ImportedTable, import_table
from edgeauto.jobs.run import run

# ``search`` and ``compress`` name the functions, not the engine packages: importing the
# function loads its package first, and a package is bound on its parent only when first loaded.
from edgeauto.jobs.search import search
from edgeauto.latency.table import LatencyStat, LatencyTable, Provenance
from edgeauto.manifest import Manifest
from edgeauto.search import STRATEGIES, SearchProblem, SearchResult, Strategy, list_strategies
from edgeauto.spaces import SPACES, Arch, Choice, SearchSpace, get_space, list_spaces
from edgeauto.spaces.key import OpKey
from edgeauto.sparse import SPARSE_METHODS, SparseConfig, get_sparse_method, list_sparse_methods
from edgeauto.version import __version__

list_devices = list_profiles

__all__ = [
    "CRITERIA", "Criterion", "PruneProblem", "list_criteria", "PRUNERS", "RUNTIMES", "SPACES", "STRATEGIES", "Arch", "BudgetInfeasible", "Choice",
    "ConfigError", "Dataset", "DatasetError", "DeviceProfile", "EdgeAutoError", "ExportError",
    "LatencyStat", "LatencyTable", "Manifest", "OpKey", "Provenance", "Pruner", "PruningPlan",
    "RunConfig", "RunDirError", "RunnerError", "Runtime", "SearchProblem", "SearchResult",
    "SearchSpace", "Strategy", "TableMiss", "UnknownComponent", "VerificationFailed", "OverBudget", "Budget",
    "__version__", "get_space", "list_devices", "list_profiles", "list_pruners", "list_runtimes",
    "list_spaces", "list_strategies", "load_dataset", "load_profile", "run", "compress", "profile", "BoardResult",
    "search", "import_table", "ImportedTable",
    "SPARSE_METHODS", "SparseConfig", "get_sparse_method", "list_sparse_methods",
    "deploy", "AgreementFailed",
]  # fmt: skip
