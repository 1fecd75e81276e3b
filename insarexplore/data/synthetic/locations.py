"""A small built-in table of real places where each class of deformation is observed.

Coordinates are public, rounded summit / epicentre / basin-centre positions (Smithsonian Global
Volcanism Program for volcanoes, USGS/EMSC event pages for earthquakes, published InSAR studies
for subsidence basins), to two or three decimals: good enough to place a synthetic footprint on a
plausible spot of the map, not for science. Earthquake zones carry the mechanism of their
well-known event so that a drawn mechanism can be placed where it occurs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Location", "LOCATIONS", "CLASS_LOCATION_KIND", "locations_of_kind"]


@dataclass(frozen=True)
class Location:
    """A named place: ``kind`` is "volcano", "seismic" or "basin"; ``tag`` a free qualifier."""

    name: str
    kind: str
    lat: float
    lon: float
    tag: str = ""


def _table() -> tuple[Location, ...]:
    volcanoes = [
        ("Etna", 37.751, 14.993), ("Campi Flegrei", 40.827, 14.139), ("Vesuvius", 40.821, 14.426),
        ("Santorini", 36.404, 25.396), ("Kilauea", 19.421, -155.287),
        ("Mauna Loa", 19.475, -155.608), ("Sierra Negra", -0.830, -91.170),
        ("Fernandina", -0.370, -91.550), ("Wolf", 0.020, -91.350), ("Agung", -8.343, 115.508),
        ("Merapi", -7.540, 110.446), ("Taal", 14.002, 120.993), ("Sakurajima", 31.585, 130.657),
        ("Erta Ale", 13.600, 40.670), ("Alu-Dalafilla", 13.793, 40.553),
        ("Corbetti", 7.180, 38.430), ("Aluto", 7.770, 38.780), ("Nyiragongo", -1.520, 29.250),
        ("Piton de la Fournaise", -21.244, 55.708), ("Fagradalsfjall", 63.903, -22.273),
        ("Bardarbunga", 64.640, -17.530), ("Askja", 65.030, -16.750), ("Hekla", 63.980, -19.700),
        ("Cumbre Vieja", 28.570, -17.840), ("Uturuncu", -22.270, -67.180),
        ("Laguna del Maule", -36.058, -70.492), ("Domuyo", -36.636, -70.430),
        ("Okmok", 53.430, -168.130), ("Westdahl", 54.520, -164.650), ("Yellowstone", 44.430, -110.670),
    ]  # fmt: skip
    seismic = [
        ("Amatrice 2016", 42.700, 13.230, "normal"), ("Norcia 2016", 42.830, 13.110, "normal"),
        ("L'Aquila 2009", 42.340, 13.380, "normal"), ("Elassona 2021", 39.730, 22.280, "normal"),
        ("Samos 2020", 37.900, 26.790, "normal"), ("Gorkha 2015", 28.230, 84.730, "thrust"),
        ("Sarpol-e Zahab 2017", 34.910, 45.960, "thrust"), ("Le Teil 2019", 44.520, 4.670, "thrust"),
        ("Durres 2019", 41.510, 19.520, "thrust"), ("Pohang 2017", 36.110, 129.370, "thrust"),
        ("Ridgecrest 2019", 35.770, -117.600, "strike-slip"),
        ("Napa 2014", 38.220, -122.310, "strike-slip"),
        ("Kahramanmaras 2023", 37.230, 37.010, "strike-slip"),
        ("Elazig 2020", 38.390, 39.080, "strike-slip"), ("Petrinja 2020", 45.400, 16.210, "strike-slip"),
        ("Kumamoto 2016", 32.760, 130.760, "strike-slip"), ("Palu 2018", -0.180, 119.840, "strike-slip"),
        ("Kaikoura 2016", -42.690, 173.020, "thrust"), ("Lombok 2018", -8.290, 116.450, "thrust"),
        ("Maduo 2021", 34.590, 98.340, "strike-slip"),
    ]  # fmt: skip
    basins = [
        ("Mexico City", 19.430, -99.130), ("Jakarta", -6.200, 106.850), ("Semarang", -6.970, 110.420),
        ("Tehran Varamin", 35.350, 51.600), ("Rafsanjan", 30.400, 56.000), ("Mashhad", 36.300, 59.600),
        ("Tulare Basin", 36.200, -119.350), ("Houston", 29.760, -95.370), ("Las Vegas", 36.170, -115.140),
        ("Bangkok", 13.750, 100.500), ("Ho Chi Minh City", 10.780, 106.700), ("Shanghai", 31.230, 121.470),
        ("Beijing", 39.900, 116.400), ("Groningen", 53.300, 6.800), ("Venice", 45.440, 12.330),
        ("Lorca", 37.680, -1.700), ("Konya", 37.870, 32.490), ("Kolkata", 22.570, 88.360),
    ]  # fmt: skip
    out = [Location(n, "volcano", la, lo) for n, la, lo in volcanoes]
    out += [Location(n, "seismic", la, lo, tag) for n, la, lo, tag in seismic]
    out += [Location(n, "basin", la, lo) for n, la, lo in basins]
    return tuple(out)


LOCATIONS: tuple[Location, ...] = _table()

# where each class is placed; "none" may appear anywhere
CLASS_LOCATION_KIND = {
    "mogi": ("volcano",),
    "sill": ("volcano",),
    "dyke": ("volcano",),
    "earthquake": ("seismic",),
    "subsidence": ("basin",),
    "none": ("volcano", "seismic", "basin"),
}


def locations_of_kind(*kinds: str, tag: str | None = None) -> np.ndarray:
    """Indices into :data:`LOCATIONS` of the given kinds (and tag, when given)."""
    idx = [
        i
        for i, loc in enumerate(LOCATIONS)
        if loc.kind in kinds and (tag is None or loc.tag == tag)
    ]
    if not idx:
        raise ValueError(f"no built-in locations of kind {kinds} with tag {tag!r}")
    return np.asarray(idx, dtype=np.int64)
