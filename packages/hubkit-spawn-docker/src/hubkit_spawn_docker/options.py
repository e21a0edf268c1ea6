"""The spawn options form (image choice) and its server-side validation.

The submitted value is never trusted: ``parse_options`` only accepts a label from ``allowed_images``, and
:func:`resolve_image` re-checks stored options at start time, since options can also arrive through the API.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from hubkit.errors import InvalidOptions, SpawnFailed
from hubkit.interfaces import JSONDict, OptionsForm

from .config import DockerSpawnerConfig


def options_form(config: DockerSpawnerConfig) -> OptionsForm | None:
    if not config.allowed_images:
        return None
    rows = []
    for i, (label, ref) in enumerate(config.allowed_images.items()):
        selected = " selected" if i == 0 else ""
        rows.append(
            f'<option value="{html.escape(label)}"{selected}>{html.escape(label)} ({html.escape(ref)})</option>'
        )
    body = "\n    ".join(rows)
    return OptionsForm(
        html=(
            '<label for="hubkit-docker-image">Image</label>\n'
            f'<select id="hubkit-docker-image" name="image" class="form-control">\n    {body}\n</select>'
        )
    )


def _single(value: Any, field: str) -> str:
    """Form data may come as a string or (JupyterHub style) a one-element list."""
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise InvalidOptions(f"option {field!r} must have exactly one value")
        value = value[0]
    if not isinstance(value, str):
        raise InvalidOptions(f"option {field!r} must be a string")
    return value


def parse_options(config: DockerSpawnerConfig, form: Mapping[str, Any]) -> JSONDict:
    unknown = sorted(set(form) - {"image"})
    if unknown:
        raise InvalidOptions(f"unknown spawn option(s): {', '.join(unknown)}")
    if "image" not in form:
        return {}
    label = _single(form["image"], "image").strip()
    if not config.allowed_images:
        raise InvalidOptions("this hub does not let users choose an image")
    if label not in config.allowed_images:
        choices = ", ".join(sorted(config.allowed_images))
        raise InvalidOptions(f"image {label!r} is not allowed; choose one of: {choices}")
    return {"image": label}


def resolve_image(config: DockerSpawnerConfig, user_options: Mapping[str, Any]) -> str:
    """The image reference to run, from validated (or stored) options."""
    label = user_options.get("image")
    if label is None or label == "":
        return config.image
    if isinstance(label, str) and label in config.allowed_images:
        return config.allowed_images[label]
    raise SpawnFailed(f"image option {label!r} is not an allowed image", reason_code="invalid-options")
