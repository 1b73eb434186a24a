"""Packaged reference data (`sim/data/`) as validated pandas and xarray objects.

Every model module reads its public inputs through these loaders, so a missing, truncated
or hand-edited data file fails here with one `DataError` line naming the file, instead of
as an h5py traceback or a silent NaN deep inside a run. `scripts/build_reference_data.py`
writes the files; `sim/data/README.md` documents their sources, units and timing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from sim.errors import DataError
from sim.footprint import Footprint, build_footprints
from sim.pipeline import load_pipeline

CATALOGUE_YEAR = 2023
"""Financial year of the service catalogue's `baseline_spend_gbp` (2023/24)."""

REFERENCE_FILE = "reference.nc"

# The contract in docs/architecture.md: every variable and its dims, in order.
REFERENCE_VARIABLES: dict[str, tuple[str, ...]] = {
    "population_projection": ("variant", "year", "icb", "sex", "age"),
    "population_projection_2022": ("year_2022", "icb", "sex", "age"),
    "population_projection_2022_icb26": ("year_2022", "icb26", "sex", "age"),
    "gp_registered": ("icb", "sex", "age"),
    "npp_mortality": ("variant", "npp_year", "sex", "age"),
    "npp_mortality_birth": ("variant", "npp_year", "sex"),
    "npp_fertility": ("variant", "npp_year", "fertility_age"),
    "npp_net_migration": ("variant", "npp_year", "sex", "age"),
    "npp_population": ("variant", "npp_year", "sex", "age"),
    "imd_score": ("icb",),
    "imd_income_score": ("icb",),
    "imd_health_score": ("icb",),
    "aif_population": ("aif_year", "icb"),
    "aif_weighted_population": ("aif_year", "icb", "aif_component"),
    "merger_share": ("icb", "icb26"),
}
COUNT_VARIABLES = (
    "population_projection",
    "population_projection_2022",
    "population_projection_2022_icb26",
    "gp_registered",
    "npp_population",
    "aif_population",
)
ICB_COLUMNS = ["icb", "icb_ods", "icb_name", "region", "region_ods", "region_name"]

SERVICE_COLUMNS = [
    "service_id",
    "name",
    "programme_of_care",
    "crg",
    "highly_specialised",
    "delegation_group",
    "need_group",
    "baseline_spend_gbp",
    "basis",
    "age_profile",
    "non_demographic_growth",
    "mean_cost_gbp",
    "cost_cv",
    "high_cost_share",
    "high_cost_mean_gbp",
    "basis_note",
]
SERVICE_NUMBERS = [
    "baseline_spend_gbp",
    "non_demographic_growth",
    "mean_cost_gbp",
    "cost_cv",
    "high_cost_share",
    "high_cost_mean_gbp",
]
NEED_GROUPS = (
    "cancer",
    "cardiac",
    "renal",
    "neonatal_critical_care",
    "adult_critical_care",
    "hiv_blood_infection",
    "mental_health",
    "other_physical",
)
"""NHS England's specialised need sub-models (DOMAIN.md), the catalogue's `need_group`."""

SERVICE_CHOICES = {
    "delegation_group": {"wave_59", "wave_70", "retained"},
    "need_group": set(NEED_GROUPS),
    "basis": {"published", "derived", "assumption"},
}
PROFILE_COLUMNS = ["profile", "sex", "age", "relative_rate"]

# Short descriptions for `specsim data`; sources in full are in sim/data/README.md.
DATA_FILES = {
    REFERENCE_FILE: (
        "Populations by ICB (SNPP 2018-based with variants; SNPP 2022-based principal on the "
        "2023 and 2026 ICBs; MYE; GP-registered), NPP England mortality, fertility and "
        "migration 2018-2047, IMD 2019, AIF weighted populations, 2026 merger shares",
        "ONS, NHS England, MHCLG (OGL v3); ICB aggregation of SNPP 2018 by The Strategy Unit",
    ),
    "icbs.csv": ("The 42 ICBs of April 2023 with their NHS regions", "ONS April 2023 lookup"),
    "icbs_2026.csv": (
        "The 36 ICBs of April 2026 with their NHS regions",
        "NHS England GP practice map, Aug 2026",
    ),
    "services.csv": (
        "Specialised-services catalogue: spend, delegation group, cost model",
        "see docs/service_catalogue.md",
    ),
    "utilisation_profiles.csv": (
        "Relative utilisation by sex and age for each service profile",
        "see docs/service_catalogue.md",
    ),
    "pipeline.csv": (
        "Candidate new treatments for CPAG prioritisation (synthetic)",
        "see docs/demand_model.md",
    ),
}


def data_path(name: str) -> Path:
    """Path of a packaged data file (it may not exist)."""
    return Path(str(files("sim").joinpath("data", name)))


