"""Each generative model's settable keys as plain data (name, default, type, rule, one line of
meaning), read from its config class: the source of the light key table (``runkit.key_table``),
``rlgen keys`` and docs/keys.md."""

from __future__ import annotations

import dataclasses
from typing import Any

from generative import MODELS
from runkit.checks import class_rules

CONFIGS = {
    "vae": "generative.vae.config:VAEConfig",
    "pixelcnn": "generative.pixelcnn.config:PixelCNNConfig",
}


def config_class(model: str) -> type:
    import importlib

    module, _, name = CONFIGS[model].partition(":")
    return getattr(importlib.import_module(module), name)


def describe(model: str) -> dict[str, Any]:
    """The model's light key table: its keys, and the config class the precheck runs."""
    assert set(CONFIGS) == set(MODELS), "every model needs its config class here"
    cls = config_class(model)
    rules = class_rules(cls)
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(vars(klass).get("KEY_DOCS", {}))
    keys = {}
    for field in sorted(dataclasses.fields(cls), key=lambda f: f.name):
        row: dict[str, Any] = {"default": field.default}
        if field.name in rules:
            row["rule"] = rules[field.name].to_data()
        row["doc"] = docs.get(field.name, "")
        keys[field.name] = row
    return {"precheck": "generative.config:precheck", "config": CONFIGS[model], "keys": keys}
