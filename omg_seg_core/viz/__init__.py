"""Visualisation of Segments (overlay images for the ROS debug topic and the demo)."""
from .overlay import color_for, render_overlay

__all__ = ["render_overlay", "color_for"]
