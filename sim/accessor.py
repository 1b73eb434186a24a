"""What the plots, the report, the comparison and the notebooks share about a results Dataset.

Importing this module registers the `ds.specsim` accessor (`xarray.register_dataset_accessor`):
`ds.specsim.name`, `.base_year`, `.end_year`, `.fy(year)`, `.scenarios()` (one Dataset per
scenario), `.icb_labels()` (short ICB names), `.variations(...)` (the variations view of
`sim.variations`), `.plot(name)` (a figure of `sim.plots`). The functions behind it are plain
functions of a Dataset, so modules can use them without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from sim.years import financial_year


def as_list(ds_or_list: xr.Dataset | Sequence[xr.Dataset]) -> list[xr.Dataset]:
    """Scenarios as a list of Datasets: split a `scenario` dimension, accept one or many."""
    items = [ds_or_list] if isinstance(ds_or_list, xr.Dataset) else list(ds_or_list)
    out: list[xr.Dataset] = []
    for ds in items:
        if "scenario" in ds.dims:
            for name in ds["scenario"].values:
                one = ds.sel(scenario=name, drop=True)
                one.attrs = {**ds.attrs, "scenario_name": str(name)}
                out.append(one)
        else:
            out.append(ds)
    return out


def scenario_name(ds: xr.Dataset, default: str = "scenario") -> str:
    """The scenario's name for legends and tables."""
    return str(ds.attrs.get("scenario_name", default))


def end_year(ds: xr.Dataset) -> int:
    return int(ds["year"].max())


def base_year(ds: xr.Dataset) -> int:
    return int(ds["year"].min())


def short_icb_name(name: str) -> str:
    """'NHS Kent and Medway Integrated Care Board' -> 'Kent and Medway' (fits a bar label)."""
    name = name.removeprefix("NHS ")
    for suffix in (" Integrated Care Board", " ICB"):
        name = name.removesuffix(suffix)
    return name


NEED_GROUP_LABELS = {
    "hiv_blood_infection": "HIV, blood and infection",
    "neonatal_critical_care": "neonatal critical care",
    "adult_critical_care": "adult critical care",
    "other_physical": "other physical health",
    "mental_health": "mental health",
}


def need_group_label(group: str) -> str:
    """'hiv_blood_infection' -> 'HIV, blood and infection' (for titles and tables)."""
    return NEED_GROUP_LABELS.get(group, group.replace("_", " "))


def icb_labels(ds: xr.Dataset) -> list[str]:
    """Short ICB names, or the codes when a Dataset carries no names."""
    if "icb_name" in ds.coords:
        return [short_icb_name(str(n)) for n in ds["icb_name"].values]
    return [str(c) for c in ds["icb"].values]


@xr.register_dataset_accessor("specsim")
class SpecsimAccessor:
    """`ds.specsim`: labels and views of a specsim results Dataset."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    @property
    def name(self) -> str:
        return scenario_name(self._ds)

    @property
    def base_year(self) -> int:
        return base_year(self._ds)

    @property
    def end_year(self) -> int:
        return end_year(self._ds)

    @staticmethod
    def fy(year: int) -> str:
        return financial_year(year)

    def scenarios(self) -> list[xr.Dataset]:
        return as_list(self._ds)

    def icb_labels(self) -> list[str]:
        return icb_labels(self._ds)

    def variations(self, year: int | None = None, portfolio: str | None = None) -> xr.Dataset:
        """Access, intensity and spend per head against the benchmark (`sim.variations`)."""
        from sim.variations import variations

        return variations(self._ds, year, portfolio)

    def plot(self, name: str, **options):
        """One of the standard figures, e.g. `ds.specsim.plot("distance_from_target")`."""
        from sim import plots

        figure = getattr(plots, name, None)
        if figure is None or name.startswith("_") or not callable(figure):
            raise ValueError(f"no figure {name!r} in sim.plots")
        return figure(self._ds, **options)
