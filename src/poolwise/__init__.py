"""poolwise: pooling of transformer outputs, with the theory and measurements to choose one.

>>> import poolwise as pw
>>> pooler = pw.get_pooler("mean")
>>> pw.list_poolers()[:3]
['adapool', 'attention', 'first']
"""

from .pooling import (
    AdaPool,
    AttentionPooling,
    EmbeddingHead,
    FirstPooling,
    GatedAttentionPooling,
    GeMPooling,
    LastPooling,
    LatentAttentionPooling,
    MaxPooling,
    MeanPooling,
    MeanSqrtLenPooling,
    MinPooling,
    MultiPooling,
    Pooler,
    SoftmaxPooling,
    SumPooling,
    WeightedAveragePooling,
    WeightedMeanPooling,
    get_pooler,
    list_poolers,
    register,
)

__version__ = "0.1.0"


__all__ = [
    "AdaPool", "AttentionPooling", "EmbeddingHead", "FirstPooling", "GatedAttentionPooling", "GeMPooling",
    "LastPooling", "LatentAttentionPooling", "MaxPooling", "MeanPooling", "MeanSqrtLenPooling",
    "MinPooling", "MultiPooling", "Pooler", "SoftmaxPooling", "SumPooling",
    "WeightedAveragePooling", "WeightedMeanPooling",
    "__version__", "get_pooler", "list_poolers", "register",
]
