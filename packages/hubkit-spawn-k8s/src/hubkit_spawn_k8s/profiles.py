"""Profiles: which ones a user may pick (by hub group), the spawn-page form, and server-side validation.

The form is only a convenience: :func:`parse_options` and :func:`plan_for` re-check everything, so a
hand-made request can never get more CPU, memory or another image than its profile allows.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from hubkit.errors import InvalidOptions
from hubkit.interfaces import OptionsForm, UserInfo

from .config import KubeSpawnerConfig, Profile
from .objects import PodPlan
from .quantity import parse_quantity

OPTION_KEYS = {"profile", "image", "cpu", "memory"}


def allowed_profiles(cfg: KubeSpawnerConfig, user: UserInfo) -> list[Profile]:
    return [p for p in cfg.profiles if not p.groups or set(p.groups) & set(user.groups)]


def _default(profiles: list[Profile]) -> Profile:
    return next((p for p in profiles if p.default), profiles[0])


def options_form(cfg: KubeSpawnerConfig, user: UserInfo) -> OptionsForm | None:
    profiles = allowed_profiles(cfg, user)
    if not profiles:
        return None
    default = _default(profiles)
    parts = ['<fieldset class="hubkit-profiles"><legend>Server size</legend>']
    for p in profiles:
        checked = " checked" if p is default else ""
        e = html.escape
        parts.append(
            f'<label class="profile"><input type="radio" name="profile" value="{e(p.slug)}"{checked}> '
            f"<strong>{e(p.display_name)}</strong> <span>{e(p.description)}</span></label>"
        )
        images = [p.image or cfg.image, *p.images]
        if len(images) > 1:
            opts = "".join(f'<option value="{e(i)}">{e(i)}</option>' for i in images)
            parts.append(f'<label>Image for {e(p.display_name)} <select name="image">{opts}</select></label>')
        if p.max_cpu:
            parts.append(f'<label>CPUs (up to {e(p.max_cpu)}) <input name="cpu" inputmode="decimal"></label>')
        if p.max_mem:
            parts.append(f'<label>Memory (up to {e(p.max_mem)}) <input name="memory" placeholder="2Gi"></label>')
    parts.append("</fieldset>")
    return OptionsForm("\n".join(parts))


def _one(form: Mapping[str, Any], key: str) -> str | None:
    value = form.get(key)
    if isinstance(value, list | tuple):
        values = [v for v in value if v not in ("", None)]
        if len(set(values)) > 1:
            raise InvalidOptions(f"option {key!r} was given more than once with different values")
        value = values[0] if values else None
    if value in ("", None):
        return None
    return str(value).strip()


def parse_options(cfg: KubeSpawnerConfig, user: UserInfo, form: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(form) - OPTION_KEYS
    if unknown:
        raise InvalidOptions(f"unknown spawn option(s): {', '.join(sorted(unknown))}")
    chosen = {k: v for k in OPTION_KEYS if (v := _one(form, k)) is not None}
    if not cfg.profiles:
        if chosen:
            raise InvalidOptions("this hub offers no spawn options")
        return {}
    plan_for(cfg, user, chosen)  # raises InvalidOptions
    return chosen


def _bounded(kind: str, value: str, maximum: str | None, profile: Profile) -> str:
    if maximum is None:
        raise InvalidOptions(f"profile {profile.display_name!r} does not let you choose the {kind}")
    try:
        asked = parse_quantity(value)
    except ValueError:
        raise InvalidOptions(f"{kind} {value!r} is not a quantity such as 2, 500m or 4Gi") from None
    if asked <= 0:
        raise InvalidOptions(f"{kind} must be more than zero")
    if asked > parse_quantity(maximum):
        raise InvalidOptions(f"{kind} {value} is more than profile {profile.display_name!r} allows ({maximum})")
    return value


def plan_for(cfg: KubeSpawnerConfig, user: UserInfo, options: Mapping[str, Any]) -> PodPlan:
    """The effective pod choices for ``options``; raises :class:`InvalidOptions` for anything not allowed."""
    if not cfg.profiles:
        if options:
            raise InvalidOptions("this hub offers no spawn options")
        return PodPlan(
            image=cfg.image, cpu_request=cfg.cpu_request, cpu_limit=cfg.cpu_limit, mem_request=cfg.mem_request,
            mem_limit=cfg.mem_limit, extra_resource_limits=dict(cfg.extra_resource_limits),
            node_selector=dict(cfg.node_selector), tolerations=list(cfg.tolerations), affinity=cfg.affinity,
        )
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise InvalidOptions(f"unknown spawn option(s): {', '.join(sorted(unknown))}")
    allowed = allowed_profiles(cfg, user)
    slug = options.get("profile")
    if slug is None:
        if not allowed:
            raise InvalidOptions("no server profile is available to you; ask an admin to add you to a group")
        profile = _default(allowed)
    else:
        profile = next((p for p in cfg.profiles if p.slug == slug), None)  # type: ignore[assignment]
        if profile is None:
            raise InvalidOptions(f"unknown profile {slug!r}")
        if profile not in allowed:
            raise InvalidOptions(f"profile {profile.display_name!r} is limited to groups {', '.join(profile.groups)}")
    base_image = profile.image or cfg.image
    image = options.get("image") or base_image
    if image not in (base_image, *profile.images):
        raise InvalidOptions(f"image {image!r} is not offered by profile {profile.display_name!r}")
    cpu_limit = profile.cpu_limit or cfg.cpu_limit
    mem_limit = profile.mem_limit or cfg.mem_limit
    cpu_request = profile.cpu_request or cfg.cpu_request
    mem_request = profile.mem_request or cfg.mem_request
    if options.get("cpu"):
        cpu_limit = _bounded("CPU", str(options["cpu"]), profile.max_cpu, profile)
        if cpu_request and parse_quantity(cpu_request) > parse_quantity(cpu_limit):
            cpu_request = cpu_limit
    if options.get("memory"):
        mem_limit = _bounded("memory", str(options["memory"]), profile.max_mem, profile)
        if mem_request and parse_quantity(mem_request) > parse_quantity(mem_limit):
            mem_request = mem_limit
    return PodPlan(
        image=image,
        cpu_request=cpu_request,
        cpu_limit=cpu_limit,
        mem_request=mem_request,
        mem_limit=mem_limit,
        extra_resource_limits={**cfg.extra_resource_limits, **profile.extra_resource_limits},
        node_selector={**cfg.node_selector, **profile.node_selector},
        tolerations=[*cfg.tolerations, *profile.tolerations],
        affinity=profile.affinity or cfg.affinity,
        profile=profile.slug,
    )
