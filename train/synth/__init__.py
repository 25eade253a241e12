"""Synthetic chest-CT training-data generator (issue 5).

Modules: niftiio (NIfTI-1 read/write), phantom (procedural chest phantom), lesions (COVID / CAP /
confounder models), insert_real (lesion insertion into real non-COVID scans), generate (CLI that
writes a data set + manifest + previews + tensor cache), stats (MosMed comparison), leakage (global
feature leakage check).
"""
