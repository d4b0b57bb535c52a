"""Batches: plan, name, record and run jobs, locally, on Ray, or watching a folder."""
