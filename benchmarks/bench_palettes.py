"""How exactly renderings read back to phase: the reader's own tables and other tools'.

For generated 224 px scenes (Mogi, dyke, none), each rendered in the reader's own table of a
style and in five foreign tables of the same family (``data.synthetic.styles.foreign_lut``),
the mean circular error of neighbouring-pixel phase differences after ``recover_phase(...,
"auto")`` (what the encoder's fringe-rate input sees), and how often the style is detected
wrongly. For hue cycles, the nearest colour of the reader's hue-cycle table (each colour's
brightest channel scaled to 255 first, the reading used before the hue angle) is measured
beside it. More diverging tables have a light blue that leans cyan or teal
(``styles.diverging_lut``), as some tools' do: the case where a detector that looks for green
hues could call a diverging rendering a hue cycle.

Detection under degradation: the same scenes and one of pure speckle, in the reader's diverging
table and those leaning ones, and in hue cycles of saturation 1 to 0.55 (amplitude-shaded), each
as rendered, halved (box), quartered (bilinear) and saved as JPEG (quality 50): the share
detected as the other family.

    python benchmarks/bench_palettes.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["run"]

AREA = "palettes"
N_FOREIGN = 5
# diverging light blues leaning cyan or teal, paler to stronger
LEANING_BLUES = ((150, 230, 220), (120, 220, 210), (80, 210, 190), (60, 200, 200))
HUE_SATURATIONS = (1.0, 0.85, 0.7, 0.55)  # hue cycles, full to pale


def _gradient_error(a: np.ndarray, b: np.ndarray) -> float:
    d = [np.diff(a, axis=k) - np.diff(b, axis=k) for k in (0, 1)]
    return float(
        np.concatenate([np.abs(np.angle(np.exp(1j * x[np.isfinite(x)]))) for x in d]).mean()
    )


def _nearest_hue_table(rgb: np.ndarray) -> np.ndarray:
    """The hue-cycle reading before the hue angle: nearest colour of the table after scaling."""
    from scipy.spatial import cKDTree

    from insarexplore.data.palettes import palette_lut

    lut = palette_lut("rainbow").astype(np.float64)
    cols = rgb.reshape(-1, 3).astype(np.float64)
    cols *= 255.0 / np.maximum(cols.max(axis=1, keepdims=True), 1.0)
    _, idx = cKDTree(lut).query(cols)
    return (-np.pi + 2 * np.pi * (idx + 0.5) / len(lut)).reshape(rgb.shape[:-1])


def measure(n: int = 40, size: int = 224) -> list[dict]:
    from insarexplore.data.palettes import detect_palette, recover_phase, render_phase
    from insarexplore.data.synthetic import generate
    from insarexplore.data.synthetic.styles import amplitude_texture, diverging_lut, foreign_lut

    phase = generate(n, size=size, classes=("mogi", "dyke", "none"), seed=5, progress=False)
    phase = phase["phase"].values
    amp = amplitude_texture(size, size, seed=1)
    rows = []
    for style in ("cyclic", "rainbow"):
        shade = amp if style == "rainbow" else None
        tables = [("own", None)] + [
            (f"foreign {k}", foreign_lut(style, np.random.default_rng(k)))
            for k in range(1, N_FOREIGN + 1)
        ]
        if style == "cyclic":
            tables += [(f"light blue {c}", diverging_lut(c)) for c in LEANING_BLUES]
        for name, lut in tables:
            imgs = [render_phase(p, style, amplitude=shade, lut=lut) for p in phase]
            err = np.mean(
                [_gradient_error(recover_phase(im, "auto"), p) for im, p in zip(imgs, phase)]
            )
            wrong = np.mean([detect_palette(im) != style for im in imgs])
            note = f"{n} scenes of {size} px; detected as another style: {wrong:.0%}"
            rows.append({"area": AREA, "metric": f"{style}, {name} table: read error",
                         "value": round(float(err), 4), "unit": "rad", "note": note})  # fmt: skip
            if style == "rainbow":
                old = np.mean(
                    [_gradient_error(_nearest_hue_table(im), p) for im, p in zip(imgs, phase)]
                )
                rows.append({"area": AREA, "metric": f"{style}, {name} table: nearest-colour read error",
                             "value": round(float(old), 4), "unit": "rad", "note": note})  # fmt: skip
    return rows


def detection(n: int = 40, size: int = 224) -> list[dict]:
    from insarexplore.data.palettes import detect_palette, palette_lut, render_phase
    from insarexplore.data.synthetic import generate
    from insarexplore.data.synthetic.styles import (
        amplitude_texture,
        degraded,
        diverging_lut,
        hue_cycle_lut,
    )

    phase = generate(n, size=size, classes=("mogi", "dyke", "none"), seed=5, progress=False)
    phase = [*phase["phase"].values, np.random.default_rng(0).uniform(-np.pi, np.pi, (size, size))]
    amp = amplitude_texture(size, size, seed=1)
    families = {
        "cyclic": [palette_lut("cyclic")] + [diverging_lut(c) for c in LEANING_BLUES],
        "rainbow": [hue_cycle_lut(s) for s in HUE_SATURATIONS],
    }
    rows = []
    for style, tables in families.items():
        wrong: dict[str, list[bool]] = {}
        for lut in tables:
            for p in phase:
                rgb = render_phase(p, lut=lut, amplitude=amp if style == "rainbow" else None)
                for name, im in degraded(rgb).items():
                    wrong.setdefault(name, []).append(detect_palette(im) != style)
        other = "a hue cycle" if style == "cyclic" else "diverging"
        for name, w in wrong.items():
            rows.append({"area": AREA, "metric": f"{style} tables, {name}: detected as {other}",
                         "value": round(100 * float(np.mean(w)), 1), "unit": "%",
                         "note": f"{len(tables)} tables x {len(phase)} scenes of {size} px"})  # fmt: skip
    return rows


def run(quick: bool = False) -> list[dict]:
    n, size = (6, 64) if quick else (40, 224)
    return measure(n=n, size=size) + detection(n=n, size=size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="6 scenes of 64 px (a smoke test)")
    args = p.parse_args(argv)
    for r in run(args.quick):
        print(f"{r['metric']:60s} {r['value']:8.4f} {r['unit']}  ({r['note']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
