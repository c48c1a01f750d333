"""Jinja2 templates for the weekly plan (package data; found through planner.delivery.render)."""
