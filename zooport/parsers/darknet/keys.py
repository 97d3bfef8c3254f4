"""Which sections and keys a Darknet cfg may contain (facts read from AlexeyAB/darknet ``src/parser.c``).

``SECTION_ALIASES`` maps every section name Darknet's ``string_to_layer_type`` accepts to one canonical
layer type. ``KNOWN_KEYS`` lists, per canonical type, every key Darknet's ``parse_*`` function reads for
it -- including training-only keys, which zooport accepts and ignores -- plus ``COMMON_LAYER_KEYS``
(read for every layer after its own parser ran). A few keys that appear in AlexeyAB's own cfgs although
no parser reads them (``[net] seen``, ``[yolo] beta1``, ...) are listed too, so every shipped cfg parses.
Section names are case-sensitive, as in Darknet (``[Gaussian_yolo]``).
"""
from __future__ import annotations

# section name as written (without brackets) -> canonical layer type
SECTION_ALIASES: dict[str, str] = {
    "net": "net", "network": "net",
    "convolutional": "convolutional", "conv": "convolutional",
    "connected": "connected", "conn": "connected",
    "maxpool": "maxpool", "max": "maxpool",
    "local_avgpool": "local_avgpool", "local_avg": "local_avgpool",
    "avgpool": "avgpool", "avg": "avgpool",
    "softmax": "softmax", "soft": "softmax",
    "normalization": "normalization", "lrn": "normalization",
    "empty": "empty", "silence": "empty",
    "shortcut": "shortcut", "scale_channels": "scale_channels", "sam": "sam", "crop": "crop",
    "cost": "cost", "detection": "detection", "region": "region", "yolo": "yolo",
    "Gaussian_yolo": "Gaussian_yolo", "local": "local", "activation": "activation",
    "crnn": "crnn", "gru": "gru", "lstm": "lstm", "conv_lstm": "conv_lstm", "history": "history",
    "rnn": "rnn", "reorg3d": "reorg3d", "reorg": "reorg", "dropout": "dropout",
    "batchnorm": "batchnorm", "contrastive": "contrastive", "route": "route", "upsample": "upsample",
    "implicit": "implicit",
}

# read by parse_network_cfg_custom for every layer, whatever its type
COMMON_LAYER_KEYS = frozenset({
    "clip", "onlyforward", "dont_update", "burnin_update", "stopbackward", "train_only_bn",
    "dontload", "dontloadscales", "learning_rate",
})

_NET = {
    "max_batches", "batch", "learning_rate", "learning_rate_min", "sgdr_cycle", "sgdr_mult", "momentum",
    "decay", "subdivisions", "time_steps", "track", "augment_speed", "sequential_subdivisions",
    "try_fix_nan", "weights_reject_freq", "equidistant_point", "badlabels_rejection_percentage",
    "num_sigmas_reject_badlabels", "ema_alpha", "use_cuda_graph", "loss_scale", "dynamic_minibatch",
    "optimized_memory", "workspace_size_limit_MB", "adam", "B1", "B2", "eps", "height", "width",
    "channels", "inputs", "max_crop", "min_crop", "flip", "blur", "gaussian_noise", "mixup", "cutmix",
    "mosaic", "letter_box", "mosaic_bound", "contrastive", "contrastive_jit_flip", "contrastive_color",
    "unsupervised", "label_smooth_eps", "resize_step", "attention", "adversarial_lr", "max_chart_loss",
    "angle", "aspect", "saturation", "exposure", "hue", "power", "policy", "burn_in", "step", "scale",
    "steps", "scales", "seq_scales", "gamma", "show_receptive_field",
    # present in shipped cfgs, read by no parser (Darknet only warns "Unused field")
    "max_epochs", "seen",
}
_YOLO_COMMON = {
    "classes", "num", "mask", "max", "max_delta", "counters_per_class", "label_smooth_eps", "scale_x_y",
    "objectness_smooth", "iou_normalizer", "obj_normalizer", "cls_normalizer", "delta_normalizer",
    "iou_loss", "iou_thresh_kind", "beta_nms", "nms_kind", "jitter", "resize", "ignore_thresh",
    "truth_thresh", "iou_thresh", "random", "map", "anchors",
}

