"""Build the service catalogue (`sim/data/services.csv`) and utilisation profiles.

Why a script: no machine-readable list of prescribed specialised services or their spend
was found (shared/data/SOURCES.md, "Not found"), so the catalogue is an analyst-readable
table of documented assumptions. Keeping it as Python makes the scaling to the published
totals reproducible: each row's `spend_m` is a relative size (GBP millions, assumption) that
is scaled so the portfolio totals equal the published figures (DOMAIN.md):

- all services, 2023/24: GBP 25.0bn;
- the 70 services delegated to every ICB from April 2025: GBP 14.0bn, of which the first 59
  GBP 12.0bn (GBP 5.3bn delegated in 2024/25 to three regions holding ~44% of the
  population, excluding high-cost drugs, implies about GBP 12bn nationally) and the 11 added
  in 2025 GBP 2.0bn (the remainder);
- retained by NHS England: GBP 11.0bn (the rest).

Rows group services where the real list has many small ones; `name` says "(grouped)".
Run: `.venv/bin/python scripts/build_service_catalogue.py` (rewrites both CSVs).
Documentation: docs/service_catalogue.md.
"""

# ruff: noqa: E501  (the catalogue table reads best one service per line)
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.reference import SERVICE_COLUMNS

DATA = Path(__file__).resolve().parents[1] / "sim" / "data"
AGES = np.arange(91)

GROUP_TOTALS_GBP = {"wave_59": 12_000_000_000, "wave_70": 2_000_000_000, "retained": 11_000_000_000}
"""Published portfolio totals, 2023/24 (DOMAIN.md); wave_59/wave_70 split is an assumption."""

IM, CA, MH, TR, WC, BI = (
    "Internal medicine",
    "Cancer",
    "Mental health",
    "Trauma",
    "Women and children",
    "Blood and infection",
)

