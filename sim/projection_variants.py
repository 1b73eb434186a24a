"""Variant projections on the 2022 base, derived from the 2018-based variants.

ONS published only its migration-category (principal) 2022-based projection for sub-ICB
locations, so `reference.nc` stores that one (`population_projection_2022`). A variant is
derived at load time by scaling it with the 2018-based variant's departure from the 2018-based
principal (`population_projection`):

    derived[y, c] = principal_2022[y, c] * variant_2018[y', c] / principal_2018[y', c]

for every cell c = (icb, sex, age), where y' = min(y, last 2018-based year): years after 2043
hold the 2043 ratio. A cell whose 2018-based principal is 0 takes the ratio 1 (the 2022
principal unchanged). Pure function: no I/O, inputs are not modified.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

YEAR_2018 = "year"
YEAR_2022 = "year_2022"

METHOD = (
    "derived: principal_2022 x variant_2018 / principal_2018, by ICB, sex, age and mid-year; "
    "years after the last 2018-based year hold its ratio; ratio 1 where principal_2018 is 0"
)


def derive_variant(
    principal_2022: xr.DataArray, variant_2018: xr.DataArray, principal_2018: xr.DataArray
) -> xr.DataArray:
    """A 2018-based variant's ratio to the 2018-based principal applied to the 2022 principal.

    `principal_2022` has dims (year_2022, icb, sex, age) (another area dim such as icb26 works
    if the 2018 inputs are on it too); `variant_2018` and `principal_2018` have dims
    (year, icb, sex, age), e.g. `population_projection.sel(variant=...)`. Every dim other than
    the years must have identical coordinates in all three inputs (ValueError otherwise), and
    every `year_2022` must be on or after the first 2018-based year. Extra dims on
    `variant_2018` (such as `variant`, to derive several at once) are kept, in front. Returns
    float64 named `population_projection_2022_derived`, with `derived` (the method), `variant`
    (when `variant_2018` carries a single variant name) and the principal's `units`.
    """
    if YEAR_2022 not in principal_2022.dims:
        raise ValueError(f"principal_2022 needs a '{YEAR_2022}' dim, has {principal_2022.dims}")
    for name, da in (("variant_2018", variant_2018), ("principal_2018", principal_2018)):
        if YEAR_2018 not in da.dims:
            raise ValueError(f"{name} needs a '{YEAR_2018}' dim, has {da.dims}")
    cells = [d for d in principal_2022.dims if d != YEAR_2022]
    for name, da in (("variant_2018", variant_2018), ("principal_2018", principal_2018)):
        missing = set(cells) - set(da.dims)
        if missing:
            raise ValueError(f"{name} lacks dims {sorted(missing)} of principal_2022")
    extra = set(principal_2018.dims) - {YEAR_2018, *cells}
    if extra:
        raise ValueError(f"principal_2018 has dims {sorted(extra)} that principal_2022 lacks")

    def scalars_dropped(da: xr.DataArray) -> xr.DataArray:  # e.g. variant="principal"
        return da.drop_vars([c for c in da.coords if da[c].ndim == 0])

    try:
        var18, base = xr.align(
            scalars_dropped(variant_2018), scalars_dropped(principal_2018), join="exact"
        )
    except ValueError as error:
        raise ValueError(f"coordinates differ between the 2018 inputs: {error}") from None
    base = base.astype(np.float64)
    nonzero = base != 0
    ratio = xr.where(nonzero, var18.astype(np.float64) / base.where(nonzero, 1.0), 1.0)

    years = np.asarray(principal_2022[YEAR_2022].values)
    first, last = ratio[YEAR_2018].values.min(), ratio[YEAR_2018].values.max()
    if years.min() < first:
        raise ValueError(f"year_2022 starts at {years.min()}, before the 2018-based {first}")
    held = ratio.sel({YEAR_2018: np.minimum(years, last)})
    held = held.drop_vars(YEAR_2018).rename({YEAR_2018: YEAR_2022})
    held = held.assign_coords({YEAR_2022: principal_2022[YEAR_2022].values})
    p22 = principal_2022.astype(np.float64)
    try:
        p22, held = xr.align(p22, held, join="exact")
    except ValueError as error:
        raise ValueError(f"coordinates differ between the 2022 and 2018 inputs: {error}") from None

    front = [d for d in held.dims if d not in p22.dims]
    out = (p22 * held).transpose(*front, *principal_2022.dims)
    out.name = "population_projection_2022_derived"
    attrs = {"derived": METHOD}
    if "units" in principal_2022.attrs:
        attrs["units"] = principal_2022.attrs["units"]
    if "variant" in variant_2018.coords and variant_2018["variant"].ndim == 0:
        attrs["variant"] = str(variant_2018["variant"].values)
    attrs["long_name"] = (
        f"2022-based projection, {attrs.get('variant', 'variant')} derived from the 2018-based "
        "variant's ratio to its principal"
    )
    out.attrs = attrs
    return out
