"""Which samples go into which micro-batch, on which process, at which optimizer step.

The whole plan is a pure function of (seed, epoch, step), computed identically on every process:
- **Mixture.** Each epoch draws `round(ratio * n)` samples from every source (whole passes for the
  integer part of the ratio, a fresh random subset for the fraction), then shuffles them together.
- **Padding the epoch.** The epoch is topped up to a whole number of global batches with the first
  samples of the same shuffled order (as torch's DistributedSampler does), so no sample is dropped
  and every process gets full micro-batches.
- **Length grouping.** Shuffled samples are cut into mega-batches of `mega` global batches; each is
  sorted by length and cut into global batches, whose order is then shuffled. Batches therefore hold
  samples of similar length (little padding) while the data order stays random.
- **Modality grouping** (optional, LLaVA-1.5's `group_by_modality_length`): inside a mega-batch,
  samples with an image sort before text-only ones, then by length, so a global batch holds one
  modality except where the two meet: text-only batches are short and leave the projector idle, and
  mixing them with image samples pads short rows to long ones.
- **Partition.** A global batch (sorted by length) is cut into `world * grad_accum` micro-batches;
  micro-batch `a * world + rank` is micro-step `a` on process `rank`. The union over processes of a
  step is exactly the global batch a single process would see, so DDP and single-process runs with the
  same global batch compute the same loss.

Resuming at step `k` needs only `k`: the plan is recomputed, nothing is stored.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


def draws_per_epoch(ratio: float, size: int) -> int:
    """How many samples an epoch takes from a source of `size` samples at `ratio`."""
    return round(ratio * size)


@dataclass(frozen=True)
class SourceSpan:
    """Samples `start .. start + size - 1` of the flat sample list come from one mixture source."""

    start: int
    size: int
    ratio: float


class BatchPlan:
    """The data order of one training stage.

    `lengths[i]` is the token length of flat sample `i`; `sources` says which flat samples form each
    mixture source. `micro_batch` is the per-process batch size.
    """

    def __init__(
        self,
        lengths: list[int],
        sources: list[SourceSpan],
        micro_batch: int,
        grad_accum: int,
        world_size: int,
        seed: int,
        group_by_length: bool = True,
        mega: int = 32,
        modality: list[int] | None = None,
    ):
        self.lengths = lengths
        self.sources = sources
        self.micro_batch = micro_batch
        self.grad_accum = grad_accum
        self.world_size = world_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.mega = mega
        self.modality = modality  # per flat sample: 0 with an image, 1 text-only (group by it first)
        self.global_batch = micro_batch * grad_accum * world_size
        self.samples_per_epoch = sum(self._take(s) for s in sources)
        if self.samples_per_epoch == 0:
            raise ValueError("the data mixture has no samples")
        self.steps_per_epoch = math.ceil(self.samples_per_epoch / self.global_batch)
        self._cache: tuple[int, list[list[int]]] | None = None

    @staticmethod
    def _take(s: SourceSpan) -> int:
        return draws_per_epoch(s.ratio, s.size)

    def _rng(self, epoch: int, salt: int) -> random.Random:
        # Seeded from integers only (no hash randomisation): identical on every process and run.
        return random.Random((self.seed * 1_000_003 + epoch) * 1_000_003 + salt)

    def epoch_samples(self, epoch: int) -> list[int]:
        """The mixture for `epoch`, shuffled, topped up to whole global batches."""
        order: list[int] = []
        for si, s in enumerate(self.sources):
            idx = list(range(s.start, s.start + s.size))
            rng = self._rng(epoch, 1 + si)
            want = self._take(s)
            while want >= s.size and s.size:
                order += idx
                want -= s.size
            if want:
                order += rng.sample(idx, want)
        self._rng(epoch, 0).shuffle(order)
        short = self.steps_per_epoch * self.global_batch - len(order)
        order += (order * (short // len(order) + 1))[:short]
        return order

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Global batches of `epoch` (each sorted longest first)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        order = self.epoch_samples(epoch)
        g = self.global_batch
        if self.group_by_length:
            size = g * self.mega
            batches = []
            for m in range(0, len(order), size):
                chunk = sorted(order[m : m + size], key=self._sort_key)
                batches += [chunk[b : b + g] for b in range(0, len(chunk), g)]
            self._rng(epoch, 10_007).shuffle(batches)
        else:
            batches = [order[b : b + g] for b in range(0, len(order), g)]
        batches = [sorted(b, key=lambda i: -self.lengths[i]) for b in batches]
        self._cache = (epoch, batches)
        return batches

    def _sort_key(self, i: int):
        return (self.modality[i], -self.lengths[i]) if self.modality is not None else -self.lengths[i]

    def global_batch_at(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        return self.epoch_batches(epoch)[k]

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """The `grad_accum` micro-batches that process `rank` runs for optimizer step `step`."""
        gb = self.global_batch_at(step)
        b, w = self.micro_batch, self.world_size
        parts = [gb[j * b : (j + 1) * b] for j in range(w * self.grad_accum)]
        return [parts[a * w + rank] for a in range(self.grad_accum)]


class StepBatches:
    """A torch `batch_sampler`: the micro-batches of `rank` for steps `start .. stop - 1`, in order."""

    def __init__(self, plan: BatchPlan, rank: int, start: int, stop: int):
        self.plan, self.rank, self.start, self.stop = plan, rank, start, stop

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield from self.plan.micro_batches(step, self.rank)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.plan.grad_accum
