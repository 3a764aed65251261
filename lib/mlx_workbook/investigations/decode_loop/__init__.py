"""The code behind notebooks/*_decode_loop.py: measuring, analysis and findings."""
