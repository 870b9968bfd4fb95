"""``admm-attack solve``: run a spec on a model and data, write a resumable run directory."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from attacks.api import Attack
from attacks.grid import on_grid
from cli.outputs import write_pngs
from attacks.spec import AttackSpec, GroupSpec, SpecError
from cli import distributed
from cli.errors import UserError
from cli.figures import example_figure, pick_examples
from cli.outputs import summary, to_result, write_outputs
from cli.provenance import environment, git_revision
from cli.resolve import (check_compatible, describe_device, fingerprint, model_fingerprint,
                         parse_targets, resolve_data, resolve_device, resolve_model)
from cli.runner import Plan, run_all
from cli.spec_dict import spec_to_dict
from cli.spec_load import load_spec
from cli.spec_toml import dumps_spec
from cli.store import PROVENANCE, RunDir, atomic_write, merge, write_json


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def check_spec_fits(spec: AttackSpec, shape, label: str) -> None:
    """Build every term once on images of ``shape`` (group sizes vs image size...)."""
    for i, t in enumerate(spec.terms):
        key = f"terms.{t.name or i}"
        try:
            t.function()
        except SpecError as e:
            raise UserError(f"{label}: {key}: {e}") from None
        try:
            if t.groups is not None:
                t.groups.resolve(shape)
        except SpecError as e:
            raise UserError(f"{label}: {key}.groups: {str(e).removeprefix('groups: ')}") \
                from None


def _figures(run: RunDir, a: Dict[str, np.ndarray], originals: np.ndarray, spec: AttackSpec,
             count: int, net, device) -> List[Path]:
    shape = tuple(originals.shape[1:])
    groups = spec.groups(shape) or GroupSpec().resolve(shape)
    chosen = pick_examples(a["success"], count)
    if not chosen:
        return []
    with torch.no_grad():
        adv = torch.from_numpy(a["adversarial"][chosen])
        predicted = net(adv.to(device)).argmax(1).tolist()
    class_names = getattr(net, "class_names", None)
    paths = []
    for i, pred in zip(chosen, predicted):
        p = run.figures / f"example-{i:04d}.png"
        metrics = {k[len("metric_"):]: float(v[i]) for k, v in a.items()
                   if k.startswith("metric_")}
        example_figure(p, original=originals[i], adversarial=a["adversarial"][i],
                       delta=a["delta"][i], label=int(a["labels"][i]),
                       target=int(a["targets"][i]), targeted=bool(a["targeted"][i]),
                       success=bool(a["success"][i]), groups=groups, attack=spec.name, index=i,
                       source_index=int(a["source_index"][i]), metrics=metrics,
                       predicted=int(pred), class_names=class_names)
        paths.append(p)
    return paths


def solve(*, spec: str, sets: List[str], model: str, weights: Optional[str], data: str,
          n: Optional[int], targets: str, device: str, batch_size: int, seed: int, out: Path,
          figures: int, restart: bool, quiet: bool, threads: int = 0,
          grid: Optional[bool] = None) -> Optional[Dict[str, Any]]:
    """Everything ``admm-attack solve`` does; returns the summary (``None`` on torchrun
    ranks other than 0). User errors raise :class:`UserError`; an interruption leaves the
    finished batches in ``out``."""
    options = dict(spec=spec, set=list(sets), model=model, weights=weights, data=data, n=n,
                   targets=targets, device=device, batch_size=batch_size, seed=seed,
                   out=str(out), figures=figures, restart=restart, threads=threads,
                   grid=grid, quiet=quiet)
    if batch_size <= 0:
        raise UserError(f"--batch-size {batch_size}: expected a positive integer")
    if figures < 0:
        raise UserError(f"--figures {figures}: expected 0 or more")
    if threads < 0:
        raise UserError(f"--threads {threads}: expected 0 (torch's default) or more")
    if threads:
        torch.set_num_threads(threads)
    loaded = load_spec(spec, sets)
    ranks = distributed.current()
    dev = resolve_device(distributed.rank_device(device, ranks))
    net = resolve_model(model, weights, dev)
    images, labels = resolve_data(data, n)
    num_classes = check_compatible(net, images, labels, model, data)
    check_spec_fits(loaded.spec, tuple(images.shape[1:]), f"--spec {spec}")
    index, tg = parse_targets(targets, labels, num_classes, seed)
    if grid is None:  # on by default wherever the images are 8-bit (PNG-savable)
        grid = on_grid(images)
    elif grid and not on_grid(images):
        raise UserError(f"--grid needs 8-bit images (multiples of 1/255); --data {data} is not")

    run = RunDir(out)
    key = {"spec": spec_to_dict(loaded.spec), "model": model, "weights": weights,
           "model_sha256_16": model_fingerprint(net), "data": data, "n": n,
           "data_sha256_16": fingerprint(images, labels), "targets": targets, "seed": seed,
           "batch_size": batch_size, "grid": grid}
    spec_text = dumps_spec(loaded.spec)
    record = {"tool": "admm-attack solve", "status": "running", "resume_key": key,
              "spec_toml": spec_text, "spec_origin": loaded.origin, "seed": seed,
              "options": options, "argv": sys.argv, "device": describe_device(dev),
              "processes": ranks.world, "examples": int(index.shape[0]),
              "images": int(images.shape[0]), **environment()}
    entry = {"started": _now(), "git": git_revision(), "device": describe_device(dev),
             "processes": ranks.world, "options": options}
    history = ranks.run_on_main(lambda: start_run(run, key, record, entry, restart,
                                                  {"spec.toml": spec_text}))

    torch.manual_seed(seed)
    attack = Attack(net, loaded.spec, seed=seed, grid=grid)
    plan = Plan(images, labels, index, tg, batch_size)
    start = time.perf_counter()
    try:
        parts, resumed = run_all(run, attack, plan, label=loaded.spec.name,
                                 quiet=quiet or not ranks.main, ranks=ranks)
    except KeyboardInterrupt:
        done = len(list(run.batches.glob("batch-*.npz")))
        if ranks.main:
            entry.update(finished=_now(), interrupted=True)
            write_json(run.path(PROVENANCE), {**record, "status": "interrupted",
                                              "history": history + [entry]})
        raise KeyboardInterrupt(f"{done} of {len(plan.slices())} batches saved in {out}")
    seconds = time.perf_counter() - start
    if parts is None:  # a rank other than 0: its batches are stored, rank 0 merges
        return None

    arrays = merge(parts)
    result = to_result(arrays, loaded.spec.name, grid=grid)
    originals = images.index_select(0, index.cpu()).numpy()
    summ = summary(result, images=int(images.shape[0]), batches=len(parts), resumed=resumed,
                   seconds=seconds)
    write_outputs(run.root, arrays, originals, summ)
    if grid:
        write_pngs(run.path("png"), arrays)
    _figures(run, arrays, originals, loaded.spec, figures, net, dev)
    entry.update(finished=_now(), batches_computed=len(parts) - resumed,
                 batches_resumed=resumed)
    write_json(run.path(PROVENANCE), {**record, "status": "complete",
                                      "history": history + [entry]})
    return summ


def start_run(run: RunDir, key: Dict[str, Any], record: Dict[str, Any],
              entry: Dict[str, Any], restart: bool, files: Dict[str, str]) -> List[Any]:
    """Clear (``restart``) or check that ``run`` holds the same run (resume), write ``files``
    and the provenance with this ``entry`` appended; return the earlier history."""
    if restart:
        run.clear()
    resuming = run.check_resume(key)
    history = (run.stored_provenance() or {}).get("history", []) if resuming else []
    for name, text in files.items():
        atomic_write(run.path(name), text.encode("utf-8"))
    write_json(run.path(PROVENANCE), {**record, "history": history + [entry]})
    return history
