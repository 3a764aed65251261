"""The bottom layer: environment capture, measurement and statistics, verdicts, published figures, and the
run record (results). Imports nothing else from the workbook."""
