"""One subpackage per notebook, named after it: `measure` (what runs), `analysis` (tables and charts from
stored rows), `findings` (claims -> verdicts). The top layer: may import every other one."""