def load_reference(path: str | Path | None = None) -> xr.Dataset:
    """The reference Dataset, read once per path, validated, fully in memory, file closed.

    Returns a shallow copy, so a caller adding or dropping variables cannot change what the
    next caller gets; the arrays themselves are shared and read-only (copy before writing).
    """
    target = Path(path) if path is not None else data_path(REFERENCE_FILE)
    return _read_reference(str(target.resolve())).copy(deep=False)


@functools.lru_cache(maxsize=4)
def _read_reference(path: str) -> xr.Dataset:
    if not Path(path).is_file():
        raise DataError(
            path, "reference data file not found (rebuild: python scripts/build_reference_data.py)"
        )
    try:
        with xr.open_dataset(path, engine="h5netcdf") as opened:
            ds = opened.load()
    except ImportError as error:
        raise DataError(path, f"cannot read NetCDF ({error})") from None
    except Exception as error:  # h5py/h5netcdf raise many types for a damaged file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(path, f"not a readable NetCDF file ({reason})") from None
    _validate_reference(path, ds)
    for variable in ds.variables.values():  # shared by every caller: writes must fail loudly
        variable.values.flags.writeable = False
    return ds


def _validate_reference(path: str, ds: xr.Dataset) -> None:
    for name, dims in REFERENCE_VARIABLES.items():
        if name not in ds.data_vars:
            raise DataError(path, f"variable '{name}' is missing")
        if ds[name].dims != dims:
            raise DataError(path, f"variable '{name}' has dims {ds[name].dims}, expected {dims}")
        if ds[name].isnull().any():
            raise DataError(path, f"variable '{name}' has missing values")
    for name in COUNT_VARIABLES:
        if (ds[name] < 0).any():
            raise DataError(path, f"variable '{name}' has negative populations")
    if "data_version" not in ds.attrs:
        raise DataError(path, "attribute 'data_version' is missing")


@dataclass(frozen=True)
class ServiceProfiles:
    """Utilisation profiles (profile, sex, age) and the profile row of each service."""

    profiles: np.ndarray
    index: np.ndarray

    @property
    def by_service(self) -> np.ndarray:
        """(service, sex, age): each service's own profile."""
        return self.profiles[self.index]


@dataclass(frozen=True, eq=False)
class ReferenceData:
    """Everything a run reads from the packaged data, each file loaded and checked once.

    Passed explicitly to the modules that need it; `version` keys every cache built on it.
    """

    dataset: xr.Dataset
    services: pd.DataFrame
    profiles: xr.DataArray
    icbs: dict[int, pd.DataFrame]
    pipeline: pd.DataFrame

    @property
    def version(self) -> str:
        return str(self.dataset.attrs["data_version"])

    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of the bytes of every packaged data file: the data part of cache keys."""
        return data_fingerprint()

    @functools.cached_property
    def footprints(self) -> dict[int, Footprint]:
        return build_footprints(self.icbs, self.dataset["merger_share"])

    @functools.cached_property
    def service_profiles(self) -> ServiceProfiles:
        names = list(self.profiles["profile"].values)
        index = np.array([names.index(p) for p in self.services["age_profile"]])
        values = self.profiles.transpose("profile", "sex", "age").values
        return ServiceProfiles(np.asarray(values, dtype=float), index)

    @functools.cached_property
    def registered(self) -> np.ndarray:
        """GP-registered patients per 2023 ICB (Aug 2026): the weight of need indices."""
        return self.dataset["gp_registered"].values.sum(axis=(1, 2))


def load_data(reference: str | Path | None = None) -> ReferenceData:
    """The packaged reference data (or another reference NetCDF) with catalogue, profiles,
    ICB tables and CPAG pipeline, cross-checked: every catalogue profile exists, the ICB
    table matches the NetCDF's ICBs and every pipeline service is in the catalogue."""
    target = Path(reference) if reference is not None else data_path(REFERENCE_FILE)
    return _load_data(str(target.resolve()))


@functools.lru_cache(maxsize=2)
def _load_data(path: str) -> ReferenceData:
    dataset = load_reference(path)
    services = load_services()
    profiles = load_profiles()
    icbs = {2023: load_icbs(2023), 2026: load_icbs(2026)}
    unknown = sorted(set(services["age_profile"]) - set(profiles["profile"].values))
    if unknown:
        raise DataError(data_path("services.csv"), f"age_profile: no utilisation profile {unknown}")
    if list(icbs[2023]["icb"]) != [str(c) for c in dataset["icb"].values]:
        raise DataError(data_path("icbs.csv"), f"ICB codes differ from those in {path}")
    if set(icbs[2026]["icb"]) != {str(c) for c in dataset["icb26"].values}:
        raise DataError(data_path("icbs_2026.csv"), f"ICB codes differ from those in {path}")
    pipeline = load_pipeline(known_services=services["service_id"])
    return ReferenceData(dataset, services, profiles, icbs, pipeline)


