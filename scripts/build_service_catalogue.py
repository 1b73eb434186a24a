"""Build the service catalogue (`sim/data/services.csv`) and utilisation profiles.

Why a script: no machine-readable list of prescribed specialised services or their spend
was found (shared/data/SOURCES.md, "Not found"), so the catalogue is an analyst-readable
table. Keeping it as Python makes the anchoring to published figures reproducible.

How the GBP 25.0bn of 2023/24 is built (figures and sources in shared/DOMAIN.md, "More
published figures"; docs/service_catalogue.md has the tables):

- every row belongs to one *anchor*: a published or derived total (the Feb 2023 portfolio
  split, which excludes high-cost drugs and devices (HCDD) and national programmes; the
  mental health provider collaboratives; the two ring-fenced drug funds) or, for HCDD, the
  residual of the GBP 25bn after all the others;
- a few rows are themselves published or derived (the two funds, dialysis); the other rows
  of an anchor share what is left of its total in proportion to a relative size (GBP m, an
  assumption), to the pound by largest remainder;
- HCDD are separate rows, one per service area, all `retained`: the published delegated
  figures (GBP 13bn, 5.3bn, 14bn) exclude them.

Run: `.venv/bin/python scripts/build_service_catalogue.py` (rewrites both CSVs and prints
the tables that docs/service_catalogue.md quotes; tests/test_reference.py checks the two
agree).
"""

# ruff: noqa: E501  (the catalogue table reads best one service per line)
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.reference import NEED_GROUPS, SERVICE_COLUMNS

DATA = Path(__file__).resolve().parents[1] / "sim" / "data"
AGES = np.arange(91)

TOTAL_GBP = 25_000_000_000
"""Specialised spend 2023/24 (NHS England; parliamentary answer of May 2024; DOMAIN.md)."""

# --- published per-service figures (DOMAIN.md, "By service") -------------------------------
DIALYSIS_IN_CENTRE_GBP = 24_804
DIALYSIS_HOME_GBP = 25_116
"""Cost per patient per year (parliamentary answer, 2021)."""
RRT_PATIENTS = 43_000
"""People on renal replacement therapy, dialysis plus transplant (NHS England renal CRG page)."""
RRT_STARTING_A_YEAR = 5_500
DIALYSIS_HOME_SHARE = 0.15
"""Share of dialysis patients on home dialysis. Assumption (not in the shared sources)."""
DIALYSIS_SHARE_OF_RRT = 0.5
"""Share of the 43,000 on dialysis rather than with a transplant. Assumption."""
DIALYSIS_MEAN_GBP = round(
    (1 - DIALYSIS_HOME_SHARE) * DIALYSIS_IN_CENTRE_GBP + DIALYSIS_HOME_SHARE * DIALYSIS_HOME_GBP
)
DIALYSIS_PATIENTS = round(DIALYSIS_SHARE_OF_RRT * RRT_PATIENTS)
TRANSPLANT_PATIENTS = RRT_PATIENTS - DIALYSIS_PATIENTS
CAR_T_PRICE_GBP = 282_000
"""CAR-T list price per patient (2018)."""
FUND_GBP = 340_000_000
"""Cancer Drugs Fund and Innovative Medicines Fund, each ring-fenced at GBP 340m (2022)."""


@dataclass(frozen=True)
class Anchor:
    """A total that a set of rows shares: its size (GBP m), the basis of that size, and why.

    `total_m` None: the rows are taken at their own size (no published total); "residual":
    the rest of TOTAL_GBP after every other anchor.
    """

    label: str
    total_m: int | str | None
    basis: str
    source: str


ANCHORS: dict[str, Anchor] = {
    "ready_59": Anchor(
        "59 services ready for ICB leadership",
        13_000,
        "published",
        "£13bn for the 59 services ready for ICB leadership, excluding high-cost drugs and devices and national programmes (NHS England portfolio split, Feb 2023, via Mills & Reeve and HSJ)",
    ),
    "added_11": Anchor(
        "the 11 added in April 2025",
        1_000,
        "derived",
        "£14bn for the 70 services delegated to all ICBs from April 2025 (NHS England Board 2024) minus the £13bn for the 59 (Feb 2023 split)",
    ),
    "not_ready": Anchor(
        "the other 18 'suitable but not ready'",
        500,
        "derived",
        "£1.5bn for the 29 services suitable for ICB leadership but not ready (Feb 2023 split) minus the £1.0bn of the 11 of them delegated in 2025",
    ),
    "national_89": Anchor(
        "89 kept national (incl. the 78 HSS)",
        1_300,
        "published",
        "£1.3bn for the 89 services kept national, including all 78 highly specialised services, excluding high-cost drugs and devices (Feb 2023 split)",
    ),
    "mh_collab": Anchor(
        "mental health provider collaboratives",
        2_000,
        "published",
        "specialised mental health provider collaboratives about £2bn (HSJ, 2019), taken as the 2023/24 level",
    ),
    "mh_other": Anchor(
        "other specialised mental health",
        None,
        "assumption",
        "no published figure for the specialised mental health services outside the provider collaboratives",
    ),
    "funds": Anchor(
        "Cancer Drugs Fund and Innovative Medicines Fund",
        680,
        "published",
        "Cancer Drugs Fund £340m plus Innovative Medicines Fund £340m, ring-fenced (2022)",
    ),
    "programmes": Anchor(
        "other national programmes",
        None,
        "assumption",
        "no published figure for the hepatitis C elimination programme",
    ),
    "hcdd": Anchor(
        "high-cost drugs and devices",
        "residual",
        "derived",
        "£25bn (2023/24) minus every other anchor: minus the £15.8bn of the Feb 2023 split (which excludes high-cost drugs and devices and national programmes), minus mental health, the two funds and hepatitis C",
    ),
}
"""What each row's spend is anchored to (docs/service_catalogue.md, 'Anchors')."""

IM, CA, MH, TR, WC, BI = (
    "Internal medicine",
    "Cancer",
    "Mental health",
    "Trauma",
    "Women and children",
    "Blood and infection",
)
ONC, CAR, REN, NCC, ACC, HBI, MEN, OTH = NEED_GROUPS

