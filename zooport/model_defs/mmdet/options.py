"""No config option silently ignored: every argument a component's config sets must be read by zooport's
builder of that component, or be one that only MMDetection's training uses.

:func:`build_checked` builds a component from a :class:`ReadRecorder` (a dict that notes which keys its
reader asked for) and raises :class:`ConfigError` for every key set in the config that the builder never
read and that is not a training-only argument (``TRAINING_ONLY``, ``TRAINING_ONLY_BY_TYPE``). A builder that
copies its whole config (``dict(cfg)``, ``{**cfg}``, iteration) counts as reading every key, so the check
never refuses a config the builder honours; it catches arguments a builder does not know.

Also :func:`check_detector_keys` for the top-level model dict.
"""
from __future__ import annotations

from ...errors import ConfigError

# arguments that change only training (weights initialisation, freezing, losses, target assignment), never
# the inference graph or its state-dict keys
TRAINING_ONLY = {"type", "init_cfg", "pretrained", "train_cfg", "frozen_stages", "norm_eval", "with_cp",
                 "zero_init_residual",
                 # decode predictions before the regression loss (IoU losses); predict decodes the same way
                 "reg_decoded_bbox"}
TRAINING_ONLY_BY_TYPE = {
    "FCOSHead": {"center_sampling", "center_sample_radius"},  # target assignment
    "VFNetHead": {"center_sampling", "center_sample_radius", "use_vfl", "use_atss_train"},  # loss / targets
    "PAAHead": {"topk"},  # the top-k of the PAA assignment (training)
    "RepPointsHead": {"point_base_scale"},  # PointAssigner scale (training targets)
    "RepPointsV2Head": {"point_base_scale", "gradient_mul"},  # training targets; gradient scaling only
    "GARetinaHead": {"approx_anchor_generator"},  # approximate anchors: training targets only
    "SABLRetinaHead": {"approx_anchor_generator"},
    "CascadeRoIHead": {"stage_loss_weights"},
    # VGG's own out_indices: SSDVGG.forward returns the out_feature_indices layers instead (no effect)
    "SSDVGG": {"out_indices"},
}
DETECTOR_KEYS = {"type", "backbone", "neck", "bbox_head", "rpn_head", "roi_head", "train_cfg", "test_cfg",
                 "data_preprocessor", "init_cfg", "pretrained"}
DETECTOR_KEYS_BY_TYPE = {"YOLOX": {"input_size", "random_size_range", "random_size_interval"}}  # training resize


def _is_training_key(key: str, t: str) -> bool:
    return key in TRAINING_ONLY or key.startswith("loss_") or key in TRAINING_ONLY_BY_TYPE.get(t, ())


class ReadRecorder(dict):
    """A config dict that records the keys read through ``[]``, ``get``, ``in``, ``pop`` and ``setdefault``;
    anything that copies or iterates it marks every key read (the reader saw them all)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.read: set = set()

    def __getitem__(self, k):
        self.read.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        self.read.add(k)
        return super().get(k, default)

    def __contains__(self, k):
        self.read.add(k)
        return super().__contains__(k)

    def pop(self, k, *default):
        self.read.add(k)
        return super().pop(k, *default)

    def setdefault(self, k, default=None):
        self.read.add(k)
        return super().setdefault(k, default)

    def _all(self):
        self.read.update(super().keys())

    def __iter__(self):
        self._all()
        return super().__iter__()

    def keys(self):
        self._all()
        return super().keys()

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()

    def copy(self):
        self._all()
        return dict(super().items())

    def __reduce_ex__(self, protocol):  # copy.deepcopy / pickle: a plain dict, everything seen
        self._all()
        return dict, (dict(super().items()),)


def build_checked(builder, cfg: dict, t: str, where: str, label: str | None = None):
    """``builder(cfg, where)`` with ``cfg`` recorded; ConfigError (naming ``label`` or ``where``) for keys it
    never read (see module doc)."""
    rec = ReadRecorder(cfg)
    out = builder(rec, where)
    unread = sorted(str(k) for k in set(dict.keys(rec)) - rec.read if not _is_training_key(str(k), t))
    if unread:
        shown = ", ".join(f"{k}={dict.__getitem__(rec, k)!r}" for k in unread)
        raise ConfigError(f"{label or where}: {t} option(s) {shown} not implemented by zooport (an option zooport does not "
                          "read would silently give a different model, so the config is refused)")
    return out


def check_detector_keys(model_cfg: dict, where: str = "model") -> None:
    """ConfigError for a top-level model key zooport does not read (e.g. ``mask_head``-like extras)."""
    t = str(model_cfg.get("type"))
    extra = sorted(set(model_cfg) - DETECTOR_KEYS - DETECTOR_KEYS_BY_TYPE.get(t, set()))
    if extra:
        raise ConfigError(f"{where}: {t} option(s) {extra} not implemented by zooport")