KNOWN_KEYS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "net": _NET,
    "convolutional": {
        "filters", "groups", "size", "stride", "stride_x", "stride_y", "dilation", "antialiasing", "pad",
        "padding", "activation", "assisted_excitation", "share_index", "batch_normalize", "cbn", "binary",
        "xnor", "bin_output", "sway", "rotate", "stretch", "stretch_sway", "flipped", "dot", "angle",
        "grad_centr", "reverse", "coordconv", "stream", "wait_stream",
    },
    "local": {"filters", "size", "stride", "pad", "activation"},
    "crnn": {"size", "stride", "dilation", "pad", "padding", "output", "hidden", "groups", "activation",
             "batch_normalize", "xnor", "shortcut"},
    "rnn": {"output", "hidden", "activation", "batch_normalize", "logistic", "shortcut"},
    "gru": {"output", "batch_normalize"},
    "lstm": {"output", "batch_normalize"},
    "conv_lstm": {"size", "stride", "dilation", "pad", "padding", "output", "groups", "activation",
                  "batch_normalize", "xnor", "peephole", "bottleneck", "state_constrain", "shortcut",
                  "lstm_activation", "time_normalizer"},
    "history": {"history_size"},
    "connected": {"output", "activation", "batch_normalize"},
    "softmax": {"groups", "temperature", "tree", "spatial", "noloss"},
    "contrastive": {"classes", "yolo_layer", "temperature", "cls_normalizer", "max_delta",
                    "contrastive_neg_max"},
    "yolo": _YOLO_COMMON | {"show_details", "new_coords", "focal_loss", "track_history_size", "sim_thresh",
                            "dets_for_track", "dets_for_show", "track_ciou_norm", "embedding_layer",
                            # present in shipped cfgs, not read by parse_yolo
                            "beta1", "uc_normalizer"},
    "Gaussian_yolo": _YOLO_COMMON | {"uc_normalizer", "yolo_point"},
    "region": {"coords", "classes", "num", "max", "log", "sqrt", "softmax", "focal_loss", "jitter", "resize",
               "rescore", "thresh", "classfix", "absolute", "random", "coord_scale", "object_scale",
               "noobject_scale", "mask_scale", "class_scale", "bias_match", "tree", "map", "anchors"},
    "detection": {"coords", "classes", "rescore", "num", "side", "softmax", "sqrt", "max", "coord_scale",
                  "forced", "object_scale", "noobject_scale", "class_scale", "jitter", "resize", "random",
                  "reorg"},
    "cost": {"type", "scale", "ratio"},
    "crop": {"crop_height", "crop_width", "flip", "angle", "saturation", "exposure", "noadjust", "shift"},
    "reorg3d": {"stride", "reverse"},
    "reorg": {"stride", "reverse"},
    "local_avgpool": {"stride", "stride_x", "stride_y", "size", "padding"},
    "maxpool": {"stride", "stride_x", "stride_y", "size", "padding", "maxpool_depth", "out_channels",
                "antialiasing", "maxpool_zero_nonmax"},
    "avgpool": set(),
    "dropout": {"probability", "dropblock", "dropblock_size_rel", "dropblock_size_abs"},
    "normalization": {"alpha", "beta", "kappa", "size"},
    "batchnorm": set(),
    "shortcut": {"activation", "weights_type", "weights_normalization", "from"},
    "scale_channels": {"from", "scale_wh", "activation"},
    "sam": {"from", "activation"},
    "implicit": {"mean", "std", "filters", "atoms"},
    "activation": {"activation"},
    "upsample": {"stride", "scale"},
    "route": {"layers", "groups", "group_id", "stream", "wait_stream"},
    "empty": set(),
}.items()}

# every activation name Darknet's get_activation() knows (anything else silently becomes relu there;
# zooport rejects it instead)
ACTIVATIONS = frozenset({
    "logistic", "swish", "mish", "hard_mish", "normalize_channels", "normalize_channels_softmax",
    "normalize_channels_softmax_maxval", "loggy", "relu", "relu6", "elu", "selu", "gelu", "relie", "plse",
    "hardtan", "lhtan", "linear", "ramp", "revleaky", "leaky", "tanh", "stair",
})


def known_keys(layer_type: str) -> frozenset[str]:
    """Keys accepted in a section of canonical type ``layer_type``."""
    own = KNOWN_KEYS[layer_type]
    return own if layer_type == "net" else own | COMMON_LAYER_KEYS