# id, name, programme of care, CRG, highly specialised, delegation group, anchor, need group,
# relative spend (GBP m, an assumption; ignored for rows in FIXED_GBP), age profile,
# non-demographic growth, mean cost of an ordinary patient-year, its cv, share of the
# service's spend from rare very-high-cost cases, their mean cost.
# fmt: off
ROWS: list[tuple] = [
    # --- wave_59: delegated from 2024 (3 regions) / 2025 (all); anchor: the Feb 2023 GBP 13bn --
    ("cardiac_surgery_adult", "Adult cardiac surgery", IM, "Cardiac services", 0, "wave_59", "ready_59", CAR, 650, "cardiovascular", 0.030, 19_000, 0.8, 0.0, 0),
    ("cardiology_specialised_adult", "Adult specialised cardiology (PCI, electrophysiology, devices; high-cost devices in hcdd_cardiac_devices)", IM, "Cardiac services", 0, "wave_59", "ready_59", CAR, 800, "cardiovascular", 0.040, 8_000, 1.0, 0.0, 0),
    ("congenital_heart_adult", "Adult congenital heart disease", IM, "Congenital heart services", 0, "wave_59", "ready_59", CAR, 90, "congenital_rare", 0.040, 12_000, 1.2, 0.0, 0),
    ("vascular_specialised", "Specialised vascular services (adult)", IM, "Vascular disease", 0, "wave_59", "ready_59", OTH, 450, "cardiovascular", 0.030, 14_000, 0.9, 0.0, 0),
    ("thoracic_surgery_adult", "Adult thoracic surgery", IM, "Thoracic surgery", 0, "wave_59", "ready_59", OTH, 250, "cancer", 0.030, 16_000, 0.7, 0.0, 0),
    ("renal_dialysis", "Renal dialysis (haemodialysis and peritoneal; in-centre and home)", IM, "Renal services", 0, "wave_59", "ready_59", REN, 0, "renal", 0.040, DIALYSIS_MEAN_GBP, 0.4, 0.0, 0),
    ("renal_transplant_adult", "Adult kidney transplantation (transplants and follow-up)", IM, "Renal services", 0, "wave_59", "ready_59", REN, 250, "renal", 0.030, 0, 1.0, 0.0, 0),
    ("renal_specialised_adult", "Adult specialised renal services (grouped)", IM, "Renal services", 0, "wave_59", "ready_59", REN, 200, "renal", 0.030, 8_000, 1.0, 0.0, 0),
    ("neurosciences_adult", "Adult specialised neurosciences: neurosurgery and neurology (grouped)", IM, "Neurosciences", 0, "wave_59", "ready_59", OTH, 900, "neuro", 0.050, 14_000, 1.2, 0.0, 0),
    ("complex_spinal_surgery", "Complex spinal surgery (adult)", IM, "Spinal services", 0, "wave_59", "ready_59", OTH, 300, "musculoskeletal", 0.030, 17_000, 0.8, 0.0, 0),
    ("orthopaedics_specialised_adult", "Adult specialised orthopaedics (revision and complex joints)", IM, "Specialised orthopaedics", 0, "wave_59", "ready_59", OTH, 250, "musculoskeletal", 0.030, 15_000, 0.7, 0.0, 0),
    ("rheumatology_specialised", "Specialised rheumatology (adult)", IM, "Specialised rheumatology", 0, "wave_59", "ready_59", OTH, 100, "working_age", 0.040, 6_000, 1.0, 0.0, 0),
    ("endocrinology_specialised", "Specialised endocrinology (adult)", IM, "Specialised endocrinology", 0, "wave_59", "ready_59", OTH, 80, "working_age", 0.030, 5_000, 1.0, 0.0, 0),
    ("respiratory_specialised_adult", "Adult specialised respiratory (ILD, home ventilation; grouped)", IM, "Specialised respiratory", 0, "wave_59", "ready_59", OTH, 350, "renal", 0.050, 9_000, 1.0, 0.0, 0),
    ("dermatology_specialised", "Specialised dermatology (adult)", IM, "Specialised dermatology", 0, "wave_59", "ready_59", OTH, 60, "working_age", 0.050, 4_000, 1.0, 0.0, 0),
    ("pain_management_specialised", "Specialised pain management (adult)", IM, "Specialised pain", 0, "wave_59", "ready_59", OTH, 40, "working_age", 0.020, 3_500, 0.8, 0.0, 0),
    ("hepatobiliary_pancreas", "Hepatobiliary and pancreatic surgery", IM, "Hepatobiliary and pancreas", 0, "wave_59", "ready_59", OTH, 180, "cancer", 0.030, 18_000, 0.8, 0.0, 0),
    ("colorectal_complex", "Complex colorectal surgery (adult)", IM, "Colorectal", 0, "wave_59", "ready_59", OTH, 80, "cancer", 0.030, 14_000, 0.8, 0.0, 0),
    ("bariatric_surgery", "Severe and complex obesity surgery (adult)", IM, "Severe and complex obesity", 0, "wave_59", "ready_59", OTH, 100, "working_age", 0.020, 9_000, 0.4, 0.0, 0),
    ("urology_specialised", "Specialised urology (adult; grouped)", IM, "Specialised urology", 0, "wave_59", "ready_59", OTH, 80, "cancer", 0.030, 9_000, 0.8, 0.0, 0),
    ("immunology_specialised", "Specialised immunology and allergy (immunoglobulin in hcdd_immunoglobulin)", IM, "Immunology and allergy", 0, "wave_59", "ready_59", OTH, 120, "flat", 0.040, 6_000, 1.2, 0.0, 0),
    ("rehabilitation_specialised", "Specialist rehabilitation, levels 1 and 2", IM, "Specialised rehabilitation", 0, "wave_59", "ready_59", OTH, 200, "neuro", 0.030, 40_000, 0.7, 0.0, 0),
    ("cochlear_implants", "Cochlear implantation (all ages)", IM, "Specialised ear and hearing", 0, "wave_59", "ready_59", OTH, 60, "flat", 0.020, 30_000, 0.3, 0.0, 0),
    ("ophthalmology_specialised_adult", "Adult specialised ophthalmology", IM, "Specialised ophthalmology", 0, "wave_59", "ready_59", OTH, 70, "cardiovascular", 0.030, 3_000, 1.0, 0.0, 0),
    ("adult_critical_care", "Adult critical care in specialised services (grouped)", IM, "Adult critical care", 0, "wave_59", "ready_59", ACC, 450, "adult_critical_care", 0.030, 15_000, 1.3, 0.0, 0),
    ("chemotherapy_adult", "Chemotherapy, adult (delivery; drugs in hcdd_chemotherapy)", CA, "Chemotherapy", 0, "wave_59", "ready_59", ONC, 800, "cancer", 0.050, 5_000, 1.0, 0.0, 0),
    ("radiotherapy_adult", "External beam radiotherapy, adult", CA, "Radiotherapy", 0, "wave_59", "ready_59", ONC, 750, "cancer", 0.030, 6_500, 0.6, 0.0, 0),
    ("cancer_surgery_specialised", "Specialised cancer surgery (oesophago-gastric, pancreas, etc.; grouped)", CA, "Complex cancer surgery", 0, "wave_59", "ready_59", ONC, 450, "cancer", 0.030, 17_000, 0.7, 0.0, 0),
    ("urological_cancer_surgery", "Specialised urological cancer surgery", CA, "Specialised urology", 0, "wave_59", "ready_59", ONC, 200, "cancer", 0.030, 11_000, 0.6, 0.0, 0),
    ("head_neck_cancer", "Head and neck cancer, specialised", CA, "Head and neck", 0, "wave_59", "ready_59", ONC, 120, "cancer", 0.030, 13_000, 0.7, 0.0, 0),
    ("teenage_young_adult_cancer", "Teenage and young adult cancer", CA, "Children and young adult cancer", 0, "wave_59", "ready_59", ONC, 60, "young_people", 0.030, 25_000, 1.2, 0.0, 0),
    ("paediatric_oncology", "Children's cancer services", CA, "Children and young adult cancer", 0, "wave_59", "ready_59", ONC, 200, "paediatric", 0.040, 40_000, 1.2, 0.05, 350_000),
    ("haematology_malignant_specialised", "Specialised haemato-oncology (adult; drugs in hcdd_chemotherapy)", CA, "Blood and marrow transplantation", 0, "wave_59", "ready_59", ONC, 150, "cancer", 0.040, 12_000, 1.3, 0.0, 0),
    ("major_trauma", "Major trauma services", TR, "Trauma", 0, "wave_59", "ready_59", OTH, 550, "trauma", 0.030, 15_000, 1.2, 0.0, 0),
    ("burns_specialised", "Specialised burns care", TR, "Burns", 0, "wave_59", "ready_59", OTH, 60, "trauma", 0.020, 20_000, 1.5, 0.0, 0),
    ("spinal_cord_injury", "Spinal cord injury services", TR, "Spinal cord injury", 0, "wave_59", "ready_59", OTH, 90, "trauma", 0.020, 60_000, 0.8, 0.0, 0),
    ("neonatal_critical_care", "Neonatal critical care", WC, "Neonatal critical care", 0, "wave_59", "ready_59", NCC, 500, "neonatal", 0.030, 22_000, 1.3, 0.0, 0),
    ("paediatric_critical_care", "Paediatric critical care", WC, "Paediatric intensive care", 0, "wave_59", "ready_59", OTH, 350, "paediatric", 0.030, 25_000, 1.3, 0.0, 0),
    ("paediatric_surgery_specialised", "Specialised paediatric surgery", WC, "Paediatric surgery", 0, "wave_59", "ready_59", OTH, 300, "paediatric", 0.030, 9_000, 1.0, 0.0, 0),
    ("paediatric_cardiac", "Paediatric cardiac services", WC, "Congenital heart services", 0, "wave_59", "ready_59", CAR, 200, "paediatric", 0.030, 25_000, 1.2, 0.0, 0),
    ("paediatric_medicine_specialised", "Specialised paediatric medicine (grouped)", WC, "Paediatric medicine", 0, "wave_59", "ready_59", OTH, 450, "paediatric", 0.040, 6_000, 1.2, 0.0, 0),
    ("fetal_medicine", "Fetal medicine", WC, "Fetal medicine", 0, "wave_59", "ready_59", OTH, 60, "perinatal", 0.020, 3_000, 1.0, 0.0, 0),
    ("cleft_lip_palate", "Cleft lip and palate services", WC, "Cleft lip and palate", 0, "wave_59", "ready_59", OTH, 40, "paediatric", 0.010, 6_000, 0.8, 0.0, 0),
    ("hiv_adult", "Adult HIV services (care; antiretrovirals in hcdd_hiv_antiretrovirals)", BI, "HIV", 0, "wave_59", "ready_59", HBI, 300, "working_age", 0.030, 3_000, 0.6, 0.0, 0),
    ("haemophilia_bleeding", "Haemophilia and other bleeding disorders (care; clotting factors in hcdd_blood_disorders)", BI, "Haemophilia", 0, "wave_59", "ready_59", HBI, 100, "flat", 0.030, 8_000, 1.0, 0.0, 0),
    ("haemoglobinopathies", "Haemoglobinopathies (sickle cell and thalassaemia)", BI, "Haemoglobinopathies", 0, "wave_59", "ready_59", HBI, 120, "young_people", 0.040, 12_000, 1.2, 0.0, 0),
    ("cystic_fibrosis", "Cystic fibrosis (care; modulator drugs in hcdd_cystic_fibrosis)", BI, "Cystic fibrosis", 0, "wave_59", "ready_59", OTH, 120, "congenital_rare", 0.030, 12_000, 0.8, 0.0, 0),
    ("infectious_diseases_specialised", "Specialised infectious diseases (incl. complex TB)", BI, "Infectious diseases", 0, "wave_59", "ready_59", HBI, 60, "working_age", 0.020, 8_000, 1.2, 0.0, 0),
    # --- wave_70: the 11 added for every ICB from April 2025 (membership: assumption) -----
    ("paediatric_neurosciences", "Paediatric neurosciences", WC, "Paediatric neurosciences", 0, "wave_70", "added_11", OTH, 300, "paediatric", 0.040, 10_000, 1.2, 0.0, 0),
    ("paediatric_renal", "Specialised kidney care for children", WC, "Paediatric medicine", 0, "wave_70", "added_11", REN, 120, "paediatric", 0.030, 20_000, 1.2, 0.0, 0),
    ("paediatric_gastro_hepatology", "Paediatric gastroenterology, hepatology and nutrition", WC, "Paediatric medicine", 0, "wave_70", "added_11", OTH, 150, "paediatric", 0.040, 9_000, 1.2, 0.0, 0),
    ("paediatric_respiratory", "Specialised paediatric respiratory", WC, "Paediatric medicine", 0, "wave_70", "added_11", OTH, 110, "paediatric", 0.030, 8_000, 1.0, 0.0, 0),
    ("paediatric_endocrinology", "Paediatric endocrinology and diabetes", WC, "Paediatric medicine", 0, "wave_70", "added_11", OTH, 60, "paediatric", 0.030, 5_000, 1.0, 0.0, 0),
    ("paediatric_rheumatology", "Paediatric rheumatology", WC, "Paediatric medicine", 0, "wave_70", "added_11", OTH, 50, "paediatric", 0.050, 6_000, 1.0, 0.0, 0),
    ("paediatric_ophthalmology", "Specialised paediatric ophthalmology", WC, "Specialised ophthalmology", 0, "wave_70", "added_11", OTH, 40, "paediatric", 0.020, 3_000, 1.0, 0.0, 0),
    ("inherited_cardiac_conditions", "Inherited cardiac conditions", IM, "Cardiac services", 0, "wave_70", "added_11", CAR, 80, "working_age", 0.040, 4_000, 1.0, 0.0, 0),
    ("home_parenteral_nutrition", "Severe intestinal failure (home parenteral nutrition), adult", IM, "Specialised colorectal", 0, "wave_70", "added_11", OTH, 120, "working_age", 0.030, 45_000, 0.5, 0.0, 0),
    ("neuromuscular_specialised", "Specialised neuromuscular services (adult)", IM, "Neurosciences", 0, "wave_70", "added_11", OTH, 100, "neuro", 0.040, 8_000, 1.2, 0.0, 0),
    ("sarcoma_specialised", "Specialised sarcoma services", CA, "Sarcoma", 0, "wave_70", "added_11", ONC, 70, "cancer", 0.030, 18_000, 1.0, 0.0, 0),
    # --- retained: specialised mental health (outside the Feb 2023 split; assumption) -----
    ("adult_secure_mental_health", "Adult secure mental health (medium and low secure)", MH, "Adult secure mental health", 0, "retained", "mh_collab", MEN, 1_250, "secure_mental_health", 0.040, 190_000, 0.5, 0.0, 0),
    ("camhs_tier4", "Children and young people's inpatient mental health (Tier 4)", MH, "CYP mental health", 0, "retained", "mh_collab", MEN, 450, "young_people", 0.040, 140_000, 0.7, 0.0, 0),
    ("adult_eating_disorders", "Adult eating disorders (inpatient)", MH, "Adult eating disorders", 0, "retained", "mh_collab", MEN, 120, "eating_disorders", 0.040, 70_000, 0.7, 0.0, 0),
    ("perinatal_mother_baby_units", "Perinatal mental health (mother and baby units)", MH, "Perinatal mental health", 0, "retained", "mh_other", MEN, 60, "perinatal", 0.030, 55_000, 0.6, 0.0, 0),
    ("learning_disability_autism_inpatient", "Specialised learning disability and autism inpatient services", MH, "Learning disability", 0, "retained", "mh_other", MEN, 250, "secure_mental_health", 0.010, 200_000, 0.5, 0.0, 0),
    ("gender_identity_services", "Gender identity services (adult and young people)", MH, "Gender identity", 0, "retained", "mh_other", MEN, 70, "young_people", 0.050, 6_000, 1.0, 0.0, 0),
    ("high_secure_mental_health", "High secure mental health (national)", MH, "Adult secure mental health", 1, "retained", "mh_other", MEN, 400, "secure_mental_health", 0.020, 300_000, 0.3, 0.0, 0),
    ("specialised_mh_other", "Other specialised mental health (personality disorder, deaf, OCD/BDD; grouped HSS)", MH, "Adult specialised mental health", 1, "retained", "mh_other", MEN, 60, "working_age", 0.030, 90_000, 0.8, 0.0, 0),
    ("secure_forensic_camhs", "Secure and forensic children's mental health", MH, "CYP mental health", 1, "retained", "mh_other", MEN, 60, "young_people", 0.020, 250_000, 0.4, 0.0, 0),
    # --- retained: national funds and programmes ------------------------------------------
    ("cancer_drugs_fund", "Cancer Drugs Fund", CA, "Chemotherapy", 0, "retained", "funds", ONC, 0, "cancer", 0.080, 30_000, 1.0, 0.0, 0),
    ("innovative_medicines_fund", "Innovative Medicines Fund (non-cancer medicines)", BI, "Specialised drugs (national)", 0, "retained", "funds", OTH, 0, "flat", 0.080, 30_000, 1.0, 0.0, 0),
    ("hepatitis_c_programme", "Hepatitis C elimination programme (antivirals)", BI, "Hepatitis C", 0, "retained", "programmes", HBI, 300, "working_age", -0.020, 12_000, 0.4, 0.0, 0),
    # --- retained: of the 29 'suitable but not ready', the 18 not delegated in 2025 (grouped) --
    ("bone_marrow_transplant_adult", "Haematopoietic stem cell transplantation, adult", CA, "Blood and marrow transplantation", 0, "retained", "not_ready", ONC, 300, "cancer", 0.040, 80_000, 0.8, 0.1, 300_000),
    ("stereotactic_radiosurgery", "Stereotactic radiosurgery and radiotherapy", CA, "Radiotherapy", 0, "retained", "not_ready", ONC, 60, "cancer", 0.040, 8_000, 0.4, 0.0, 0),
    ("deep_brain_stimulation", "Deep brain stimulation and functional neurosurgery", IM, "Neurosciences", 0, "retained", "not_ready", OTH, 40, "neuro", 0.030, 30_000, 0.5, 0.0, 0),
    ("hyperbaric_oxygen", "Hyperbaric oxygen therapy", IM, "Highly specialised (various)", 0, "retained", "not_ready", OTH, 10, "working_age", 0.010, 6_000, 0.6, 0.0, 0),
    # --- retained: the 89 kept national, incl. the 78 highly specialised (excl. drugs) ----
    ("proton_beam_therapy", "Proton beam therapy", CA, "Radiotherapy", 1, "retained", "national_89", ONC, 100, "young_people", 0.060, 60_000, 0.4, 0.0, 0),
    ("bone_marrow_transplant_children", "Haematopoietic stem cell transplantation, children", CA, "Blood and marrow transplantation", 1, "retained", "national_89", ONC, 60, "paediatric", 0.040, 120_000, 0.8, 0.1, 400_000),
    ("ocular_oncology", "Ocular oncology and retinoblastoma (grouped HSS)", CA, "Specialised ophthalmology", 1, "retained", "national_89", ONC, 25, "cancer", 0.030, 10_000, 1.0, 0.0, 0),
    ("primary_bone_tumours", "Primary malignant bone tumours", CA, "Sarcoma", 1, "retained", "national_89", ONC, 30, "young_people", 0.030, 40_000, 1.0, 0.0, 0),
    ("rare_cancers_hss", "Other highly specialised cancer services (choriocarcinoma, pseudomyxoma, etc.; grouped)", CA, "Complex cancer surgery", 1, "retained", "national_89", ONC, 40, "cancer", 0.030, 30_000, 1.0, 0.0, 0),
    ("heart_lung_transplant", "Heart and lung transplantation (adult and children)", IM, "Cardiothoracic transplantation", 1, "retained", "national_89", CAR, 120, "cardiovascular", 0.030, 90_000, 1.0, 0.2, 400_000),
    ("ventricular_assist_devices", "Ventricular assist devices (bridge to transplant)", IM, "Cardiothoracic transplantation", 1, "retained", "national_89", CAR, 50, "cardiovascular", 0.040, 120_000, 0.6, 0.0, 0),
    ("liver_transplant", "Liver transplantation (adult and children)", IM, "Hepatobiliary and pancreas", 1, "retained", "national_89", OTH, 200, "working_age", 0.030, 70_000, 1.0, 0.2, 300_000),
    ("pancreas_islet_transplant", "Pancreas and islet transplantation", IM, "Renal services", 1, "retained", "national_89", REN, 25, "working_age", 0.020, 60_000, 0.6, 0.0, 0),
    ("intestinal_transplant", "Small bowel and multivisceral transplantation", IM, "Specialised colorectal", 1, "retained", "national_89", OTH, 15, "flat", 0.020, 150_000, 0.8, 0.3, 600_000),
    ("paediatric_transplants", "Paediatric kidney, heart and liver transplant follow-up (grouped HSS)", WC, "Paediatric medicine", 1, "retained", "national_89", OTH, 60, "paediatric", 0.020, 40_000, 1.0, 0.0, 0),
    ("ecmo", "Extra-corporeal membrane oxygenation (adult and paediatric)", IM, "Adult critical care", 1, "retained", "national_89", ACC, 70, "flat", 0.030, 80_000, 0.8, 0.0, 0),
    ("pulmonary_hypertension", "Pulmonary hypertension (adult and paediatric)", IM, "Specialised respiratory", 1, "retained", "national_89", OTH, 250, "cardiovascular", 0.050, 25_000, 1.2, 0.0, 0),
    ("pulmonary_endarterectomy", "Pulmonary thromboendarterectomy", IM, "Cardiothoracic surgery", 1, "retained", "national_89", OTH, 15, "cardiovascular", 0.020, 40_000, 0.5, 0.0, 0),
    ("complex_tracheal_disease", "Complex tracheal disease (grouped HSS)", WC, "Paediatric surgery", 1, "retained", "national_89", OTH, 10, "paediatric", 0.020, 50_000, 1.0, 0.0, 0),
    ("metabolic_disorders_other", "Other inherited metabolic disorders (grouped HSS)", WC, "Metabolic disorders", 1, "retained", "national_89", OTH, 60, "congenital_rare", 0.030, 20_000, 1.2, 0.0, 0),
    ("amyloidosis", "Amyloidosis services", BI, "Specialised blood disorders", 1, "retained", "national_89", HBI, 40, "cardiovascular", 0.050, 30_000, 1.0, 0.0, 0),
    ("severe_combined_immunodeficiency", "Severe combined immunodeficiency and related disorders", BI, "Immunology and allergy", 1, "retained", "national_89", HBI, 15, "neonatal", 0.030, 150_000, 1.0, 0.0, 0),
    ("rare_neurology_hss", "Rare neurological conditions (NMOSD, ataxias, mitochondrial; grouped HSS)", IM, "Neurosciences", 1, "retained", "national_89", OTH, 50, "neuro", 0.040, 20_000, 1.2, 0.0, 0),
    ("rare_skin_genetic_hss", "Rare skin and genetic syndromes (epidermolysis bullosa, Alstrom, Wolfram; grouped HSS)", WC, "Specialised dermatology", 1, "retained", "national_89", OTH, 35, "congenital_rare", 0.030, 15_000, 1.2, 0.0, 0),
    ("paediatric_intestinal_failure", "Paediatric intestinal failure (grouped HSS)", WC, "Paediatric medicine", 1, "retained", "national_89", OTH, 20, "paediatric", 0.030, 60_000, 1.0, 0.0, 0),
    ("rare_hss_other", "Other highly specialised services (grouped; about 40 small national services)", IM, "Highly specialised (various)", 1, "retained", "national_89", OTH, 600, "flat", 0.040, 50_000, 1.5, 0.1, 500_000),
    # --- retained: high-cost drugs and devices (HCDD), by service area --------------------
    # Delegable service areas' HCDD stay with NHS England: the published delegated figures
    # exclude them. Drug-dominated highly specialised services are classed here too.
    ("hcdd_chemotherapy", "Chemotherapy drugs (systemic anti-cancer therapy incl. haemato-oncology; high-cost drugs)", CA, "Chemotherapy", 0, "retained", "hcdd", ONC, 1_500, "cancer", 0.080, 10_000, 1.5, 0.0, 0),
    ("hcdd_hiv_antiretrovirals", "HIV antiretroviral drugs (high-cost drugs)", BI, "HIV", 0, "retained", "hcdd", HBI, 600, "working_age", 0.030, 6_000, 0.4, 0.0, 0),
    ("hcdd_blood_disorders", "Clotting factors and other high-cost drugs for bleeding and blood disorders", BI, "Haemophilia", 0, "retained", "hcdd", HBI, 300, "flat", 0.050, 25_000, 1.5, 0.25, 400_000),
    ("hcdd_cystic_fibrosis", "Cystic fibrosis modulator drugs (high-cost drugs)", BI, "Cystic fibrosis", 0, "retained", "hcdd", OTH, 350, "congenital_rare", 0.060, 35_000, 0.5, 0.0, 0),
    ("hcdd_neurology", "Neurology high-cost drugs (multiple sclerosis disease-modifying therapies and others)", IM, "Neurosciences", 0, "retained", "hcdd", OTH, 600, "neuro", 0.060, 12_000, 0.8, 0.0, 0),
    ("hcdd_immunoglobulin", "Immunoglobulin and other immunology high-cost drugs", IM, "Immunology and allergy", 0, "retained", "hcdd", OTH, 200, "flat", 0.060, 20_000, 1.0, 0.0, 0),
    ("hcdd_cardiac_devices", "Cardiac high-cost devices (valves, defibrillators, ablation and closure devices)", IM, "Cardiac services", 0, "retained", "hcdd", CAR, 300, "cardiovascular", 0.040, 12_000, 0.8, 0.0, 0),
    ("hcdd_other_delegable", "Other high-cost drugs and devices of delegable services (rheumatology, respiratory, ophthalmology, children's, implants; grouped)", IM, "Specialised drugs and devices (various)", 0, "retained", "hcdd", OTH, 450, "working_age", 0.060, 8_000, 1.5, 0.0, 0),
    ("car_t_therapy", "CAR-T cell therapy", CA, "Blood and marrow transplantation", 1, "retained", "hcdd", ONC, 200, "cancer", 0.120, CAR_T_PRICE_GBP, 0.2, 0.0, 0),
    ("gene_therapies_hss", "Gene therapies for rare disease (SMA, retinal dystrophy, etc.; grouped)", WC, "Metabolic disorders", 1, "retained", "hcdd", OTH, 150, "paediatric", 0.150, 50_000, 1.0, 0.7, 1_500_000),
    ("pnh_ahus_complement", "PNH and aHUS complement-inhibitor services", BI, "Specialised blood disorders", 1, "retained", "hcdd", HBI, 180, "flat", 0.050, 250_000, 0.4, 0.0, 0),
    ("lysosomal_storage_disorders", "Lysosomal storage disorders (incl. enzyme replacement therapy)", WC, "Metabolic disorders", 1, "retained", "hcdd", OTH, 250, "congenital_rare", 0.040, 150_000, 0.8, 0.0, 0),
    ("national_high_cost_drugs", "Other high-cost drugs of highly specialised and retained services (grouped)", BI, "Specialised drugs (national)", 0, "retained", "hcdd", OTH, 250, "flat", 0.070, 15_000, 1.5, 0.05, 300_000),
]
# fmt: on
"""The catalogue rows. Relative spend figures are assumptions; anchors give the totals."""


