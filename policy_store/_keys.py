"""Redis key layout. Every key of one policy shares the hash tag ``{name}``, so one
policy lives in one Redis Cluster slot and the Lua apply touches a single slot.

    {prefix}:policies                 set of policy names (registry, own slot)
    {prefix}:{name}:config            JSON of PolicyConfig
    {prefix}:{name}:state             hash: xx:<arm> (d·d f8 LE), b:<arm> (d f8 LE), n:<arm>,
                                      y:<arm> component sums (C·d + 2C f8 LE: y row-major,
                                        then s, then s2; absent before any component data),
                                      xc:<arm> (d·d f8 LE), nc:<arm>: Gram and weight of the
                                        component observations, legacy arms only,
                                      dual: the Lagrange multiplier λ (absent = 0)
    {prefix}:{name}:version           integer, bumped on every apply / reset
    {prefix}:{name}:updated_at        unix seconds of the last change
    {prefix}:{name}:applied           hash, per rewards partition p: o:<p> the highest offset
                                      applied (watermark), t:<p> the partition's clock (largest
                                      reward time applied, s)
    {prefix}:{name}:seen:<p>          sorted set of the live buckets of partition p (score = bucket)
    {prefix}:{name}:seen:<p>:<bucket> set of the decision_ids applied from p whose rewards were
                                      made in that minute (bucket = floor(reward_ts / 60)); kept
                                      while within the dedupe window of the clock, for re-sent
                                      copies (same reward_ts, higher offset)
    {prefix}:{name}:dedupe:<id>       "1" with TTL: decision_id already applied (only batches
                                      without positions, e.g. an in-process store user)
    {prefix}:{name}:versions          pub/sub channel announcing new versions
    {prefix}:{name}:record            hash: created_at, reset_marks (JSON): the cuts a rebuild
                                      needs, written with every recorded change
    {prefix}:{name}:epoch             when this incarnation was created or rebuilt (Head.epoch)
    {prefix}:changes                  stream of PolicyRecord JSON, one entry per config change
                                      (own slot; relayed to Kafka by the stream workers)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PolicyKeys:
    prefix: str
    name: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.name}}}"

    @property
    def config(self) -> str:
        return f"{self.base}:config"

    @property
    def state(self) -> str:
        return f"{self.base}:state"

    @property
    def version(self) -> str:
        return f"{self.base}:version"

    @property
    def updated_at(self) -> str:
        return f"{self.base}:updated_at"

    @property
    def channel(self) -> str:
        return f"{self.base}:versions"

    @property
    def applied(self) -> str:
        return f"{self.base}:applied"

    @property
    def seen_prefix(self) -> str:
        return f"{self.base}:seen"

    def dedupe(self, decision_id: str) -> str:
        return f"{self.base}:dedupe:{decision_id}"

    def extra(self, suffix: str) -> str:
        """A key of the same slot for other components (metrics, aggregates)."""
        return f"{self.base}:{suffix}"


def registry_key(prefix: str) -> str:
    return f"{prefix}:policies"
