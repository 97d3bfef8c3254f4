"""Command-line options shared by the verbs that take a MODEL (export, verify, predict-style verbs)."""
from __future__ import annotations


def add_random_weights(p) -> None:
    """``--random-weights`` / ``--seed``: the explicit way to run a Darknet CFG that has no weights
    (``zooport.load(cfg, random_weights=True, seed=N)``); without it a CFG alone is refused."""
    g = p.add_argument_group("untrained model (Darknet CFG without WEIGHTS)")
    g.add_argument("--random-weights", action="store_true",
                   help="give a Darknet CFG without WEIGHTS seeded random parameters instead of refusing it "
                   "(for testing pipelines; the results mean nothing)")
    g.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of --random-weights (default 0; same seed, same weights on every machine)")


def model_kwargs(args) -> dict:
    """The ``load_model`` keywords these options give."""
    return {"random_weights": bool(getattr(args, "random_weights", False)), "seed": int(getattr(args, "seed", 0))}


def load_for_structure(args):
    """MODEL for a verb that reads only the architecture (``analyze model``, ``anchors``, ``assign``):
    a Darknet CFG alone is accepted and gets seeded random parameters (FLOPs, receptive fields, anchors
    and assigners do not depend on the weights), as if ``--random-weights`` were given."""
    from ..loading import load_model

    words = list(args.model)
    lone_cfg = len(words) == 1 and words[0].endswith(".cfg")
    return load_model(words, names=args.names, random_weights=lone_cfg or getattr(args, "random_weights", False),
                      seed=int(getattr(args, "seed", 0)))