def _bell(age: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((age - centre) / width) ** 2)


def _rise(age: np.ndarray, midpoint: float, slope: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(age - midpoint) / slope))


def profile_curves() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(female, male) relative utilisation by single year of age, per profile family.

    Shapes are stylised assumptions (documented in docs/service_catalogue.md): only the
    ratios between ages and sexes matter, as demand calibrates levels to baseline spend.
    `general_acute_reference` is not used by any service: it is the steeper core
    general-and-acute curve that the specialised cost curve is compared against.
    """
    a = AGES.astype(float)
    adult = _rise(a, 17, 1.0)
    old_decline = 1.0 - 0.5 * _rise(a, 86, 3.0)
    curves = {
        "neonatal": (np.where(a == 0, 1.0, 0.01 * np.exp(-a / 3)),) * 2,
        "paediatric": (0.05 + np.exp(-a / 4) + 0.3 * (1 - _rise(a, 16, 1.0)) - 0.05 * adult,) * 2,
        "young_people": (
            0.05 + 1.3 * _bell(a, 18, 6) + 0.1 * adult,
            0.05 + 1.0 * _bell(a, 18, 6) + 0.1 * adult,
        ),
        "perinatal": (1.0 * _bell(a, 31, 6), 0.0 * a),
        "eating_disorders": (0.02 + _bell(a, 22, 7), 0.002 + 0.1 * _bell(a, 22, 7)),
        "secure_mental_health": (
            0.18 * _bell(a, 36, 12) * adult,
            _bell(a, 36, 12) * adult,
        ),
        "working_age": (
            (0.1 + 0.9 * _bell(a, 45, 16)) * adult + 0.05,
            (0.1 + 1.0 * _bell(a, 45, 16)) * adult + 0.05,
        ),
        "cancer": (
            (0.02 + _rise(a, 55, 9) + 0.3 * _bell(a, 50, 10)) * old_decline,
            (0.02 + 1.15 * _rise(a, 60, 8)) * old_decline,
        ),
        "cardiovascular": (
            (0.02 + 0.6 * _rise(a, 65, 8)) * old_decline,
            (0.02 + 1.0 * _rise(a, 60, 8)) * old_decline,
        ),
        "renal": (
            (0.02 + 0.7 * _rise(a, 55, 10)) * old_decline,
            (0.02 + 1.0 * _rise(a, 55, 10)) * old_decline,
        ),
        "adult_critical_care": (
            (0.03 + 0.6 * _rise(a, 50, 12)) * adult * (1.0 - 0.6 * _rise(a, 84, 3.0)),
            (0.03 + 1.0 * _rise(a, 50, 12)) * adult * (1.0 - 0.6 * _rise(a, 84, 3.0)),
        ),
        "neuro": (0.15 + 0.85 * _rise(a, 45, 12), 0.15 + 0.9 * _rise(a, 45, 12)),
        "musculoskeletal": (
            (0.02 + _rise(a, 60, 9)) * old_decline,
            (0.02 + 0.85 * _rise(a, 60, 9)) * old_decline,
        ),
        "congenital_rare": (0.2 + np.exp(-a / 15), 0.2 + np.exp(-a / 15)),
        "trauma": (
            0.1 + 0.3 * _bell(a, 25, 10) + 0.9 * _rise(a, 80, 5),
            0.1 + 1.0 * _bell(a, 25, 10) + 0.8 * _rise(a, 80, 5),
        ),
        "flat": (np.ones_like(a), np.ones_like(a)),
        "general_acute_reference": (
            0.25 + np.exp((a - 30) / 16) * (1 - 0.3 * _rise(a, 88, 2)),
            0.25 + 1.1 * np.exp((a - 30) / 16) * (1 - 0.3 * _rise(a, 88, 2)),
        ),
    }
    return {k: (np.asarray(f, float), np.asarray(m, float)) for k, (f, m) in curves.items()}


def build_profiles() -> pd.DataFrame:
    """Long table `profile, sex, age, relative_rate`, each profile scaled to a peak of 1."""
    rows = []
    for name, (female, male) in profile_curves().items():
        peak = max(female.max(), male.max())
        for sex, curve in (("f", female), ("m", male)):
            rows.append(
                pd.DataFrame(
                    {
                        "profile": name,
                        "sex": sex,
                        "age": AGES,
                        "relative_rate": np.round(np.clip(curve, 0.0, None) / peak, 6),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def _largest_remainder(values: np.ndarray, total: int) -> np.ndarray:
    scaled = values * total / values.sum()
    floors = np.floor(scaled).astype(np.int64)
    short = int(total - floors.sum())
    order = np.argsort(-(scaled - floors), kind="stable")
    floors[order[:short]] += 1
    return floors


COLUMNS = [
    "service_id",
    "name",
    "programme_of_care",
    "crg",
    "highly_specialised",
    "delegation_group",
    "anchor",
    "need_group",
    "spend_m",
    "age_profile",
    "non_demographic_growth",
    "mean_cost_gbp",
    "cost_cv",
    "high_cost_share",
    "high_cost_mean_gbp",
]

DIALYSIS_GBP = DIALYSIS_PATIENTS * DIALYSIS_MEAN_GBP
FIXED_GBP: dict[str, tuple[int, str, str]] = {
    "renal_dialysis": (
        DIALYSIS_GBP,
        "derived",
        f"Derived: {DIALYSIS_PATIENTS:,} patients x £{DIALYSIS_MEAN_GBP:,} = £{DIALYSIS_GBP / 1e6:,.1f}m. "
        f"Patients: half (assumption) of the {RRT_PATIENTS:,} people on renal replacement therapy, "
        f"dialysis plus transplant (NHS England renal CRG page); with {RRT_STARTING_A_YEAR:,} starting "
        f"a year that is about {DIALYSIS_PATIENTS / RRT_STARTING_A_YEAR:.1f} years on dialysis each. "
        f"Mean cost: £{DIALYSIS_IN_CENTRE_GBP:,} in-centre and £{DIALYSIS_HOME_GBP:,} home per patient "
        f"per year (parliamentary answer, 2021; used unchanged for 2023/24), "
        f"{DIALYSIS_HOME_SHARE:.0%} at home (assumption). Counted in the £13bn for the 59 (published)",
    ),
    "cancer_drugs_fund": (
        FUND_GBP,
        "published",
        "Published: Cancer Drugs Fund £340m a year, ring-fenced (2022; £200m in 2013/14, £340m in "
        "2015/16), taken as 2023/24 spend",
    ),
    "innovative_medicines_fund": (
        FUND_GBP,
        "published",
        "Published: Innovative Medicines Fund £340m a year, ring-fenced alongside the Cancer Drugs "
        "Fund (2022), taken as 2023/24 spend",
    ),
}
"""Rows whose spend is itself a published or derived figure (GBP), with basis and note."""

_HCDD_RETAINED = (
    "Retained: the high-cost drugs and devices of a delegable service area stay with NHS "
    "England because the published delegated figures exclude them (delegate them in a "
    "scenario with also_delegate)"
)
_DRUG_HSS = (
    "Highly specialised, but counted with high-cost drugs and devices because drugs dominate "
    "its cost (assumption)"
)
_MH_OUTSIDE = (
    "Specialised mental health is assumed to sit outside the Feb 2023 split (assumption): "
    "mental health is not delegated, and the split's undelegated parts (£0.5bn not ready, "
    "£1.3bn kept national) cannot hold the £2bn of provider collaboratives"
)
EXTRA_NOTES: dict[str, str] = {
    "renal_transplant_adult": (
        f"mean_cost_gbp derived: spend / {TRANSPLANT_PATIENTS:,} patients, the {RRT_PATIENTS:,} on "
        f"renal replacement therapy (NHS England renal CRG page) less the {DIALYSIS_PATIENTS:,} on dialysis"
    ),
    "adult_critical_care": (
        "Added so that NHS England's adult critical care need sub-model has a row; its size and "
        "wave_59 membership are assumptions"
    ),
    "car_t_therapy": (
        f"mean_cost_gbp: CAR-T list price £{CAR_T_PRICE_GBP:,} per patient (2018, published). "
        "Counted with high-cost drugs and devices (the cell product is a drug)"
    ),
    "gene_therapies_hss": _DRUG_HSS,
    "pnh_ahus_complement": _DRUG_HSS,
    "lysosomal_storage_disorders": _DRUG_HSS,
    "national_high_cost_drugs": "High-cost drugs of retained services not listed in their own row",
}
for _row in ROWS:
    if _row[0].startswith("hcdd_"):
        EXTRA_NOTES[_row[0]] = _HCDD_RETAINED
    elif _row[6] == "mh_collab":
        EXTRA_NOTES[_row[0]] = (
            "Membership of the provider collaboratives (adult secure, CAMHS Tier 4, adult eating "
            f"disorders) is an assumption. {_MH_OUTSIDE}"
        )
    elif _row[6] == "mh_other":
        EXTRA_NOTES[_row[0]] = _MH_OUTSIDE
    elif _row[6] == "added_11":
        EXTRA_NOTES[_row[0]] = (
            "Membership of the 11 is an assumption (the published list was not available)"
        )
    elif _row[6] == "not_ready":
        EXTRA_NOTES[_row[0]] = "Membership of the 18 is an assumption"

ANCHOR_OF = {row[0]: row[6] for row in ROWS}
"""service_id -> anchor key (tests use it to check the anchor totals in the packaged data)."""


def anchor_totals_gbp() -> dict[str, int]:
    """Each anchor's total in GBP; the residual anchor takes the rest of TOTAL_GBP."""
    totals: dict[str, int] = {}
    for key, anchor in ANCHORS.items():
        if isinstance(anchor.total_m, int):
            totals[key] = anchor.total_m * 1_000_000
        elif anchor.total_m is None:
            totals[key] = sum(
                FIXED_GBP[r[0]][0] if r[0] in FIXED_GBP else r[8] * 1_000_000
                for r in ROWS
                if r[6] == key
            )
    residual = [k for k, a in ANCHORS.items() if a.total_m == "residual"]
    assert len(residual) == 1
    totals[residual[0]] = TOTAL_GBP - sum(totals.values())
    return {key: totals[key] for key in ANCHORS}


