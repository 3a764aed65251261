"""Analyses: each module turns one investigation's stored measurements into its tables, charts and findings."""
