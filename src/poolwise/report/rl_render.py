"""Render one RL episode as an animated GIF (or MP4 when ffmpeg is present): the agent, the
signal and the noise entities coloured apart (MPE), or the room's pixels (BoxWorld)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .figures import new_figure

#: (colour, label) per role of each environment's tokens
ROLE_STYLE = {
    "tag": {
        0: ("#d62728", "predator (agent)"),
        1: ("#7f7f7f", "obstacle (noise)"),
        3: ("#2ca02c", "prey (signal)"),
    },
    "centroid": {0: ("#d62728", "agent"), 2: ("#2ca02c", "signal"), 3: ("#7f7f7f", "noise")},
}


def render_episode(
    frames: list[dict[str, Any]], env: str, path: str | Path, title: str = "", fps: int = 10
) -> Path:
    """Write the frames of :func:`~poolwise.experiments.rl.play_episode` to ``path``
    (``.gif`` with Pillow, ``.mp4`` with ffmpeg)."""
    from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter

    path = Path(path)
    if path.suffix not in (".gif", ".mp4"):
        raise ValueError(f"output must end in .gif or .mp4; got {path.name!r}")
    plt, fig, ax = new_figure(4.6, 4.6)
    if "rgb" in frames[0]:
        image = ax.imshow(frames[0]["rgb"], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])

        def draw(i: int) -> list[Any]:
            image.set_data(frames[i]["rgb"])
            ax.set_title(f"{title}\nstep {i}, return {frames[i]['return']:.1f}", fontsize=8)
            return [image]
    else:
        allpos = np.concatenate([f["pos"] for f in frames])
        lo, hi = allpos.min(axis=0) - 0.3, allpos.max(axis=0) + 0.3
        side = max(hi - lo)
        centre = (lo + hi) / 2
        ax.set_xlim(centre[0] - side / 2, centre[0] + side / 2)
        ax.set_ylim(centre[1] - side / 2, centre[1] + side / 2)
        ax.set_aspect("equal")
        roles = frames[0]["roles"]
        style = ROLE_STYLE.get(env, {})
        dots = {}
        for role in sorted(set(roles.tolist()), reverse=True):
            colour, label = style.get(role, ("#1f77b4", f"role {role}"))
            size = 80 if role == 0 else 30
            dots[role] = ax.scatter([], [], s=size, c=colour, label=label, zorder=3 if role == 0 else 2)
        if env == "centroid":
            (centroid,) = ax.plot([], [], "x", color="#2ca02c", markersize=10, label="signal centroid")
        ax.legend(fontsize=7, loc="upper right")

        def draw(i: int) -> list[Any]:
            pos = frames[i]["pos"]
            for role, dot in dots.items():
                dot.set_offsets(pos[roles == role])
            if env == "centroid":
                c = pos[roles == 2].mean(axis=0)
                centroid.set_data([c[0]], [c[1]])
            ax.set_title(f"{title}\nstep {i}, return {frames[i]['return']:.2f}", fontsize=8)
            return list(dots.values())

    anim = FuncAnimation(fig, draw, frames=len(frames), blit=False)
    writer = PillowWriter(fps=fps) if path.suffix == ".gif" else FFMpegWriter(fps=fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    anim.save(str(tmp), writer=writer)
    plt.close(fig)
    tmp.replace(path)
    return path
