"""The Beam graph of `imagemend run`: one function, named transforms, read top to bottom.

    Manifest -> ListShards -> Distribute -> ReadGroupStats -> CollectReadings -> Decide -> AllGroups -> WriteGroups
                                         -> RestoreShards (Decide's output as a side input) -> Summarize -> WriteSummary

The launcher lists the shards once and writes them to a manifest under the output, so the graph
stays small however many shards there are. ListShards fans the manifest out to one element per
shard, and the Reshuffle after it spreads them over the workers (without it everything after a
one-element Create is fused onto one worker). Only shard descriptions and counts cross a shuffle:
pixels stay inside RestoreShards, which streams each shard from input to output. Pass 1 (pipeline/groups.py)
reads each photo's tone reading per group, and a group's decision reaches its photos as a side input.
"""

import apache_beam as beam

from imagemend.model.core.groups import GroupPrior

from .groups import CollectReadings, ReadGroupStats, decide, write_groups
from .infer import RestoreShards
from .options import RunOptions
from .shard import Hooks
from .sinks import read_manifest, write_summary


class SumCounts(beam.CombineFn):
    """Adds up the per-shard count dicts."""

    def create_accumulator(self) -> dict:
        return {}

    def add_input(self, acc: dict, counts: dict) -> dict:
        for k, v in counts.items():
            acc[k] = acc.get(k, 0) + v
        return acc

    def merge_accumulators(self, accs) -> dict:
        out: dict = {}
        for acc in accs:
            self.add_input(out, acc)
        return out

    def extract_output(self, acc: dict) -> dict:
        return acc


def build(p: beam.Pipeline, opts: RunOptions, manifest_uri: str, plan: dict,
          hooks: Hooks | None = None) -> beam.PCollection:
    out = opts.output
    shards = (
        p
        | "Manifest" >> beam.Create([manifest_uri])
        | "ListShards" >> beam.FlatMap(read_manifest, out.storage)
        | "Distribute" >> beam.Reshuffle()
    )
    decided, written = [], []  # side inputs of the grouping, where the run groups (not --group-by none, nor eval)
    if opts.groups.active:
        decisions = (
            shards
            | "ReadGroupStats" >> beam.ParDo(ReadGroupStats(opts))
            | "CollectReadings" >> beam.CombinePerKey(CollectReadings())
            | "Decide" >> beam.Map(decide, GroupPrior.load(), opts)
        )
        groups = (
            decisions
            | "AllGroups" >> beam.combiners.ToList()
            | "WriteGroups" >> beam.Map(write_groups, opts)
        )
        decided, written = [beam.pvalue.AsDict(decisions)], [beam.pvalue.AsSingleton(groups)]
    counts = shards | "RestoreShards" >> beam.ParDo(RestoreShards(opts, hooks), *decided)
    return (
        counts
        | "Summarize" >> beam.CombineGlobally(SumCounts())
        | "WriteSummary" >> beam.Map(write_summary, out.storage, out.url, plan, *written)
    )