def data_fingerprint() -> str:
    """SHA-256 (shortened) of the packaged data files' bytes, in a fixed order."""
    import hashlib

    digest = hashlib.sha256()
    for name in DATA_FILES:
        path = data_path(name)
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"missing")
    return digest.hexdigest()[:16]


def data_version() -> str:
    """Version of the packaged reference data: release plus a hash of its contents."""
    return str(load_reference().attrs["data_version"])


def load_icbs(footprint: Literal[2023, 2026] = 2023) -> pd.DataFrame:
    """The ICB table for the 2023 (42 ICBs) or 2026 (36 ICBs) footprint, sorted by code."""
    names = {2023: "icbs.csv", 2026: "icbs_2026.csv"}
    if footprint not in names:  # a caller's bug: scenarios only allow 2023 and 2026
        raise ValueError(f"unknown ICB footprint {footprint!r}; use 2023 or 2026")
    path = data_path(names[footprint])
    table = _read_csv(path, dtype=str)
    _require_columns(path, table, ICB_COLUMNS)
    if table["icb"].duplicated().any() or table.isna().any().any():
        raise DataError(path, "duplicate ICB codes or blank cells")
    return table[ICB_COLUMNS].sort_values("icb").reset_index(drop=True)


def load_services(path: str | Path | None = None) -> pd.DataFrame:
    """The service catalogue with typed, checked columns (one row per `service_id`)."""
    path = Path(path) if path is not None else data_path("services.csv")
    table = _read_csv(path, dtype=str, keep_default_na=False)
    _require_columns(path, table, SERVICE_COLUMNS)
    table = table[SERVICE_COLUMNS].copy()
    if (table["service_id"] == "").any() or table["service_id"].duplicated().any():
        raise DataError(path, "service_id: blank or duplicated values")
    flags = table["highly_specialised"].str.strip().str.lower()
    if not flags.isin(["true", "false"]).all():
        raise DataError(path, "highly_specialised: values must be true or false")
    table["highly_specialised"] = flags == "true"
    for column in SERVICE_NUMBERS:
        numbers = pd.to_numeric(table[column], errors="coerce")
        lowest = -1.0 if column == "non_demographic_growth" else 0.0  # a service may shrink
        if not np.isfinite(numbers).all() or (numbers < lowest).any():
            raise DataError(path, f"{column}: values must be finite numbers >= {lowest:g}")
        table[column] = numbers.astype(float)
    for column, allowed in SERVICE_CHOICES.items():
        wrong = sorted(set(table[column]) - allowed)
        if wrong:
            raise DataError(path, f"{column}: unknown values {wrong}; allowed {sorted(allowed)}")
    return table


def load_profiles(path: str | Path | None = None) -> xr.DataArray:
    """Relative utilisation rates as DataArray(profile, sex, age) on the full sex x 0..90 grid."""
    path = Path(path) if path is not None else data_path("utilisation_profiles.csv")
    table = _read_csv(path, dtype={"profile": str, "sex": str})
    _require_columns(path, table, PROFILE_COLUMNS)
    if table.duplicated(["profile", "sex", "age"]).any():
        raise DataError(path, "duplicate (profile, sex, age) rows")
    rates = pd.to_numeric(table["relative_rate"], errors="coerce")
    if not np.isfinite(rates).all() or (rates < 0).any():
        raise DataError(path, "relative_rate: values must be finite non-negative numbers")
    grid = table.assign(relative_rate=rates).set_index(["profile", "sex", "age"])["relative_rate"]
    da = xr.DataArray.from_series(grid)
    expected_ages = np.arange(91)
    if list(da["sex"].values) != ["f", "m"] or not np.array_equal(da["age"].values, expected_ages):
        raise DataError(path, "each profile needs sex f and m and every age 0..90")
    if da.isnull().any():
        raise DataError(path, "some (profile, sex, age) cells are missing")
    da.name = "relative_rate"
    da.attrs = {"units": "1", "long_name": "utilisation rate relative to the profile's reference"}
    return da


def describe_data() -> list[dict[str, str]]:
    """One row per packaged data file: file, what it holds, source, size."""
    rows = []
    for name, (what, source) in DATA_FILES.items():
        path = data_path(name)
        size = _human_size(path.stat().st_size) if path.is_file() else "missing"
        rows.append({"file": name, "what": what, "source": source, "size": size})
    return rows


def _human_size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} kB"


def _read_csv(path: Path, **options) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(path, "data file not found")
    try:
        return pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise DataError(path, "empty file (no header, no rows)") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).splitlines()[0]
        raise DataError(path, f"not a readable CSV file ({reason})") from None


def _require_columns(path: Path, table: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(path, f"missing columns {missing}")