# id, name, programme of care, CRG, highly specialised, group, relative spend (GBP m),
# age profile, non-demographic growth, mean cost of an ordinary patient-year, its cv,
# share of the service's spend from rare very-high-cost cases, their mean cost.
# fmt: off
ROWS: list[tuple] = [
    # --- wave_59: delegated from 2024 (3 regions) / 2025 (all) --------------------------
    ("cardiac_surgery_adult", "Adult cardiac surgery", IM, "Cardiac services", 0, "wave_59", 650, "cardiovascular", 0.030, 19_000, 0.8, 0.0, 0),
    ("cardiology_specialised_adult", "Adult specialised cardiology (PCI, electrophysiology, devices)", IM, "Cardiac services", 0, "wave_59", 950, "cardiovascular", 0.040, 9_000, 1.0, 0.0, 0),
    ("congenital_heart_adult", "Adult congenital heart disease", IM, "Congenital heart services", 0, "wave_59", 90, "congenital_rare", 0.040, 12_000, 1.2, 0.0, 0),
    ("vascular_specialised", "Specialised vascular services (adult)", IM, "Vascular disease", 0, "wave_59", 450, "cardiovascular", 0.030, 14_000, 0.9, 0.0, 0),
    ("thoracic_surgery_adult", "Adult thoracic surgery", IM, "Thoracic surgery", 0, "wave_59", 250, "cancer", 0.030, 16_000, 0.7, 0.0, 0),
    ("renal_dialysis", "Renal dialysis (haemodialysis and peritoneal)", IM, "Renal services", 0, "wave_59", 900, "renal", 0.030, 32_000, 0.4, 0.0, 0),
    ("renal_transplant_adult", "Adult kidney transplantation", IM, "Renal services", 0, "wave_59", 250, "renal", 0.030, 25_000, 1.0, 0.0, 0),
    ("renal_specialised_adult", "Adult specialised renal services (grouped)", IM, "Renal services", 0, "wave_59", 200, "renal", 0.030, 8_000, 1.0, 0.0, 0),
    ("neurosciences_adult", "Adult specialised neurosciences: neurosurgery and neurology (grouped)", IM, "Neurosciences", 0, "wave_59", 900, "neuro", 0.040, 14_000, 1.2, 0.0, 0),
    ("complex_spinal_surgery", "Complex spinal surgery (adult)", IM, "Spinal services", 0, "wave_59", 300, "musculoskeletal", 0.030, 17_000, 0.8, 0.0, 0),
    ("orthopaedics_specialised_adult", "Adult specialised orthopaedics (revision and complex joints)", IM, "Specialised orthopaedics", 0, "wave_59", 250, "musculoskeletal", 0.030, 15_000, 0.7, 0.0, 0),
    ("rheumatology_specialised", "Specialised rheumatology (adult)", IM, "Specialised rheumatology", 0, "wave_59", 120, "working_age", 0.050, 7_000, 1.0, 0.0, 0),
    ("endocrinology_specialised", "Specialised endocrinology (adult)", IM, "Specialised endocrinology", 0, "wave_59", 80, "working_age", 0.030, 5_000, 1.0, 0.0, 0),
    ("respiratory_specialised_adult", "Adult specialised respiratory (ILD, home ventilation; grouped)", IM, "Specialised respiratory", 0, "wave_59", 350, "renal", 0.050, 9_000, 1.0, 0.0, 0),
    ("dermatology_specialised", "Specialised dermatology (adult)", IM, "Specialised dermatology", 0, "wave_59", 60, "working_age", 0.050, 4_000, 1.0, 0.0, 0),
    ("pain_management_specialised", "Specialised pain management (adult)", IM, "Specialised pain", 0, "wave_59", 40, "working_age", 0.020, 3_500, 0.8, 0.0, 0),
    ("hepatobiliary_pancreas", "Hepatobiliary and pancreatic surgery", IM, "Hepatobiliary and pancreas", 0, "wave_59", 180, "cancer", 0.030, 18_000, 0.8, 0.0, 0),
    ("colorectal_complex", "Complex colorectal surgery (adult)", IM, "Colorectal", 0, "wave_59", 80, "cancer", 0.030, 14_000, 0.8, 0.0, 0),
    ("bariatric_surgery", "Severe and complex obesity surgery (adult)", IM, "Severe and complex obesity", 0, "wave_59", 100, "working_age", 0.020, 9_000, 0.4, 0.0, 0),
    ("urology_specialised", "Specialised urology (adult; grouped)", IM, "Specialised urology", 0, "wave_59", 80, "cancer", 0.030, 9_000, 0.8, 0.0, 0),
    ("immunology_specialised", "Specialised immunology and allergy (incl. immunoglobulin)", IM, "Immunology and allergy", 0, "wave_59", 250, "flat", 0.060, 18_000, 1.2, 0.0, 0),
    ("rehabilitation_specialised", "Specialist rehabilitation, levels 1 and 2", IM, "Specialised rehabilitation", 0, "wave_59", 200, "neuro", 0.030, 40_000, 0.7, 0.0, 0),
    ("cochlear_implants", "Cochlear implantation (all ages)", IM, "Specialised ear and hearing", 0, "wave_59", 60, "flat", 0.020, 30_000, 0.3, 0.0, 0),
    ("ophthalmology_specialised_adult", "Adult specialised ophthalmology", IM, "Specialised ophthalmology", 0, "wave_59", 70, "cardiovascular", 0.030, 3_000, 1.0, 0.0, 0),
    ("chemotherapy_adult", "Chemotherapy, adult (incl. drugs)", CA, "Chemotherapy", 0, "wave_59", 1_900, "cancer", 0.060, 9_000, 1.5, 0.0, 0),
    ("radiotherapy_adult", "External beam radiotherapy, adult", CA, "Radiotherapy", 0, "wave_59", 750, "cancer", 0.030, 6_500, 0.6, 0.0, 0),
    ("cancer_surgery_specialised", "Specialised cancer surgery (oesophago-gastric, pancreas, etc.; grouped)", CA, "Complex cancer surgery", 0, "wave_59", 450, "cancer", 0.030, 17_000, 0.7, 0.0, 0),
    ("urological_cancer_surgery", "Specialised urological cancer surgery", CA, "Specialised urology", 0, "wave_59", 200, "cancer", 0.030, 11_000, 0.6, 0.0, 0),
    ("head_neck_cancer", "Head and neck cancer, specialised", CA, "Head and neck", 0, "wave_59", 120, "cancer", 0.030, 13_000, 0.7, 0.0, 0),
    ("teenage_young_adult_cancer", "Teenage and young adult cancer", CA, "Children and young adult cancer", 0, "wave_59", 60, "young_people", 0.030, 25_000, 1.2, 0.0, 0),
    ("paediatric_oncology", "Children's cancer services", CA, "Children and young adult cancer", 0, "wave_59", 200, "paediatric", 0.040, 40_000, 1.2, 0.05, 350_000),
    ("haematology_malignant_specialised", "Specialised haemato-oncology (adult)", CA, "Blood and marrow transplantation", 0, "wave_59", 250, "cancer", 0.050, 20_000, 1.3, 0.0, 0),
    ("major_trauma", "Major trauma services", TR, "Trauma", 0, "wave_59", 550, "trauma", 0.030, 15_000, 1.2, 0.0, 0),
    ("burns_specialised", "Specialised burns care", TR, "Burns", 0, "wave_59", 60, "trauma", 0.020, 20_000, 1.5, 0.0, 0),
    ("spinal_cord_injury", "Spinal cord injury services", TR, "Spinal cord injury", 0, "wave_59", 90, "trauma", 0.020, 60_000, 0.8, 0.0, 0),
    ("neonatal_critical_care", "Neonatal critical care", WC, "Neonatal critical care", 0, "wave_59", 500, "neonatal", 0.020, 22_000, 1.3, 0.0, 0),
    ("paediatric_critical_care", "Paediatric critical care", WC, "Paediatric intensive care", 0, "wave_59", 350, "paediatric", 0.030, 25_000, 1.3, 0.0, 0),
    ("paediatric_surgery_specialised", "Specialised paediatric surgery", WC, "Paediatric surgery", 0, "wave_59", 300, "paediatric", 0.030, 9_000, 1.0, 0.0, 0),
    ("paediatric_cardiac", "Paediatric cardiac services", WC, "Congenital heart services", 0, "wave_59", 200, "paediatric", 0.030, 25_000, 1.2, 0.0, 0),
    ("paediatric_medicine_specialised", "Specialised paediatric medicine (grouped)", WC, "Paediatric medicine", 0, "wave_59", 450, "paediatric", 0.040, 6_000, 1.2, 0.0, 0),
    ("fetal_medicine", "Fetal medicine", WC, "Fetal medicine", 0, "wave_59", 60, "perinatal", 0.020, 3_000, 1.0, 0.0, 0),
    ("cleft_lip_palate", "Cleft lip and palate services", WC, "Cleft lip and palate", 0, "wave_59", 40, "paediatric", 0.010, 6_000, 0.8, 0.0, 0),
    ("hiv_adult", "Adult HIV services (incl. antiretrovirals)", BI, "HIV", 0, "wave_59", 900, "working_age", 0.030, 7_000, 0.5, 0.0, 0),
    ("haemophilia_bleeding", "Haemophilia and other bleeding disorders", BI, "Haemophilia", 0, "wave_59", 350, "flat", 0.050, 60_000, 1.5, 0.25, 400_000),
    ("haemoglobinopathies", "Haemoglobinopathies (sickle cell and thalassaemia)", BI, "Haemoglobinopathies", 0, "wave_59", 120, "young_people", 0.040, 12_000, 1.2, 0.0, 0),
    ("cystic_fibrosis", "Cystic fibrosis (incl. modulator drugs)", BI, "Cystic fibrosis", 0, "wave_59", 250, "congenital_rare", 0.060, 30_000, 0.8, 0.0, 0),
    ("infectious_diseases_specialised", "Specialised infectious diseases (incl. complex TB)", BI, "Infectious diseases", 0, "wave_59", 60, "working_age", 0.020, 8_000, 1.2, 0.0, 0),
    # --- wave_70: the 11 added for every ICB from April 2025 (membership: assumption) -----
    ("paediatric_neurosciences", "Paediatric neurosciences", WC, "Paediatric neurosciences", 0, "wave_70", 300, "paediatric", 0.040, 10_000, 1.2, 0.0, 0),
    ("paediatric_renal", "Specialised kidney care for children", WC, "Paediatric medicine", 0, "wave_70", 120, "paediatric", 0.030, 20_000, 1.2, 0.0, 0),
    ("paediatric_gastro_hepatology", "Paediatric gastroenterology, hepatology and nutrition", WC, "Paediatric medicine", 0, "wave_70", 150, "paediatric", 0.040, 9_000, 1.2, 0.0, 0),
    ("paediatric_respiratory", "Specialised paediatric respiratory", WC, "Paediatric medicine", 0, "wave_70", 110, "paediatric", 0.030, 8_000, 1.0, 0.0, 0),
    ("paediatric_endocrinology", "Paediatric endocrinology and diabetes", WC, "Paediatric medicine", 0, "wave_70", 60, "paediatric", 0.030, 5_000, 1.0, 0.0, 0),
    ("paediatric_rheumatology", "Paediatric rheumatology", WC, "Paediatric medicine", 0, "wave_70", 50, "paediatric", 0.050, 6_000, 1.0, 0.0, 0),
    ("paediatric_ophthalmology", "Specialised paediatric ophthalmology", WC, "Specialised ophthalmology", 0, "wave_70", 40, "paediatric", 0.020, 3_000, 1.0, 0.0, 0),
    ("inherited_cardiac_conditions", "Inherited cardiac conditions", IM, "Cardiac services", 0, "wave_70", 80, "working_age", 0.040, 4_000, 1.0, 0.0, 0),
    ("home_parenteral_nutrition", "Severe intestinal failure (home parenteral nutrition), adult", IM, "Specialised colorectal", 0, "wave_70", 120, "working_age", 0.030, 45_000, 0.5, 0.0, 0),
    ("neuromuscular_specialised", "Specialised neuromuscular services (adult)", IM, "Neurosciences", 0, "wave_70", 100, "neuro", 0.040, 8_000, 1.2, 0.0, 0),
    ("sarcoma_specialised", "Specialised sarcoma services", CA, "Sarcoma", 0, "wave_70", 70, "cancer", 0.030, 18_000, 1.0, 0.0, 0),
    # --- retained by NHS England: specialised mental health ------------------------------
    ("adult_secure_mental_health", "Adult secure mental health (medium and low secure)", MH, "Adult secure mental health", 0, "retained", 1_250, "secure_mental_health", 0.030, 190_000, 0.5, 0.0, 0),
    ("camhs_tier4", "Children and young people's inpatient mental health (Tier 4)", MH, "CYP mental health", 0, "retained", 450, "young_people", 0.040, 140_000, 0.7, 0.0, 0),
    ("adult_eating_disorders", "Adult eating disorders (inpatient)", MH, "Adult eating disorders", 0, "retained", 120, "eating_disorders", 0.040, 70_000, 0.7, 0.0, 0),
    ("perinatal_mother_baby_units", "Perinatal mental health (mother and baby units)", MH, "Perinatal mental health", 0, "retained", 60, "perinatal", 0.030, 55_000, 0.6, 0.0, 0),
    ("learning_disability_autism_inpatient", "Specialised learning disability and autism inpatient services", MH, "Learning disability", 0, "retained", 250, "secure_mental_health", 0.010, 200_000, 0.5, 0.0, 0),
    ("gender_identity_services", "Gender identity services (adult and young people)", MH, "Gender identity", 0, "retained", 70, "young_people", 0.050, 6_000, 1.0, 0.0, 0),
    ("high_secure_mental_health", "High secure mental health (national)", MH, "Adult secure mental health", 1, "retained", 400, "secure_mental_health", 0.020, 300_000, 0.3, 0.0, 0),
    ("specialised_mh_other", "Other specialised mental health (personality disorder, deaf, OCD/BDD; grouped HSS)", MH, "Adult specialised mental health", 1, "retained", 60, "working_age", 0.030, 90_000, 0.8, 0.0, 0),
    # --- retained: national drugs and cancer ---------------------------------------------
    ("cancer_drugs_fund", "Cancer Drugs Fund", CA, "Chemotherapy", 0, "retained", 600, "cancer", 0.080, 30_000, 1.0, 0.0, 0),
    ("national_high_cost_drugs", "High-cost drugs commissioned nationally outside delegated services (grouped)", BI, "Specialised drugs (national)", 0, "retained", 2_800, "flat", 0.070, 15_000, 1.5, 0.05, 300_000),
    ("hepatitis_c_programme", "Hepatitis C elimination programme (antivirals)", BI, "Hepatitis C", 0, "retained", 300, "working_age", -0.020, 12_000, 0.4, 0.0, 0),
    ("car_t_therapy", "CAR-T cell therapy", CA, "Blood and marrow transplantation", 1, "retained", 200, "cancer", 0.120, 300_000, 0.3, 0.0, 0),
    ("proton_beam_therapy", "Proton beam therapy", CA, "Radiotherapy", 1, "retained", 100, "young_people", 0.060, 60_000, 0.4, 0.0, 0),
    ("stereotactic_radiosurgery", "Stereotactic radiosurgery and radiotherapy", CA, "Radiotherapy", 0, "retained", 60, "cancer", 0.040, 8_000, 0.4, 0.0, 0),
    ("bone_marrow_transplant_adult", "Haematopoietic stem cell transplantation, adult", CA, "Blood and marrow transplantation", 0, "retained", 300, "cancer", 0.040, 80_000, 0.8, 0.1, 300_000),
    ("bone_marrow_transplant_children", "Haematopoietic stem cell transplantation, children", CA, "Blood and marrow transplantation", 1, "retained", 60, "paediatric", 0.040, 120_000, 0.8, 0.1, 400_000),
    ("ocular_oncology", "Ocular oncology and retinoblastoma (grouped HSS)", CA, "Specialised ophthalmology", 1, "retained", 25, "cancer", 0.030, 10_000, 1.0, 0.0, 0),
    ("primary_bone_tumours", "Primary malignant bone tumours", CA, "Sarcoma", 1, "retained", 30, "young_people", 0.030, 40_000, 1.0, 0.0, 0),
    ("rare_cancers_hss", "Other highly specialised cancer services (choriocarcinoma, pseudomyxoma, etc.; grouped)", CA, "Complex cancer surgery", 1, "retained", 40, "cancer", 0.030, 30_000, 1.0, 0.0, 0),
    # --- retained: transplantation and cardiothoracic HSS --------------------------------
    ("heart_lung_transplant", "Heart and lung transplantation (adult and children)", IM, "Cardiothoracic transplantation", 1, "retained", 120, "cardiovascular", 0.030, 90_000, 1.0, 0.2, 400_000),
    ("ventricular_assist_devices", "Ventricular assist devices (bridge to transplant)", IM, "Cardiothoracic transplantation", 1, "retained", 50, "cardiovascular", 0.040, 120_000, 0.6, 0.0, 0),
    ("liver_transplant", "Liver transplantation (adult and children)", IM, "Hepatobiliary and pancreas", 1, "retained", 200, "working_age", 0.030, 70_000, 1.0, 0.2, 300_000),
    ("pancreas_islet_transplant", "Pancreas and islet transplantation", IM, "Renal services", 1, "retained", 25, "working_age", 0.020, 60_000, 0.6, 0.0, 0),
    ("intestinal_transplant", "Small bowel and multivisceral transplantation", IM, "Specialised colorectal", 1, "retained", 15, "flat", 0.020, 150_000, 0.8, 0.3, 600_000),
    ("paediatric_transplants", "Paediatric kidney, heart and liver transplant follow-up (grouped HSS)", WC, "Paediatric medicine", 1, "retained", 60, "paediatric", 0.020, 40_000, 1.0, 0.0, 0),
    ("ecmo", "Extra-corporeal membrane oxygenation (adult and paediatric)", IM, "Adult critical care", 1, "retained", 70, "flat", 0.030, 80_000, 0.8, 0.0, 0),
    ("pulmonary_hypertension", "Pulmonary hypertension (adult and paediatric)", IM, "Specialised respiratory", 1, "retained", 250, "cardiovascular", 0.050, 25_000, 1.2, 0.0, 0),
    ("pulmonary_endarterectomy", "Pulmonary thromboendarterectomy", IM, "Cardiothoracic surgery", 1, "retained", 15, "cardiovascular", 0.020, 40_000, 0.5, 0.0, 0),
    ("complex_tracheal_disease", "Complex tracheal disease (grouped HSS)", WC, "Paediatric surgery", 1, "retained", 10, "paediatric", 0.020, 50_000, 1.0, 0.0, 0),
    # --- retained: rare disease HSS ------------------------------------------------------
    ("lysosomal_storage_disorders", "Lysosomal storage disorders (incl. enzyme replacement therapy)", WC, "Metabolic disorders", 1, "retained", 250, "congenital_rare", 0.040, 150_000, 0.8, 0.0, 0),
    ("gene_therapies_hss", "Gene therapies for rare disease (SMA, retinal dystrophy, etc.; grouped)", WC, "Metabolic disorders", 1, "retained", 150, "paediatric", 0.150, 50_000, 1.0, 0.7, 1_500_000),
    ("metabolic_disorders_other", "Other inherited metabolic disorders (grouped HSS)", WC, "Metabolic disorders", 1, "retained", 60, "congenital_rare", 0.030, 20_000, 1.2, 0.0, 0),
    ("pnh_ahus_complement", "PNH and aHUS complement-inhibitor services", BI, "Specialised blood disorders", 1, "retained", 180, "flat", 0.050, 250_000, 0.4, 0.0, 0),
    ("amyloidosis", "Amyloidosis services", BI, "Specialised blood disorders", 1, "retained", 40, "cardiovascular", 0.050, 30_000, 1.0, 0.0, 0),
    ("severe_combined_immunodeficiency", "Severe combined immunodeficiency and related disorders", BI, "Immunology and allergy", 1, "retained", 15, "neonatal", 0.030, 150_000, 1.0, 0.0, 0),
    ("rare_neurology_hss", "Rare neurological conditions (NMOSD, ataxias, mitochondrial; grouped HSS)", IM, "Neurosciences", 1, "retained", 50, "neuro", 0.040, 20_000, 1.2, 0.0, 0),
    ("rare_skin_genetic_hss", "Rare skin and genetic syndromes (epidermolysis bullosa, Alstrom, Wolfram; grouped HSS)", WC, "Specialised dermatology", 1, "retained", 35, "congenital_rare", 0.030, 15_000, 1.2, 0.0, 0),
    ("paediatric_intestinal_failure", "Paediatric intestinal failure (grouped HSS)", WC, "Paediatric medicine", 1, "retained", 20, "paediatric", 0.030, 60_000, 1.0, 0.0, 0),
    ("deep_brain_stimulation", "Deep brain stimulation and functional neurosurgery", IM, "Neurosciences", 0, "retained", 40, "neuro", 0.030, 30_000, 0.5, 0.0, 0),
    ("rare_hss_other", "Other highly specialised services (grouped; about 40 small national services)", IM, "Highly specialised (various)", 1, "retained", 600, "flat", 0.040, 50_000, 1.5, 0.1, 500_000),
    ("secure_forensic_camhs", "Secure and forensic children's mental health", MH, "CYP mental health", 1, "retained", 60, "young_people", 0.020, 250_000, 0.4, 0.0, 0),
    ("hyperbaric_oxygen", "Hyperbaric oxygen therapy", IM, "Highly specialised (various)", 0, "retained", 10, "working_age", 0.010, 6_000, 0.6, 0.0, 0),
]
# fmt: on
"""The catalogue rows. Every spend figure is a relative-size assumption before scaling."""

