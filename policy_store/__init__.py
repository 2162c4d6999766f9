"""policy_store: bandit math, policy config, stores and the proxy's PolicyReader.

Pure numpy for the math; Redis only in ``RedisPolicyStore``. Imports nothing
else of rl-commons.
"""

from ._compat import ContextualBandit, RLAgent
from ._config import AlgorithmConfig, PolicyConfig, RewardSpec, make_config
from ._errors import (
    ConfigError,
    InvalidDeltaError,
    NoSnapshotError,
    RLCommonsError,
    StoreError,
    StoreUnavailableError,
    UnknownArmError,
    UnknownPolicyError,
)
from ._keys import PolicyKeys
from ._memory import InMemoryPolicyStore
from ._outcome import (
    OUTCOME_COMPONENTS,
    Merge,
    arm_conflict,
    is_complete,
    merge_parts,
    outcome_part,
    outcome_reward,
)
from ._reader import PolicyReader, ReaderView
from ._redis import RedisPolicyStore
from ._settings import Settings, SettingsError, mask_url, unknown_variables
from ._state import (
    ArmStats,
    Observation,
    PolicyState,
    aggregate,
    apply_deltas,
    decay_factor,
    merge,
)
from ._store import ApplyResult, Head, PolicyStore
from .bandits import (
    Algorithm,
    LinearThompson,
    LinUCB,
    Selection,
    Snapshot,
    algorithm_names,
    make_algorithm,
)

__all__ = [
    "Algorithm",
    "AlgorithmConfig",
    "ApplyResult",
    "ArmStats",
    "ConfigError",
    "ContextualBandit",
    "Head",
    "InMemoryPolicyStore",
    "InvalidDeltaError",
    "LinUCB",
    "LinearThompson",
    "Merge",
    "NoSnapshotError",
    "OUTCOME_COMPONENTS",
    "Observation",
    "PolicyConfig",
    "PolicyKeys",
    "PolicyReader",
    "PolicyState",
    "PolicyStore",
    "RLAgent",
    "RLCommonsError",
    "ReaderView",
    "RedisPolicyStore",
    "RewardSpec",
    "Selection",
    "Settings",
    "SettingsError",
    "Snapshot",
    "StoreError",
    "StoreUnavailableError",
    "UnknownArmError",
    "UnknownPolicyError",
    "aggregate",
    "algorithm_names",
    "apply_deltas",
    "arm_conflict",
    "decay_factor",
    "is_complete",
    "make_algorithm",
    "make_config",
    "mask_url",
    "merge",
    "merge_parts",
    "outcome_part",
    "outcome_reward",
    "unknown_variables",
]
