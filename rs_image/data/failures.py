"""What image and video data sets do when a sample cannot be loaded: one policy for both.

* train / val (:meth:`FailurePolicy.load`): the sample is replaced. Attempt ``a`` of sample ``i`` in epoch
  ``e`` loads candidate ``c_a`` inside :func:`~rs_image.data.randomness.sample_rng` ``(seed, e, i, a)``;
  ``c_0 = i`` and every later candidate is drawn uniformly from the data set by a generator seeded from the
  same four numbers. A candidate already known to fail is passed over without being opened again. Since a
  broken file fails every time, the sample returned (and its augmentation) depends only on
  ``(seed, e, i)``, never on which worker loaded it or what other workers found before: resume and the
  number of workers change nothing. The item reports ``failed_reads``, the number of candidates passed
  over, so summing it over a batch counts the replaced loads exactly. After ``num_retries`` further
  candidates, or once every sample is known to fail, loading stops with a :class:`~rs_image.errors.TooManyFailuresError` that says so.
* test (:meth:`FailurePolicy.load_or_none`): nothing is substituted (it would bias the accuracy); the
  caller returns the item marked ``failed``. Above ``max_failure_fraction`` failed or missing samples,
  loading stops with an error.

Each file is logged once (per process) with its reason. Which samples failed lives in shared memory, so
:meth:`FailurePolicy.report` in the main process sees what every DataLoader worker found.

A sample that loaded only through a fallback reader (a video decoder that retried a file its chosen
backend cannot decode) is not a failure: the data set marks it with :meth:`FailurePolicy.record_fallback`
and the report counts such samples apart (``num_fallback``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple, TypeVar

import torch

from rs_image.errors import TooManyFailuresError

from .randomness import sample_rng, sample_seed, split_index

__all__ = ["SampleLoadError", "check_file", "FailureReport", "FailurePolicy", "FILE_REASONS"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

FILE_REASONS: Tuple[str, ...] = ("missing", "empty file", "unreadable")
"""Reasons every kind of file can fail for; data sets add their own (a video has "no frames", ...)."""


class SampleLoadError(RuntimeError):
    """A sample could not be loaded.

    Attributes:
        path: the file.
        reason: a short machine-readable reason (one of the data set's reasons, e.g. :data:`FILE_REASONS`).
        detail: the underlying error message.
    """

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path, self.reason, self.detail = path, reason, detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):  # keep the attributes when raised in a DataLoader worker
        return (type(self), (self.path, self.reason, self.detail))


def check_file(path: str, error_cls: type = SampleLoadError) -> None:
    """Raise ``error_cls(path, "missing" | "empty file" | "unreadable")`` when ``path`` cannot be a sample."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise error_cls(path, "missing") from None
    except OSError as error:
        raise error_cls(path, "unreadable", str(error)) from None
    if size == 0:
        raise error_cls(path, "empty file")


@dataclass
class FailureReport:
    """What failed while loading a data set.

    Attributes:
        num_failed: distinct samples that have failed so far (all workers).
        num_missing: listed samples that do not exist (dropped when the data set was built).
        num_samples: samples in the data set (listed minus missing).
        failures: path -> reason of every failed or missing sample.
        num_fallback: distinct samples that loaded only through a fallback reader (not failures).
    """

    num_failed: int
    num_missing: int
    num_samples: int
    failures: Dict[str, str] = field(default_factory=dict)
    num_fallback: int = 0

    def __str__(self) -> str:
        reasons: Dict[str, int] = {}
        for reason in self.failures.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        by_reason = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
        fallback = f"; {self.num_fallback} read by a fallback decoder" if self.num_fallback else ""
        return (f"{self.num_failed} of {self.num_samples} samples failed, {self.num_missing} missing "
                f"({by_reason}){fallback}")


class FailurePolicy:
    """Seeded substitution (train/val) and failure accounting (all modes) for one data set.

    Args:
        num_samples: samples in the data set.
        path_of: sample index -> file path (for messages and reports).
        reasons: the reasons a :class:`SampleLoadError` of this data set can carry.
        seed: ``RNG_SEED``; with the epoch, sample index and attempt it seeds every random choice.
        num_retries: candidates tried after the first one fails (``DATA.NUM_RETRIES``).
        max_failure_fraction: test mode stops above this fraction of failed or missing samples; None: never.
        missing: listed paths that do not exist (count as failed in test mode).
        source: where the samples came from, for messages.
        kind: "video" or "image", for messages.
        hint: what to check when every sample fails (appended to that error).
    """

    def __init__(
        self,
        num_samples: int,
        path_of: Callable[[int], str],
        reasons: Sequence[str] = FILE_REASONS,
        *,
        seed: int = 0,
        num_retries: int = 10,
        max_failure_fraction: Optional[float] = None,
        missing: Sequence[str] = (),
        source: str = "",
        kind: str = "sample",
        hint: str = "",
    ) -> None:
        if num_retries < 0:
            raise ValueError(f"num_retries must be >= 0, got {num_retries}")
        self.num_samples = int(num_samples)
        self.path_of = path_of
        self.reasons = tuple(reasons)
        self.seed = int(seed)
        self.num_retries = int(num_retries)
        self.max_failure_fraction = max_failure_fraction
        self.missing = list(missing)
        self.source, self.kind, self.hint = source, kind, hint
        # Per-sample failure code shared by the DataLoader workers: 0 = not known to fail, else reason index + 1.
        self._codes = torch.zeros(self.num_samples, dtype=torch.int8).share_memory_()
        self._fallback = torch.zeros(self.num_samples, dtype=torch.bool).share_memory_()  # read by a fallback
        self._logged: set = set()  # per process: each file is logged once

    # ------------------------------------------------------------------------------------- accounting
    @property
    def num_failed(self) -> int:
        """Failed plus missing samples."""
        return int(torch.count_nonzero(self._codes)) + len(self.missing)

    @property
    def failures(self) -> Dict[str, str]:
        """Path -> reason of every sample that failed so far (all workers) and every missing one."""
        result = {path: "missing" for path in self.missing}
        for index in torch.nonzero(self._codes).flatten().tolist():
            result[self.path_of(index)] = self.reasons[int(self._codes[index]) - 1]
        return result

    def is_known_bad(self, index: int) -> bool:
        return int(self._codes[index]) != 0

    @property
    def num_fallback(self) -> int:
        """Distinct samples that loaded only through a fallback reader so far (all workers)."""
        return int(torch.count_nonzero(self._fallback))

    def record_fallback(self, index: int) -> None:
        """Remember that sample ``index`` loaded only through a fallback reader (counted apart from failures)."""
        self._fallback[index] = True

    def report(self) -> FailureReport:
        return FailureReport(int(torch.count_nonzero(self._codes)), len(self.missing), self.num_samples,
                             self.failures, self.num_fallback)

    def record(self, index: int, error: SampleLoadError, action: str) -> None:
        """Remember that sample ``index`` fails and log it once per file and process."""
        reason = error.reason if error.reason in self.reasons else "unreadable"
        if int(self._codes[index]) == 0:
            self._codes[index] = self.reasons.index(reason) + 1
        if index not in self._logged:
            self._logged.add(index)
            shown = f"{reason} ({error.detail})" if error.detail else reason
            logger.warning("skipping %s %s: %s; %s", self.kind, error.path, shown, action)

    def check_failure_fraction(self) -> None:
        """Raise when more than ``max_failure_fraction`` of the listed samples failed or are missing."""
        if self.max_failure_fraction is None:
            return
        listed = self.num_samples + len(self.missing)
        failed = self.num_failed
        if failed > self.max_failure_fraction * listed:
            examples = "; ".join(f"{p}: {r}" for p, r in list(self.failures.items())[:5])
            raise TooManyFailuresError(
                f"{self.source}: {failed} of {listed} test {self.kind}s failed or are missing, more than "
                f"DATA.MAX_FAILURE_FRACTION={self.max_failure_fraction:g}; e.g. {examples}"
            )

    # ---------------------------------------------------------------------------------------- loading
    def candidate(self, index: int, epoch: int, attempt: int) -> int:
        """The sample tried at ``attempt`` for sample ``index`` in ``epoch`` (module docstring)."""
        if attempt == 0:
            return index
        generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, index, attempt) ^ 0x5EED)
        return int(torch.randint(0, self.num_samples, (), generator=generator))

    def load(self, index: int, load: Callable[[int], T]) -> Tuple[T, int, int]:
        """Train/val: ``(load(c), c, failed_reads)`` for the first candidate ``c`` of ``index`` that loads.

        ``load`` runs inside the sample's seeded RNG scope and raises :class:`SampleLoadError` on a broken
        sample; any other exception propagates. ``index`` may be an
        :class:`~rs_image.data.randomness.EpochIndex`.
        """
        sample, epoch = split_index(index)
        last_errors = []
        for attempt in range(self.num_retries + 1):
            if self.num_failed - len(self.missing) >= self.num_samples:
                examples = "; ".join(f"{p}: {r}" for p, r in list(self.failures.items())[:3])
                raise TooManyFailuresError(
                    f"{self.source}: all {self.num_samples} {self.kind}s failed to load (e.g. {examples})"
                    + (f"; {self.hint}" if self.hint else "")
                )
            candidate = self.candidate(sample, epoch, attempt)
            if self.is_known_bad(candidate):
                continue
            try:
                with sample_rng(self.seed, epoch, sample, attempt):
                    return load(candidate), candidate, attempt
            except SampleLoadError as error:
                self.record(candidate, error, f"replaced by another {self.kind}")
                last_errors.append(f"{error.path}: {error.reason}")
        raise TooManyFailuresError(
            f"{self.source}: could not load {self.kind} {sample} or any of {self.num_retries} substitutes "
            f"(DATA.NUM_RETRIES={self.num_retries}); {self.num_failed} of {self.num_samples + len(self.missing)} "
            f"{self.kind}s have failed so far. Last failures: " + ("; ".join(last_errors[-3:]) or "known failures")
            + (f". {self.hint}" if self.hint else "")
        )

    def load_or_none(self, index: int, load: Callable[[int], T]) -> Optional[T]:
        """Test: ``load(index)``, or None when the sample fails (recorded; the fraction is checked)."""
        if self.is_known_bad(index):
            return None
        try:
            return load(index)
        except SampleLoadError as error:
            self.record(index, error, "excluded from the results")
            self.check_failure_fraction()
            return None
