"""DSFNet: Dual Semantic Fusion Network for video object detection (ACM MM 2020)."""

__version__ = "0.1.0"
