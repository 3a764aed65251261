"""Reporting: the notebook runner (jupytext -> papermill -> nbconvert), HTML pages and the index, the findings
page, run comparison, charts (`plots`) and text formatting (`text`). Imports `core`, `models` and `probes`;
the investigations draw their charts and sentences with it."""