COLUMNS = [
    "service_id",
    "name",
    "programme_of_care",
    "crg",
    "highly_specialised",
    "delegation_group",
    "spend_m",
    "age_profile",
    "non_demographic_growth",
    "mean_cost_gbp",
    "cost_cv",
    "high_cost_share",
    "high_cost_mean_gbp",
]

BASIS_NOTE = (
    "Assumption: relative size from public reporting of programme-of-care spend, scaled so the "
    "{group} rows sum to the published total (see docs/service_catalogue.md)"
)


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


def build_services() -> pd.DataFrame:
    """The catalogue with spend scaled to the published portfolio totals, to the pound."""
    table = pd.DataFrame(ROWS, columns=COLUMNS)
    table["highly_specialised"] = table["highly_specialised"].astype(bool)
    table["baseline_spend_gbp"] = 0
    for group, total in GROUP_TOTALS_GBP.items():
        rows = table["delegation_group"] == group
        table.loc[rows, "baseline_spend_gbp"] = _largest_remainder(
            table.loc[rows, "spend_m"].to_numpy(float), total
        )
    table["spend_basis"] = "assumption"
    table["basis_note"] = [BASIS_NOTE.format(group=g) for g in table["delegation_group"]]
    table["high_cost_mean_gbp"] = table["high_cost_mean_gbp"].astype(float)
    return table[SERVICE_COLUMNS]


def main() -> None:
    services = build_services()
    profiles = build_profiles()
    assert services["service_id"].is_unique
    assert set(services["age_profile"]) <= set(profiles["profile"])
    assert services["baseline_spend_gbp"].sum() == sum(GROUP_TOTALS_GBP.values())
    DATA.mkdir(parents=True, exist_ok=True)
    services.to_csv(DATA / "services.csv", index=False)
    profiles.to_csv(DATA / "utilisation_profiles.csv", index=False)
    counts = services["delegation_group"].value_counts().to_dict()
    print(f"services.csv: {len(services)} rows {counts}; utilisation_profiles.csv: {len(profiles)}")


if __name__ == "__main__":
    main()
