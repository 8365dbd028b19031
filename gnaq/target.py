"""Train until the quantized model keeps a target share of full precision on validation.

``fit_to_target(config, data, target)`` runs the usual schedule (``Trainer.fit``); when the
quantized model keeps less than ``target`` of the full-precision model it started from — on
validation, the smaller of the Recall@20 and NDCG@20 shares (``result["valid_kept"]``) — it fine-tunes from that
same full-precision model (its
``best_fp32.npz``, or ``--init-from``) with the next, larger setting of ``LADDER[bits]`` — each a
graph-free file a little bigger than the last — and keeps the first that meets the target, or
the last. Only the default deployment of gnaq climbs the ladder (an explicit deployment option is
what the user chose). The CLI (``--target``) and ``Recommender(target=...)`` both call it.

The ladder runs only when asked: ``off`` (or None, the default of the CLI and the library) trains
exactly ``bits``; a fraction such as 0.98 climbs; ``auto`` is DEFAULT_TARGET for gnaq's default
deployment (not with ``--size``, which fixes the file). A climbed run leaves OUT/target.json (the
target, every setting tried with its share, the chosen run's folder) and OUT/result.json describes
the chosen model, which the CLI exports to OUT.
"""

import os
from dataclasses import replace

from .training import Trainer

DEFAULT_TARGET = 0.98  # validation share asked by "auto" (module docstring)

# bits → the settings tried in turn after the default one (bench/results/defaults.md): node-aware
# mixed precision (the busiest 25% at 4 bits), then the default deployment one bit wider
LADDER = {
    1: [{"bits": 1, "quant_options": {"quantize": "z", "mix_share": 0.25, "mix_bits": 4}}, {"bits": 2}],
    2: [{"bits": 2, "quant_options": {"quantize": "z", "mix_share": 0.25, "mix_bits": 4}}, {"bits": 3}],
    3: [{"bits": 4}],
    4: [{"bits": 8}],
}


def resolve_target(target, config):
    """The validation share to climb to, or None: ``auto`` → DEFAULT_TARGET where the ladder applies
    (gnaq's default deployment at a width LADDER knows), ``off``/None → None, a fraction → itself."""
    if target is None or target == "off":
        return None
    sized = getattr(config, "size", None)  # --size fixes the file: the ladder's larger files would break it
    if target == "auto":
        return DEFAULT_TARGET if config.default_deployment and config.bits in LADDER and not sized else None
    if isinstance(target, str):
        try:
            target = float(target)
        except ValueError:
            raise ValueError(f"target must be 'auto', 'off' or a fraction such as 0.97, got {target!r}") from None
    if not target > 0:
        raise ValueError(f"target must be a positive fraction such as 0.97, got {target}")
    return float(target)


def saved_target(run_dir):
    """The target a run folder climbed to (its target.json), or "off" where it climbed to none."""
    import json
    path = os.path.join(run_dir, "target.json")
    if not os.path.exists(path):
        return "off"
    with open(path) as f:
        return json.load(f)["target"]


def fit_to_target(config, data, target=None, on_eval=None, trainer=None):
    """(trainer, result, tried): the chosen run's Trainer and result, and [(label, valid_kept)] of
    every setting tried. ``trainer``: an already built (or restored) Trainer for ``config``;
    ``target``: as ``resolve_target`` takes it. A climbed result records the first run's
    full-precision phase as ``warmup_phase`` (a refit replays it)."""
    target = resolve_target(target, config)
    trainer = trainer or Trainer(config, data)
    result = trainer.fit(on_eval=on_eval)
    warmup_phase = result.get("phases", {}).get("full_precision")
    tried = [(label_of(config), result.get("valid_kept"))]
    climbs = target is not None and config.default_deployment and config.bits in LADDER
    if not climbs or result.get("valid_kept") is None or result["valid_kept"] >= target:
        return trainer, ({**result, "target": target} if climbs else result), tried
    start = config.init_from or os.path.join(config.out, "best_fp32.npz")
    for step in LADDER[config.bits]:
        options = dict(step.get("quant_options", {}))
        candidate = replace(config, bits=step["bits"], quant_options=options, init_from=start, default_deployment=False,
                            quant_lr=0.3 * config.lr if options else None,  # as the default deployment fine-tunes
                            out=os.path.join(config.out, "target-" + label_of(step)))
        trainer = Trainer(candidate, data)
        trainer.resume_if_saved()  # a resumed run: this step was under way or done
        result = trainer.fit(on_eval=on_eval)
        tried.append((label_of(candidate), result.get("valid_kept")))
        if result.get("valid_kept") is not None and result["valid_kept"] >= target:
            break
    result = {**result, "target": target, "tried": [{"setting": s, "valid_kept": k} for s, k in tried],
              "chosen": os.path.relpath(trainer.config.out, config.out)}
    if warmup_phase and not config.init_from:
        result["warmup_phase"] = warmup_phase
    if trainer.comm.is_root:  # OUT/target.json: what was tried and where the chosen run lives
        write_json(os.path.join(config.out, "target.json"),
                   {k: result[k] for k in ("target", "tried", "chosen", "warmup_phase") if k in result})
        # the top-level result.json describes the model exported to OUT: the chosen one
        write_json(os.path.join(config.out, "result.json"), {**result, "bits": trainer.config.bits})
    return trainer, result, tried


def write_json(path, value) -> None:
    """json.dump(value) to path atomically (a reader sees the old file or the new one)."""
    import json
    from .checkpoint import atomic_write_bytes
    atomic_write_bytes(path, lambda f: f.write(json.dumps(value, indent=1).encode()))


def label_of(setting) -> str:
    bits = setting["bits"] if isinstance(setting, dict) else setting.bits
    options = setting.get("quant_options", {}) if isinstance(setting, dict) else {
        k: v for k, v in setting.quant_options.items() if k in ("mix_share", "mix_bits")}
    mix = f"-mix{int(100 * options['mix_share'])}at{options.get('mix_bits', 4)}" if "mix_share" in options else ""
    return f"b{bits}{mix}"
