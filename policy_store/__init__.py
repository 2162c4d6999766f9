"""policy_store: bandit math, policy config, stores and the proxy's PolicyReader.

Pure numpy for the math; Redis only in ``RedisPolicyStore``. Imports nothing
else of rl-commons.
"""

from ._compat import ContextualBandit, RLAgent
from ._components import COMPONENTS, ComponentStats, component_values, reward_weights
from ._config import AlgorithmConfig, PolicyConfig, RewardSpec, make_config
from ._constraint import (
    confidence_buffer,
    constraint_bound,
    constraint_target,
    dual_delta,
    normalised_max_cost,
    objective_weights,
    snapshot_weights,
    welch_buffer,
)
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
from ._multiplier import (
    MIN_BASELINE,
    ConstraintStatus,
    DualSteps,
    awaits_baseline,
    baseline_known,
    constraint_status,
    policy_dual_delta,
)
from ._objective import Objective
from ._outcome import (
    OUTCOME_COMPONENTS,
    Merge,
    arm_conflict,
    is_complete,
    merge_parts,
    outcome_part,
    outcome_reward,
)
from ._reader import PolicyReader, ReaderView, build_snapshot
from ._record import PolicyRecord, changes_key
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
from ._store import (
    DEDUPE_BUCKET_SECONDS,
    DEFAULT_DEDUPE_WINDOW,
    ApplyResult,
    Head,
    PolicyStore,
)
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
    "DEDUPE_BUCKET_SECONDS",
    "DEFAULT_DEDUPE_WINDOW",
    "build_snapshot",
    "changes_key",
    "snapshot_weights",
    "constraint_status",
    "ConstraintStatus",
    "objective_weights",
    "normalised_max_cost",
    "dual_delta",
    "policy_dual_delta",
    "DualSteps",
    "awaits_baseline",
    "baseline_known",
    "MIN_BASELINE",
    "constraint_target",
    "constraint_bound",
    "confidence_buffer",
    "Objective",
    "Algorithm",
    "AlgorithmConfig",
    "ApplyResult",
    "ArmStats",
    "COMPONENTS",
    "ComponentStats",
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
    "PolicyRecord",
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
    "component_values",
    "decay_factor",
    "is_complete",
    "make_algorithm",
    "make_config",
    "mask_url",
    "merge",
    "merge_parts",
    "outcome_part",
    "outcome_reward",
    "reward_weights",
    "unknown_variables",
    "welch_buffer",
]