def _money(gbp: float) -> str:
    return f"£{gbp / 1e6:,.0f}m"


def build_services() -> pd.DataFrame:
    """The catalogue with every row's spend anchored to its published or derived total."""
    table = pd.DataFrame(ROWS, columns=COLUMNS)
    assert set(table["anchor"]) == set(ANCHORS), "every anchor needs rows, every row an anchor"
    table["highly_specialised"] = table["highly_specialised"].astype(bool)
    table["baseline_spend_gbp"] = 0
    table["basis"] = "assumption"
    table["basis_note"] = ""
    for key, total in anchor_totals_gbp().items():
        anchor = ANCHORS[key]
        rows = table.index[table["anchor"] == key]
        fixed = [i for i in rows if table.at[i, "service_id"] in FIXED_GBP]
        scaled = [i for i in rows if i not in fixed]
        for i in fixed:
            gbp, basis, note = FIXED_GBP[table.at[i, "service_id"]]
            table.loc[i, ["baseline_spend_gbp", "basis", "basis_note"]] = [gbp, basis, note]
        rest = total - sum(FIXED_GBP[table.at[i, "service_id"]][0] for i in fixed)
        if not scaled:
            assert rest == 0, f"{key}: fixed rows do not add up to the anchor"
            continue
        relative = table.loc[scaled, "spend_m"].to_numpy(float)
        table.loc[scaled, "baseline_spend_gbp"] = _largest_remainder(relative, rest)
        for i, size in zip(scaled, relative, strict=True):
            if anchor.total_m is None:
                note = f"Assumption: {_money(size * 1e6)}, our estimate ({anchor.source})"
            elif len(scaled) == 1 and not fixed:
                table.at[i, "basis"] = anchor.basis
                note = f"{anchor.basis.capitalize()}: {anchor.source}"
            else:
                share = f"{size:,.0f} of {relative.sum():,.0f}"
                named = ", ".join(table.loc[fixed, "service_id"])
                less = f" less the {named} row" if fixed else ""
                note = (
                    f"Assumption: our relative size {share} of {_money(rest)}, the anchor "
                    f"'{anchor.label}' ({_money(total)}, {anchor.basis}: {anchor.source}){less}"
                )
            table.at[i, "basis_note"] = note
    for i, service in table["service_id"].items():
        if service in EXTRA_NOTES:
            table.at[i, "basis_note"] += f". {EXTRA_NOTES[service]}"
    transplant = table["service_id"] == "renal_transplant_adult"
    table.loc[transplant, "mean_cost_gbp"] = round(
        float(table.loc[transplant, "baseline_spend_gbp"].iloc[0]) / TRANSPLANT_PATIENTS
    )
    table["high_cost_mean_gbp"] = table["high_cost_mean_gbp"].astype(float)
    return table[SERVICE_COLUMNS]


