"""The Beam graph of `imagemend run`: one function, named transforms, read top to bottom.

    Manifest -> ListShards -> Distribute -> RestoreShards -> Summarize -> WriteSummary

The launcher lists the shards once and writes them to a manifest under the output, so the graph
stays small however many shards there are. ListShards fans the manifest out to one element per
shard, and the Reshuffle after it spreads them over the workers (without it everything after a
one-element Create is fused onto one worker). Only shard descriptions and counts cross a shuffle:
pixels stay inside RestoreShards, which streams each shard from input to output.
"""

import apache_beam as beam

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
    counts = shards | "RestoreShards" >> beam.ParDo(RestoreShards(opts, hooks))
    return (
        counts
        | "Summarize" >> beam.CombineGlobally(SumCounts())
        | "WriteSummary" >> beam.Map(write_summary, out.storage, out.url, plan)
    )
