"""Utilities shared by the image and video packages."""