# --- the tables docs/service_catalogue.md quotes ---------------------------------------------

GROUPS = ["wave_59", "wave_70", "retained"]


def _markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _by_group(services: pd.DataFrame, key: str, order: list[str]) -> pd.DataFrame:
    spend = services.pivot_table(
        index=key, columns="delegation_group", values="baseline_spend_gbp", aggfunc="sum"
    ).reindex(index=order, columns=GROUPS, fill_value=0.0)
    spend = spend.fillna(0.0)
    counts = services.groupby(key).size().reindex(order, fill_value=0)
    out = pd.DataFrame({key: [f"`{k}`" for k in order], "rows": counts.to_numpy()})
    for group in GROUPS:
        out[f"`{group}` £m"] = [f"{v / 1e6:,.0f}" for v in spend[group]]
    total = spend.sum(axis=1)
    out["all £m"] = [f"{v / 1e6:,.0f}" for v in total]
    out["share"] = [f"{v / TOTAL_GBP:.1%}" for v in total]
    sums = spend.sum(axis=0)
    out.loc[len(out)] = [
        "**all**",
        len(services),
        *[f"{sums[g] / 1e6:,.0f}" for g in GROUPS],
        f"**{sums.sum() / 1e6:,.0f}**",
        f"{sums.sum() / TOTAL_GBP:.0%}",
    ]
    return out


