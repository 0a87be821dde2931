"""A candidate's data for retraining (:func:`candidate_data`).

For a synthetic shift, the images the :class:`~resque_core.scoring.scorer.Scorer` corrupts and
scores, read from the same :class:`~resque_core.scoring.workspace.Workspace`: the shifted role
of the source data, same preprocessing, the same :func:`~resque_core.data.shifts.shifted_chunks`
with the run's seed; for real shifted data, those images relabelled to the source classes by
name; for a task, the task's data. Each is split per class 80/20 into train / held-out (seeded,
:func:`~resque_core.data.splits.stratified_split`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .config import RetrainConfig, RetrainData

if TYPE_CHECKING:
    from ..plans import Candidate, Plan
    from ..scoring.workspace import Workspace


__all__ = ["candidate_data"]


def candidate_data(
    plan: Plan,
    candidate: Candidate,
    *,
    workspace: Workspace,
    seed: int,
    config: RetrainConfig | None = None,
) -> RetrainData:
    """The candidate's images, split stratified into train / held-out by
    ``config.held_out_fraction`` with ``config.seed``. For a synthetic shift these are the
    images the scorer corrupts and scores: the shifted role of the source data
    (:func:`~resque_core.data.splits.synthetic_shift_roles`, the scoring run's ``seed``), through
    :func:`~resque_core.data.shifts.shifted_chunks` with that seed.
    ``config.max_samples_per_class``
    then picks rows of that set without redrawing their noise. Images are shifted on the workspace's
    device and returned on the CPU; the workspace supplies data loading, preprocessing, the
    device and the checkpoint's input channels."""
    from .. import data as data_mod
    from ..data.shifts import parse_shift, shifted_chunks

    config = config or RetrainConfig()
    source_spec = plan.resolve(plan.source)
    shift = None
    if candidate.kind == "shift":
        images = workspace.dataset(source_spec)
        shift = parse_shift(candidate.shift)
        rows = data_mod.synthetic_shift_roles(images.labels.numpy(), seed=seed)[1]
    elif candidate.kind == "shifted_data":
        images = workspace.aligned(source_spec, plan.resolve(candidate.data))
        rows = np.arange(len(images.labels))
    else:
        images = workspace.dataset(plan.resolve(candidate.data))
        rows = np.arange(len(images.labels))
    pre = workspace.preprocess(images)
    keep = rows
    if config.max_samples_per_class is not None:
        labels = images.labels.numpy()[rows]
        keep = rows[
            data_mod.subsample_per_class(labels, config.max_samples_per_class, seed=config.seed)
        ]
    # Noise depends on a row's position in the sequence shifted and on the generator's device:
    # a shift runs along the whole role on the workspace's device, as scored, and the cap drops
    # rows afterwards; unshifted data converts only the kept rows.
    chunks = shifted_chunks(
        images.images,
        rows if shift is not None else keep,
        shift,
        to_unit=lambda u: pre.to_unit(u, device=workspace.device),
        seed=seed,
        compat=plan.run.compat,  # the pipeline the candidate was scored with
    )
    kept = [x[torch.from_numpy(np.isin(sel.numpy(), keep)).to(x.device)].cpu() for sel, x in chunks]
    unit = torch.cat(kept) if kept else torch.empty(0)
    y = images.labels[torch.from_numpy(keep)].long()
    frac = config.held_out_fraction
    train, held = data_mod.stratified_split(y.numpy(), (1 - frac, frac), seed=config.seed)
    train_t, held_t = torch.from_numpy(train), torch.from_numpy(held)
    return RetrainData(
        train_x=unit[train_t],
        train_y=y[train_t],
        held_x=unit[held_t],
        held_y=y[held_t],
        num_classes=images.num_classes,
        normalize=pre.normalize,
        new_head=candidate.kind == "task",
        description=f"{candidate.id}: {candidate.title}",
    )
