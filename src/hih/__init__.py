"""hih: Heatmap In Heatmap and every other way of compensating heatmap quantization error.

Coordinate convention (used by every codec, transform and metric): continuous
pixel coordinates where pixel ``i`` covers ``[i, i + 1)`` and its centre is at
``i + 0.5``. A point at input-image coordinate ``x`` sits at heatmap coordinate
``x / stride`` with no half-pixel shift, so the integer cell of a landmark is
``floor(x / stride)``, exactly as in eq. 1 of the paper.
"""

__version__ = "0.1.0"