def basis_table(services: pd.DataFrame) -> str:
    """GBP of the 2023/24 catalogue by each row's own basis, and by delegation group."""
    return _markdown(_by_group(services, "basis", ["published", "derived", "assumption"]))


def need_table(services: pd.DataFrame) -> str:
    """GBP by NHS England need sub-model (need_group) and delegation group."""
    order = sorted(
        set(services["need_group"]),
        key=lambda g: -services.loc[services["need_group"] == g, "baseline_spend_gbp"].sum(),
    )
    return _markdown(_by_group(services, "need_group", order))


def anchor_table(services: pd.DataFrame) -> str:
    """GBP by anchor: the published or derived total each row's spend is scaled to."""
    anchor = services["service_id"].map(ANCHOR_OF)
    rows = []
    for key, spec in ANCHORS.items():
        part = services[anchor == key]
        groups = ", ".join(f"`{g}`" for g in GROUPS if g in set(part["delegation_group"]))
        rows.append(
            [
                spec.label,
                groups,
                len(part),
                f"{part['baseline_spend_gbp'].sum() / 1e6:,.0f}",
                spec.basis if spec.total_m is not None else "assumption (row sizes)",
            ]
        )
    rows.append(
        [
            "**all**",
            "",
            len(services),
            f"**{services['baseline_spend_gbp'].sum() / 1e6:,.0f}**",
            "published (£25bn)",
        ]
    )
    return _markdown(
        pd.DataFrame(
            rows, columns=["anchor", "delegation group", "rows", "£m 2023/24", "basis of the total"]
        )
    )


def main() -> None:
    services = build_services()
    profiles = build_profiles()
    assert services["service_id"].is_unique
    assert set(services["age_profile"]) <= set(profiles["profile"])
    assert services["baseline_spend_gbp"].sum() == TOTAL_GBP
    DATA.mkdir(parents=True, exist_ok=True)
    services.to_csv(DATA / "services.csv", index=False)
    profiles.to_csv(DATA / "utilisation_profiles.csv", index=False)
    counts = services["delegation_group"].value_counts().to_dict()
    print(f"services.csv: {len(services)} rows {counts}; utilisation_profiles.csv: {len(profiles)}")
    for title, table in (
        ("By basis", basis_table(services)),
        ("By anchor", anchor_table(services)),
        ("By need group", need_table(services)),
    ):
        print(f"\n{title}:\n{table}")


if __name__ == "__main__":
    main()
